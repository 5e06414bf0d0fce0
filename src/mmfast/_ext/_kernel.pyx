# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The kernel interface's shared part (see ``_kernel.pxd`` and ``mmfast.model.kernel``).

A kernel records which templates T its factor of A = Λ'Z'WZΛ + I holds, so that a consumer
asking for A⁻¹ at the fitted θ reuses the fit's factor (``factor_at``) and a second
factorisation happens only where something moved it (and never a second symbolic analysis).
``selinv_blocks`` (the diagonal blocks of A⁻¹ per level) is written once here over ``solve``,
and so are the evaluation shells (``update``, ``profiled``, ``set_crossprods``) over the hooks
``_factor`` and ``_rhs`` each kernel implements.
"""
import numpy as np
cimport numpy as cnp
from libc.math cimport INFINITY
from libc.string cimport memcpy

from ._dense cimport downdate, profile_cross
from ._checks import check_crossprods, check_length

cdef i64 _analyses = 0
cdef i64 _factorizations = 0

SELINV_CHUNK = 4_000_000  # entries of one dense chunk of unit right-hand sides


cdef void count_analysis() noexcept nogil:
    global _analyses
    _analyses += 1


cdef void count_factorization() noexcept nogil:
    global _factorizations
    _factorizations += 1


def factorization_counts():
    """(symbolic analyses, numeric factorisations) of A so far, in this process."""
    return int(_analyses), int(_factorizations)


def profile_of_m(M):
    """From M = [[M_XX, M_Xy], [M_yX, M_yy]] (what a kernel's ``update`` gives), by the small
    Cholesky every criterion evaluation uses (``profile_cross``, so that the fitted state and
    the optimiser's criterion agree to the bit): (log|R_X|², r², R_X, c_β) with R_X' its
    leading block and [c_β', r] its last row; None where M is not positive definite."""
    cdef double[:, ::1] L = np.array(M, dtype=np.float64, order="C")
    cdef Py_ssize_t m = L.shape[0], p = m - 1, i, j
    cdef double out[2]
    cdef int rc
    if L.shape[1] != m:
        check_length("M (columns)", L.shape[1], m)
    if m == 0:
        return None
    with nogil:
        rc = profile_cross(&L[0, 0], m, out)
    if rc != 0:
        return None
    R_a = np.zeros((p, p))
    cb_a = np.empty(p)
    cdef double[:, ::1] R = R_a
    cdef double[::1] cb = cb_a
    for i in range(p):
        for j in range(i + 1):
            R[j, i] = L[i, j]
        cb[i] = L[p, i]
    return out[0], out[1], R_a, cb_a


cdef class Kernel:
    """Base of the PLS kernels: the held templates and the methods written over ``solve``."""

    def __cinit__(self):
        self.held = False

    cdef void _layout(self, Py_ssize_t q, Py_ssize_t ncol, Py_ssize_t tsize):
        self.q, self.ncol, self.tsize = q, ncol, tsize
        self.logdet = np.nan
        self.Tfit = np.zeros(max(tsize, 1))
        self.held = False

    cdef void _hold(self, const double* T, bint ok) noexcept nogil:
        """After a factorisation at T: remember T if it succeeded, else hold nothing."""
        self.held = ok
        if ok and self.tsize > 0:
            memcpy(&self.Tfit[0], T, self.tsize * sizeof(double))

    cdef int _factor(self, const double* T) noexcept nogil:
        """Factor A at T in place, set ``logdet``: 0, or -1 where A is not positive definite."""
        return -1

    cdef int _rhs(self, const double* T) noexcept nogil:
        """After ``_factor``: Cm and Xm such that M = W'W - Cm'Xm; 0, or -1 on failure."""
        return -1

    cdef int _evaluate(self, const double* T, double* M) noexcept nogil:
        """One evaluation at T: the factor, the right-hand sides and M (row-major ncol x ncol);
        the factor is held where it succeeded."""
        cdef int rc = self._factor(T)
        if rc == 0:
            rc = self._rhs(T)
        if rc == 0:
            downdate(&self.WtW[0, 0], &self.Cm[0, 0], &self.Xm[0, 0], self.q, self.ncol, M)
        self._hold(T, rc == 0)
        return rc

    def update(self, T):
        """Evaluate at the templates T (flat, column-major per term): (log|A|, M), or
        (inf, None) where A is not positive definite."""
        cdef double[::1] Tv = np.ascontiguousarray(T, dtype=np.float64)
        if Tv.shape[0] != self.tsize:
            check_length("T", Tv.shape[0], self.tsize)
        M = np.empty((self.ncol, self.ncol))
        cdef double[:, ::1] Mv = M
        cdef int rc
        with nogil:
            rc = self._evaluate(&Tv[0], &Mv[0, 0])
        if rc != 0:
            return np.inf, None
        return self.logdet, M

    def profiled(self, const double[::1] T):
        """(log|A|, log|R_X|², r²) at T in the kernel's basis, or None where not positive
        definite: ``update`` and the Cholesky of M in one call, M in a buffer of its own (the
        LMM criterion's path, called ~40-100 times per small fit)."""
        cdef double out[2]
        cdef int rc
        if T.shape[0] != self.tsize:
            check_length("T", T.shape[0], self.tsize)
        with nogil:
            rc = self._evaluate(&T[0], &self.Mbuf[0, 0])
            if rc == 0:  # the factor is A(T) and held even where M is not PD
                rc = profile_cross(&self.Mbuf[0, 0], self.ncol, out)
        if rc != 0 or not self.logdet < INFINITY:
            return None
        return (self.logdet, out[0], out[1])

    cdef _load_ztw(self, ZtW):
        """Copy Z'W[X y] (u's global order) into the kernel's own rows."""
        np.copyto(np.asarray(self.ZtW), ZtW)

    def set_crossprods(self, V, ZtW, WtW):
        """Load new cross-products (same pattern, shapes checked), e.g. reweighted ones in PIRLS."""
        check_crossprods(self.V.shape[0], self.q, self.ncol, V, ZtW, WtW)
        self.held = False
        np.copyto(np.asarray(self.V), V)
        self._load_ztw(ZtW)
        np.copyto(np.asarray(self.WtW), WtW)

    def template_size(self):
        return self.tsize

    def _modes(self, r):
        """u (global order) from r = c_u - R_ZX β in Xm's rows: L⁻ᵀ r for a triangular kernel."""
        raise NotImplementedError

    def conditional_modes(self, beta):
        """Spherical random effects u at β from the last update (``_modes`` of Xm's columns)."""
        p = self.ncol - 1
        if len(beta) != p:
            check_length("beta", len(beta), p)
        C = self.C
        return self._modes(C[:, p] - C[:, :p] @ beta)

    def at(self, T) -> bool:
        """Whether the factor currently holds A at the templates T."""
        if not self.held:
            return False
        T = np.asarray(T, dtype=np.float64)
        held = np.asarray(self.Tfit)[:self.tsize]
        return T.shape == (self.tsize,) and bool(np.array_equal(held, T))

    def factor_at(self, T):
        """This kernel with its factor at T: the fit's factor when it is there (the usual case
        after a fit), else one numeric refactorisation (the symbolic analysis is kept)."""
        if not self.at(T):
            ld, M = self.update(T)
            if M is None or not np.isfinite(ld):
                raise FloatingPointError("A = Λ'Z'ZΛ + I is not positive definite at θ")
        return self

    def release(self):
        """Forget the held templates (the factor was overwritten or the cross-products changed)."""
        self.held = False

    def reweight(self, V, ZtW, WtW):
        """Load reweighted cross-products (same pattern): Z'WZ sub-blocks V, Z'W[X z], [X z]'W[X z].
        The weights w enter through them (the kernels hold cross-products, not Z)."""
        self.set_crossprods(V, ZtW, WtW)

    def selinv_blocks(self, terms):
        """Diagonal p_k x p_k blocks of A⁻¹ per term, arrays (levels, p_k, p_k), from the factor
        held now: ``solve`` on chunks of unit columns (memory bounded), one block per level kept."""
        q = self.q
        out = []
        for t in terms:
            res = np.empty((t.nlevels, t.p, t.p))
            per = max(1, min(t.nlevels, SELINV_CHUNK // max(q * t.p, 1)))
            for lev0 in range(0, t.nlevels, per):
                lev1 = min(t.nlevels, lev0 + per)
                cols = t.offset + np.arange(lev0 * t.p, lev1 * t.p)
                E = np.zeros((q, len(cols)), order="F")
                E[cols, np.arange(len(cols))] = 1.0
                S = self.solve(E)[cols, :]
                k = lev1 - lev0
                S = S.reshape(k, t.p, k, t.p)
                res[lev0:lev1] = S[np.arange(k), :, np.arange(k), :]
            out.append(res)
        return out
