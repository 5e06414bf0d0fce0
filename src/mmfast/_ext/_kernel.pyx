# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The kernel interface's shared part (see ``_kernel.pxd`` and ``mmfast.model.kernel``).

A kernel records which templates T its factor of A = Λ'Z'WZΛ + I holds, so that a consumer
asking for A⁻¹ at the fitted θ reuses the fit's factor (``factor_at``) and a second
factorisation happens only where something moved it (and never a second symbolic analysis).
``selinv_blocks`` (the diagonal blocks of A⁻¹ per level) is written once here over ``solve``.
"""
import numpy as np
from libc.string cimport memcpy

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


cdef class Kernel:
    """Base of the PLS kernels: the held templates and the methods written over ``solve``."""

    def __cinit__(self):
        self.held = False

    cdef void _layout(self, Py_ssize_t q, Py_ssize_t ncol, Py_ssize_t tsize):
        self.q, self.ncol, self.tsize = q, ncol, tsize
        self.Tfit = np.zeros(max(tsize, 1))
        self.held = False

    cdef void _hold(self, const double* T, bint ok) noexcept nogil:
        """After a factorisation at T: remember T if it succeeded, else hold nothing."""
        self.held = ok
        if ok and self.tsize > 0:
            memcpy(&self.Tfit[0], T, self.tsize * sizeof(double))

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
