# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Tree-structured Cholesky for nested scalar terms (issue 19): subjects within sites within ...

When every level of term k co-occurs with exactly one level of term k+1 (a chain of nested
grouping factors, one column each), A = Λ'Z'ZΛ + I couples a level only with its ancestors, so
its Cholesky factor in the terms' order (finest first) has no fill: column i holds i's
ancestors.  A factorisation, a solve and the selected inverse (Takahashi's recurrence, on A's
own pattern: what d log|A| / dθ needs) each cost O(q · depth²), whatever the number of sites:
no dense Schur complement (``BlockedKernel``), no sparse symbolic analysis (``PLSKernel``).
Same interface (``_kernel.Kernel``) as the other kernels.
"""
import numpy as np
cimport numpy as cnp
from libc.math cimport INFINITY, log, sqrt

from ._kernel cimport Kernel, count_factorization
from ._checks import check_length
from ._types cimport i64

cnp.import_array()


def nested_chain(blocks):
    """The tree of a chain of nested scalar terms: (term of each u index, entry pointers per
    column, each entry's ancestor, V offsets of the diagonal pairs and of the entries), or None
    when the design is not one (a term with several columns, a level seen with two levels of
    the next term, a term that crosses another, fewer than two terms)."""
    tp = np.asarray(blocks.term_p)
    K, q = len(tp), int(blocks.q)
    if K < 2 or np.any(tp != 1) or not np.array_equal(np.asarray(blocks.blk_start), np.arange(q)):
        return None
    term = np.asarray(blocks.blk_term, dtype=np.int64)
    nlev = np.bincount(term, minlength=K)
    if len(blocks.pair_row) != q + int(np.sum(nlev * (K - 1 - np.arange(K)))):
        return None  # a chain has one pair per level and ancestor: crossed designs stop here
    row, col = np.asarray(blocks.pair_row, dtype=np.int64), np.asarray(blocks.pair_col, dtype=np.int64)
    vofs = np.asarray(blocks.pair_vofs, dtype=np.int64)[: len(row)]
    diag = row == col
    if np.count_nonzero(diag) != q or not np.array_equal(np.sort(row[diag]), np.arange(q)):
        return None
    dvofs = np.empty(q, dtype=np.int64)
    dvofs[row[diag]] = vofs[diag]
    off = np.flatnonzero(~diag)
    off = off[np.lexsort((row[off], col[off]))]  # by column, nearest ancestor first
    r, c = row[off], col[off]
    counts = np.bincount(c, minlength=q)
    if not np.array_equal(counts, K - 1 - term):
        return None
    eptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    depth = np.arange(len(off)) - eptr[c]  # 0 for the parent, 1 for the grandparent, ...
    if not np.array_equal(term[r], term[c] + 1 + depth):
        return None
    parent = np.full(q, -1, dtype=np.int64)
    parent[c[depth == 0]] = r[depth == 0]
    anc = parent[c]
    for d in range(1, K - 1):  # every further ancestor is the parent's: a chain, not a lattice
        at = depth == d
        anc[at] = parent[anc[at]]
        if not np.array_equal(anc[at], r[at]):
            return None
    return term.astype(np.int32), eptr, r.astype(np.int32), dvofs, vofs[off].astype(np.int64)


cdef class NestedKernel(Kernel):
    """Objective-evaluation kernel of a chain of nested scalar terms (see the module docstring)."""

    cdef int[::1] term_of, eanc
    cdef i64[::1] eptr, dvofs, evofs
    cdef double[::1] Ld, Le, Sd, Se  # V, ZtW, WtW, Mbuf, C, Cm (= Xm), logdet: Kernel's
    cdef bint sel  # Sd, Se hold the selected inverse of the factor held now

    def __init__(self, blocks, chain=None):
        chain = nested_chain(blocks) if chain is None else chain
        if chain is None:
            raise ValueError("the random-effects terms are not a chain of nested scalar terms")
        term_of, eptr, eanc, dvofs, evofs = chain
        self._layout(blocks.q, blocks.WtW.shape[0], len(blocks.term_p))
        self.term_of, self.eptr, self.eanc = term_of, eptr, eanc
        self.dvofs, self.evofs = dvofs, evofs
        self.V = np.array(blocks.V, dtype=np.float64, order="C", copy=True)
        self.ZtW = np.array(blocks.ZtW, dtype=np.float64, order="F", copy=True)
        self.WtW = np.array(blocks.WtW, dtype=np.float64, order="C", copy=True)
        self.Ld, self.Sd = np.zeros(self.q), np.zeros(self.q)
        self.Le, self.Se = np.zeros(max(len(eanc), 1)), np.zeros(max(len(eanc), 1))
        self.C = np.zeros((self.q, self.ncol), order="F")
        self.Cm = self.Xm = self.C
        self.Mbuf = np.empty((self.ncol, self.ncol))
        self.logdet = np.nan
        self.sel = False

    @property
    def dense_size(self):
        """No dense part (``limit_fit_threads``, ``use_gradient`` read it)."""
        return 0

    cdef int _factor(self, const double* T) noexcept nogil:
        """L of A at T in place of A's values (Ld: diagonal, Le: column i's ancestors)."""
        cdef Py_ssize_t i, r, s, e0, e1, a, b0
        cdef double d, l, ti, ld = 0.0
        cdef double* Ld = &self.Ld[0]
        cdef double* Le = &self.Le[0]
        cdef const double* V = &self.V[0]
        cdef const int* tm = &self.term_of[0]
        cdef const int* anc = &self.eanc[0]
        cdef const i64* ep = &self.eptr[0]
        count_factorization()
        self.sel = False
        for i in range(self.q):
            ti = T[tm[i]]
            Ld[i] = ti * ti * V[self.dvofs[i]] + 1.0
            for r in range(ep[i], ep[i + 1]):
                Le[r] = T[tm[anc[r]]] * ti * V[self.evofs[r]]
        for i in range(self.q):  # columns in order: a level's descendants come before it
            d = Ld[i]
            if not d > 0.0 or d == INFINITY:
                return -1
            d = sqrt(d)
            Ld[i] = d
            ld += 2.0 * log(d)
            e0, e1 = ep[i], ep[i + 1]
            for r in range(e0, e1):
                Le[r] /= d
            for r in range(e0, e1):  # A[b, a] -= l_b l_a for ancestors a <= b of i
                a = anc[r]
                l = Le[r]
                Ld[a] -= l * l
                b0 = ep[a] - r - 1  # entry s of i (s > r) is entry b0 + s of a's column
                for s in range(r + 1, e1):
                    Le[b0 + s] -= Le[s] * l
        self.logdet = ld
        return 0

    cdef void _forward(self, double* x, Py_ssize_t m, Py_ssize_t ldx) noexcept nogil:
        """x <- L⁻¹ x in place (q x m, column-major, leading dimension ldx): one pass over the
        tree for all m columns (the factor is read once, not once per column)."""
        cdef Py_ssize_t i, r, c, e0, e1
        cdef double xi, d
        cdef double* y
        cdef const double* Le = &self.Le[0]
        cdef const int* anc = &self.eanc[0]
        for i in range(self.q):
            d = self.Ld[i]
            e0, e1 = self.eptr[i], self.eptr[i + 1]
            for c in range(m):
                y = x + c * ldx
                xi = y[i] / d
                y[i] = xi
                for r in range(e0, e1):
                    y[anc[r]] -= Le[r] * xi

    cdef void _backward(self, double* x, Py_ssize_t m, Py_ssize_t ldx) noexcept nogil:
        """x <- L⁻ᵀ x in place (q x m, column-major, leading dimension ldx), one pass."""
        cdef Py_ssize_t i, r, c, e0, e1
        cdef double acc, d
        cdef double* y
        cdef const double* Le = &self.Le[0]
        cdef const int* anc = &self.eanc[0]
        for i in range(self.q - 1, -1, -1):
            d = self.Ld[i]
            e0, e1 = self.eptr[i], self.eptr[i + 1]
            for c in range(m):
                y = x + c * ldx
                acc = y[i]
                for r in range(e0, e1):
                    acc -= Le[r] * y[anc[r]]
                y[i] = acc / d

    cdef int _rhs(self, const double* T) noexcept nogil:
        """C = L⁻¹ Λ'Z'W."""
        cdef Py_ssize_t i, c
        for c in range(self.ncol):
            for i in range(self.q):
                self.Cm[i, c] = T[self.term_of[i]] * self.ZtW[i, c]
        self._forward(&self.Cm[0, 0], self.ncol, self.q)
        return 0

    cdef void _selinv(self) noexcept nogil:
        """A⁻¹ on L's pattern (Sd: diagonal, Se: (ancestor, i) entries), Takahashi's recurrence
        from the last level back: Σ_ai = -Σ_s l_s Σ_{a a_s} / d_i, Σ_ii = (1/d_i - Σ_r l_r Σ_{a_r i}) / d_i."""
        cdef Py_ssize_t i, r, s, e0, e1, ar, as_
        cdef double acc, sig, d
        cdef double* Sd = &self.Sd[0]
        cdef double* Se = &self.Se[0]
        cdef const double* Le = &self.Le[0]
        cdef const int* anc = &self.eanc[0]
        cdef const i64* ep = &self.eptr[0]
        for i in range(self.q - 1, -1, -1):
            d = self.Ld[i]
            e0, e1 = ep[i], ep[i + 1]
            for r in range(e0, e1):
                ar = anc[r]
                acc = 0.0
                for s in range(e0, e1):
                    as_ = anc[s]
                    if s == r:
                        sig = Sd[ar]
                    elif s > r:  # a_s is an ancestor of a_r: entry s - r - 1 of a_r's column
                        sig = Se[ep[ar] + s - r - 1]
                    else:
                        sig = Se[ep[as_] + r - s - 1]
                    acc += Le[s] * sig
                Se[r] = -acc / d
            acc = 0.0
            for r in range(e0, e1):
                acc += Le[r] * Se[r]
            Sd[i] = (1.0 / d - acc) / d
        self.sel = True

    def _apply(self, r, bint forward, bint backward):
        r = np.asarray(r, dtype=np.float64)
        check_length("rows", r.shape[0] if r.ndim else -1, self.q)
        cdef cnp.ndarray[double, ndim=2] U = np.array(r.reshape(self.q, -1), order="F", copy=True)
        cdef double[::1, :] u = U
        if U.shape[1] > 0 and self.q > 0:
            with nogil:
                if forward:
                    self._forward(&u[0, 0], u.shape[1], self.q)
                if backward:
                    self._backward(&u[0, 0], u.shape[1], self.q)
        return U[:, 0] if r.ndim == 1 else U

    def solve(self, B):
        """A⁻¹B for a q-vector or q x m matrix, from the factor held now."""
        return self._apply(B, True, True)

    def solve_l(self, r):
        """L⁻¹ r (q, or q x m), after an ``update``: rows as those of C (u's own order)."""
        r = np.asarray(r, dtype=np.float64)
        return self._apply(r if r.ndim > 1 else r[:, None], True, False)

    def solve_lt(self, r):
        """u = L⁻ᵀ r, after an ``update``."""
        return self._apply(r, False, True)

    def solve_lt_c(self, j):
        """L⁻ᵀ c_j for column j of C = L⁻¹Λ'Z'[X y]."""
        if not 0 <= j < self.ncol:
            raise ValueError(f"column {j} of C out of range (C has {self.ncol} columns)")
        return self._apply(self.C[:, j], False, True)

    def _modes(self, r):
        """u = L⁻ᵀ r."""
        return self._apply(r, False, True)

    def _selected(self):
        if not self.held:
            raise FloatingPointError("no factor held: update the kernel first")
        if not self.sel:
            with nogil:
                self._selinv()

    def selinv_blocks(self, terms):
        """Diagonal 1 x 1 blocks of A⁻¹ per term, arrays (levels, 1, 1), from the factor held now."""
        self._selected()
        Sd = np.asarray(self.Sd)
        return [Sd[t.offset : t.offset + t.q].reshape(t.nlevels, 1, 1).copy() for t in terms]

    def trace_gradient(self, T, overwrite=False, general=False):
        """Per term k, Q_k = Σ_{y in k} Σ_x (A⁻¹)_yx θ_x (Z'Z)_xy over A's pattern, after an
        update: d log|A| / dθ_k = 2 Q_k (the selected inverse; ``overwrite``, ``general``: as
        the blocked kernel's, nothing to overwrite or shortcut here)."""
        cdef double[::1] Tv = np.ascontiguousarray(T, dtype=np.float64)
        if Tv.shape[0] != self.tsize:
            check_length("T", Tv.shape[0], self.tsize)
        self._selected()
        out = np.zeros(self.tsize)
        cdef double[::1] Q = out
        cdef Py_ssize_t i, r, k, m
        cdef double g
        with nogil:
            for i in range(self.q):
                k = self.term_of[i]
                Q[k] += self.Sd[i] * Tv[k] * self.V[self.dvofs[i]]
                for r in range(self.eptr[i], self.eptr[i + 1]):
                    m = self.term_of[self.eanc[r]]
                    g = self.Se[r] * self.V[self.evofs[r]]
                    Q[k] += g * Tv[m]
                    Q[m] += g * Tv[k]
        return out
