# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The selected inverse of the blocked kernel's A, for the gradient of log|A|.

d log|A| / dθ needs A⁻¹ only on A's own block pattern: S⁻¹ from LAPACK's dpotri, the first
term's blocks from L11, L21 and S⁻¹ without forming anything dense beyond S; for scalar terms
only A⁻¹'s diagonal, through (q_k - tr_k A⁻¹) / θ_k.  Works on the factor a
``BlockedKernel.update`` left (``_blocked.pxd`` declares its layout).
"""
import numpy as np
cimport numpy as cnp
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy
from scipy.linalg.cython_blas cimport dgemm
from scipy.linalg.cython_lapack cimport dpotri

from ._blocked cimport BlockedKernel
from ._types cimport i64
from ._checks import check_length

cnp.import_array()

cdef Py_ssize_t PANEL_DOUBLES = 65536  # S⁻¹ entries per panel of the scalar pass (512 KB: in L2)
DIAG_TRACE_MIN = 1e-2  # smallest scalar θ_k for the diagonal trace: (q_k - tr_k) / θ_k cancels


def trace_gradient(BlockedKernel self, T, overwrite=False, general=False):
    """Per term k, the p_k x p_k matrix Σ_y Q_y with Q_y = Σ_x (A⁻¹)_yx T_x' G_xy, after an update.

    d log|A| / d T_k[r, c] = 2 (Σ_y Q_y)[c, r]: only the blocks of A⁻¹ on A's own block
    pattern are needed (selected inverse): S⁻¹ by LAPACK, the first term's blocks from
    L11, L21 and S⁻¹ without forming anything dense beyond S.  Scalar terms with every θ_k
    >= DIAG_TRACE_MIN take a shortcut through A⁻¹'s diagonal (``general``: never).
    """
    cdef double[::1] Tv = np.ascontiguousarray(T, dtype=np.float64)
    if Tv.shape[0] != self.tsize:
        check_length("T", Tv.shape[0], self.tsize)
    out = np.zeros(self.tsize)
    cdef double[::1] Q = out
    if self.q2 > 0:  # overwrite: S's factor is not needed again before the next update
        self.Sinv = self.S if overwrite else np.array(self.S, order="F", copy=True)
    cdef int rc
    cdef bint diag = self.scalar and not general
    cdef double tmin = DIAG_TRACE_MIN
    cdef Py_ssize_t k
    for k in range(self.tofs.shape[0]):
        diag = diag and Tv[self.tofs[k]] >= tmin
    with nogil:
        rc = _diag_trace(self, &Tv[0], &Q[0]) if diag else _selinv_trace(self, &Tv[0], &Q[0])
    if rc != 0:
        raise FloatingPointError("selected inverse failed")
    return out


def pattern_inverse(BlockedKernel self, overwrite=False):
    """A⁻¹ on A's own block pattern after an update, in the layout of the kernel's V (one
    sub-block per pair of co-occurring blocks, row-major): what a row's (ZΛ A⁻¹ Λ'Z')_ii
    needs (the GLMM's Laplace gradient).  ``overwrite``: S's factor becomes S⁻¹ (the factor
    is released)."""
    out = np.zeros(self.V.shape[0])
    cdef double[::1] o = out
    cdef Py_ssize_t j, c, s, t, xa, ya, pa, pb, ri, ri2, maxcol = 0, p0 = self.p0
    cdef int n2 = <int> self.q2, info = 0
    cdef char lo = b'L'
    cdef double* Y
    cdef double* P11
    cdef double* Pyx
    cdef double* Yall
    if self.q2 > 0:
        if overwrite:
            self.held = False
        self.Sinv = self.S if overwrite else np.array(self.S, order="F", copy=True)
    for j in range(self.nlev0):  # Y of one level: its L21 entries
        maxcol = max(maxcol, self.cross_lofs[self.cross_colptr[j + 1]] - self.cross_lofs[self.cross_colptr[j]])
    with nogil:
        if self.q2 > 0:
            dpotri(&lo, &n2, &self.Sinv[0, 0], &n2, &info)
            if info == 0:
                _symmetrize(&self.Sinv[0, 0], self.q2)
        Y = <double*> malloc((maxcol + 1) * sizeof(double))
        P11 = <double*> malloc((p0 * p0 + 1) * sizeof(double))
        Yall = <double*> malloc((self.cross_row.shape[0] + 1) * sizeof(double)) if self.scalar else NULL
        if info == 0 and self.scalar and (Yall == NULL or _scalar_y(self, Yall) != 0):
            info = -1
        if info == 0 and Y != NULL and P11 != NULL:
            for j in range(self.nlev0):
                _level_inverse(self, j, Y, P11, Yall)
                memcpy(&o[self.diag_vofs[j]], P11, p0 * p0 * sizeof(double))
                for c in range(self.cross_colptr[j], self.cross_colptr[j + 1]):
                    Pyx = &o[self.cross_vofs[c]]
                    _cross_inverse(self, j, c, Y, Pyx)
            for c in range(self.rest_row.shape[0]):  # (x >= y, both after the first term)
                xa, ya = self.rest_row[c], self.rest_col[c]
                pa, pb = self.term_p[self.blk_term[xa]], self.term_p[self.blk_term[ya]]
                ri, ri2 = self.blk_start[xa] - self.q1, self.blk_start[ya] - self.q1
                for s in range(pa):
                    for t in range(pb):
                        o[self.rest_vofs[c] + s * pb + t] = self.Sinv[ri + s, ri2 + t]
        elif info == 0:
            info = -1
        free(Y)
        free(P11)
        free(Yall)
    if info != 0:
        raise FloatingPointError("selected inverse failed")
    return out


cdef int _diag_trace(BlockedKernel self, const double* T, double* Q) noexcept nogil:
    """Scalar terms, every θ_k away from 0: Q_k = (q_k - tr_k(A⁻¹)) / θ_k needs only the
    diagonal of A⁻¹: (1 + l_j'S⁻¹l_j) / d_j² for the first term (l_j: column j of L21, so
    S⁻¹ is read on its lower triangle), diag(S⁻¹) for the others."""
    cdef Py_ssize_t j, a, b, end, blk, k, q2 = self.q2
    cdef int n2 = <int> q2, info = 0
    cdef char lo = b'L'
    cdef double acc, quad, d
    cdef const double* Sp = &self.Sinv[0, 0] if q2 > 0 else NULL
    cdef const double* col
    cdef const double* L21p = &self.L21[0]
    cdef const int* pos = &self.cross_pos[0] if self.cross_pos.shape[0] > 0 else NULL
    if q2 > 0:
        dpotri(&lo, &n2, &self.Sinv[0, 0], &n2, &info)
        if info != 0:
            return -1
    for k in range(self.term_p.shape[0]):
        Q[k] = 0.0  # Σ of A⁻¹'s diagonal over the term, first
    for j in range(self.nlev0):
        end = self.cross_colptr[j + 1]
        quad = 0.0
        for b in range(self.cross_colptr[j], end):
            col = Sp + pos[b] * q2
            acc = 0.5 * L21p[b] * col[pos[b]]
            for a in range(b + 1, end):
                acc = acc + L21p[a] * col[pos[a]]
            quad = quad + 2.0 * L21p[b] * acc
        d = self.Ldiag[j]
        Q[0] += (1.0 + quad) / (d * d)
    for blk in range(self.blk_term.shape[0]):
        k = self.blk_term[blk]
        if k > 0:
            a = self.blk_start[blk] - self.q1
            Q[k] += Sp[a * q2 + a]
    for k in range(self.term_p.shape[0]):
        Q[k] = (self.nlev[k] - Q[k]) / T[self.tofs[k]]
    return 0

cdef int _selinv_trace(BlockedKernel self, const double* T, double* Q) noexcept nogil:
    cdef Py_ssize_t j, c, c2, s, t, a, i, k, pk, pk2, ri, ri2, xa, ya, pa, pb
    cdef Py_ssize_t p0 = self.p0
    cdef int n2 = <int> self.q2, info = 0
    cdef char lo = b'L'
    cdef double acc
    cdef double* D
    cdef double* La
    cdef double* w = &self.work[0]
    cdef double* tmp = w + self.work.shape[0] // 2
    cdef double* Y
    cdef double* P11
    cdef double* Pyx
    cdef double* Yall
    cdef double* buf
    cdef const double* Tk
    cdef const double* Vp
    cdef Py_ssize_t pmax = 0, c0, c1
    cdef const double* Sinvp = &self.Sinv[0, 0] if self.q2 > 0 else NULL
    cdef const double* L21p = &self.L21[0]
    cdef const int* pos = &self.cross_pos[0] if self.cross_pos.shape[0] > 0 else NULL
    cdef const double* colp
    for k in range(self.term_p.shape[0]):
        if self.term_p[k] > pmax:
            pmax = self.term_p[k]
    if self.q2 > 0:
        dpotri(&lo, &n2, &self.Sinv[0, 0], &n2, &info)
        if info != 0:
            return -1
        _symmetrize(&self.Sinv[0, 0], self.q2)
    # scratch: Y for every cross pair of one column, P11 (p0 x p0), Pyx (pmax x pmax), buf
    cdef Py_ssize_t maxcol = 0  # Y_c of one column's pairs: at c's L21 offset within the column
    for j in range(self.nlev0):
        c = self.cross_lofs[self.cross_colptr[j + 1]] - self.cross_lofs[self.cross_colptr[j]]
        if c > maxcol:
            maxcol = c
    Y = <double*> malloc((maxcol + 1) * sizeof(double))
    P11 = <double*> malloc((p0 * p0 + 3 * pmax * pmax + 1) * sizeof(double))
    Yall = <double*> malloc((self.cross_row.shape[0] + 1) * sizeof(double)) if self.scalar else NULL
    if Y == NULL or P11 == NULL or (self.scalar and (Yall == NULL or _scalar_y(self, Yall) != 0)):
        free(Y)
        free(P11)
        free(Yall)
        return -1
    Pyx = P11 + p0 * p0
    buf = Pyx + pmax * pmax
    for j in range(self.nlev0):
        D = &self.Ldiag[j * p0 * p0]
        _level_inverse(self, j, Y, P11, Yall)
        # diagonal pair (j, j): Q_0 += P11 T0' G_jj
        Tk = T
        Vp = &self.V[self.diag_vofs[j]]
        _acc_ptv(P11, p0, p0, Tk, p0, Vp, p0, 0, Q, buf)
        # cross pairs c = (i, j): P_ij = -Y_c L_j⁻¹ ; Q_j += P_ij' T_i' G_ij ; Q_i += P_ij T0' G_ij'
        for c in range(self.cross_colptr[j], self.cross_colptr[j + 1]):
            k = self.blk_term[self.cross_row[c]]
            pk = self.term_p[k]
            _cross_inverse(self, j, c, Y, Pyx)
            Vp = &self.V[self.cross_vofs[c]]
            # Q_j (term 0) += P_ij' T_k' V   with P_ij: pk x p0, V: pk x p0
            _acc_ptv(Pyx, pk, p0, T + self.tofs[k], pk, Vp, p0, 1, Q, buf)
            # Q_i (term k) += P_ij T0' V'    (pk x p0)(p0 x p0)(p0 x pk)
            _acc_ptv(Pyx, pk, p0, T, p0, Vp, pk, 0, Q + self.tofs[k], buf, 1)
    free(Y)
    free(P11)
    free(Yall)
    # rest pairs (x >= y, both after the first term): P from S⁻¹
    for c in range(self.rest_row.shape[0]):
        xa = self.rest_row[c]
        ya = self.rest_col[c]
        pa = self.term_p[self.blk_term[xa]]
        pb = self.term_p[self.blk_term[ya]]
        ri = self.blk_start[xa] - self.q1
        ri2 = self.blk_start[ya] - self.q1
        Vp = &self.V[self.rest_vofs[c]]
        # Q_y += P_yx T_x' V   (P_yx: pb x pa, V: pa x pb)
        for s in range(pb):
            for t in range(pb):
                acc = 0.0
                for i in range(pa):
                    for a in range(i, pa):  # (T_x' V)[i, t] = Σ_a T_x[a, i] V[a, t]
                        acc = acc + self.Sinv[ri2 + s, ri + i] * T[self.tofs[self.blk_term[xa]] + a + i * pa] * Vp[a * pb + t]
                Q[self.tofs[self.blk_term[ya]] + s * pb + t] += acc
        if xa != ya:  # Q_x += P_xy T_y' V'   (P_xy: pa x pb, V': pb x pa)
            for s in range(pa):
                for t in range(pa):
                    acc = 0.0
                    for i in range(pb):
                        for a in range(i, pb):
                            acc = acc + self.Sinv[ri + s, ri2 + i] * T[self.tofs[self.blk_term[ya]] + a + i * pb] * Vp[t * pb + a]
                    Q[self.tofs[self.blk_term[xa]] + s * pa + t] += acc
    return 0

cdef void _level_inverse(BlockedKernel self, Py_ssize_t j, double* Y, double* P11,
                         const double* Yall) noexcept nogil:
    """For level j of the first term (after dpotri put S⁻¹, symmetric, in ``Sinv``):
    Y_c = Σ_c2 S⁻¹[i_c, i_c2] L21_c2 (p_i x p0, row-major) for its cross pairs, each at c's L21
    offset within the level (``cross_lofs[c] - cross_lofs[cross_colptr[j]]``), and P11 = L_j⁻ᵀ
    (I + Σ_c L21_c' Y_c) L_j⁻¹, the diagonal block (A⁻¹)_jj.  Every term scalar: Y copied from
    ``Yall`` (``_scalar_y``'s panelled pass); a scalar first term with vector terms after it:
    entry by entry (one L21 entry per row of S); a vector first term: BLAS on the level's
    stacked L21 rows, on S⁻¹ in place when they are contiguous in S, else on a gathered copy."""
    cdef Py_ssize_t c, c2, s, t, a, i, pk, c0, c1, r0 = 0, p0 = self.p0
    cdef int n2 = <int> self.q2, nr = 0, kp = <int> p0
    cdef double one = 1.0, zero = 0.0
    cdef char no = b'N', tr = b'T'
    cdef double acc
    cdef double* D = &self.Ldiag[j * p0 * p0]
    cdef const double* La
    cdef const double* Sinvp = &self.Sinv[0, 0] if self.q2 > 0 else NULL
    cdef const double* L21p = &self.L21[0]
    cdef const int* pos = &self.cross_pos[0] if self.cross_pos.shape[0] > 0 else NULL
    cdef const int* rp
    cdef const double* colp
    c0, c1 = self.cross_lofs[self.cross_colptr[j]], self.cross_lofs[self.cross_colptr[j + 1]]
    # Y_c = Σ_c2 Sinv[i_c, i_c2] L21_c2   (p_i x p0), row-major
    if self.scalar:  # every entry is a cross pair (cross_lofs[c] == c)
        for c in range(c0, c1):
            Y[c - c0] = Yall[c]
    elif p0 == 1:  # entry by entry, local pointers: the compiler keeps them in registers
        for c in range(c0, c1):
            colp = Sinvp + pos[c] * self.q2
            acc = 0.0
            for c2 in range(c0, c1):
                acc = acc + colp[pos[c2]] * L21p[c2]
            Y[c - c0] = acc
    else:  # Y' = X S⁻¹[rows, rows] with X (p0 x nr) the level's stacked L21'
        r0 = c0 // p0
        nr = <int> (c1 // p0 - r0)
        rp = pos + r0
        if nr > 0 and rp[nr - 1] - rp[0] == nr - 1:  # contiguous rows: S⁻¹ in place
            dgemm(&no, &no, &kp, &nr, &nr, &one, <double*> &L21p[r0 * p0], &kp,
                  &self.Sinv[rp[0], rp[0]], &n2, &zero, Y, &kp)
        elif nr > 0:
            for c2 in range(nr):  # gather S⁻¹[rows, rows] (symmetrised)
                colp = Sinvp + rp[c2] * self.q2
                for c in range(nr):
                    self.gbuf[c + c2 * nr] = colp[rp[c]]
            dgemm(&no, &no, &kp, &nr, &nr, &one, <double*> &L21p[r0 * p0], &kp, &self.gbuf[0], &nr, &zero, Y, &kp)
    # W_j = Σ_c L21_c' Y_c  -> P11 = I + W_j, then L_j⁻ᵀ P11 L_j⁻¹
    for s in range(p0 * p0):
        P11[s] = 0.0
    for s in range(p0):
        P11[s * p0 + s] = 1.0
    if p0 > 1 and nr > 0:  # P11[s, t] += Σ_rows X[s, row] Y'[t, row]
        dgemm(&no, &tr, &kp, &kp, &nr, &one, Y, &kp, <double*> &L21p[r0 * p0], &kp, &one, P11, &kp)
    for c in range(self.cross_colptr[j], self.cross_colptr[j + 1] if p0 == 1 else 0):
        pk = self.term_p[self.blk_term[self.cross_row[c]]]
        La = &self.L21[self.cross_lofs[c]]
        a = self.cross_lofs[c] - c0
        for s in range(p0):
            for t in range(p0):
                acc = 0.0
                for i in range(pk):
                    acc = acc + La[i * p0 + s] * Y[a + i * p0 + t]
                P11[s * p0 + t] += acc
    _sandwich_inv(D, P11, p0)


cdef int _scalar_y(BlockedKernel self, double* Yall) noexcept nogil:
    """Every term scalar (``self.scalar``: then L21 entries and cross pairs coincide): Y_c =
    Σ_c2 S⁻¹[i_c, i_c2] l_c2 for every cross pair c (c2 over c's level of the first term), in panels of S⁻¹'s columns that stay in cache (as the kernel's Schur
    update); each Y_c sums over c2 in the same order as a level-by-level loop.  0, or -1."""
    cdef Py_ssize_t j, c, c2, c0, end, beg, width, q2 = self.q2, nc = self.cross_row.shape[0]
    cdef const double* Sinvp = &self.Sinv[0, 0] if q2 > 0 else NULL
    cdef const double* L21p = &self.L21[0]
    cdef const int* pos = &self.cross_pos[0] if nc > 0 else NULL
    cdef const double* colp
    cdef double l
    cdef i64* cur = <i64*> malloc((self.nlev0 + 1) * sizeof(i64))
    if cur == NULL:
        return -1
    for c in range(nc):
        Yall[c] = 0.0
    for j in range(self.nlev0):
        cur[j] = self.cross_colptr[j]
    width = max(8, PANEL_DOUBLES // max(q2, 1))
    c0 = 0
    while c0 < q2:
        for j in range(self.nlev0):
            beg, end = self.cross_colptr[j], self.cross_colptr[j + 1]
            c2 = cur[j]
            while c2 < end and pos[c2] < c0 + width:
                colp = Sinvp + pos[c2] * q2
                l = L21p[c2]
                for c in range(beg, end):
                    Yall[c] += colp[pos[c]] * l
                c2 += 1
            cur[j] = c2
        c0 += width
    free(cur)
    return 0


cdef void _cross_inverse(BlockedKernel self, Py_ssize_t j, Py_ssize_t c, const double* Y,
                         double* Pyx) noexcept nogil:
    """(A⁻¹)_ij = -Y_c L_j⁻¹ (p_i x p0, row-major) for cross pair c = (i, j), Y from
    ``_level_inverse``."""
    cdef Py_ssize_t s, t, i, p0 = self.p0
    cdef Py_ssize_t pk = self.term_p[self.blk_term[self.cross_row[c]]]
    cdef Py_ssize_t a = self.cross_lofs[c] - self.cross_lofs[self.cross_colptr[j]]
    cdef double acc
    cdef const double* D = &self.Ldiag[j * p0 * p0]
    for s in range(pk):  # row s of Y times L_j⁻¹: solve x L_j = y (backward)
        for t in range(p0 - 1, -1, -1):
            acc = Y[a + s * p0 + t]
            for i in range(t + 1, p0):
                acc = acc - Pyx[s * p0 + i] * D[i * p0 + t]
            Pyx[s * p0 + t] = acc / D[t * p0 + t]
    for s in range(pk * p0):
        Pyx[s] = -Pyx[s]


cdef void _symmetrize(double* A, Py_ssize_t n) noexcept nogil:
    """Copy the lower triangle of a column-major n x n matrix to its upper one, in tiles."""
    cdef Py_ssize_t bi, bj, i, j, nb = 64  # tile size (literal steps below)
    for bj in range(0, n, 64):
        for bi in range(bj, n, 64):
            for j in range(bj, min(bj + nb, n)):
                for i in range(max(bi, j + 1), min(bi + nb, n)):
                    A[j + i * n] = A[i + j * n]


cdef void _sandwich_inv(const double* L, double* P, Py_ssize_t p) noexcept nogil:
    """P <- L⁻ᵀ P L⁻¹ for a lower-triangular row-major L (p x p)."""
    cdef Py_ssize_t r, c, i
    cdef double acc
    for r in range(p):  # P <- P L⁻¹ : each row x solves x L = row
        for c in range(p - 1, -1, -1):
            acc = P[r * p + c]
            for i in range(c + 1, p):
                acc = acc - P[r * p + i] * L[i * p + c]
            P[r * p + c] = acc / L[c * p + c]
    for c in range(p):  # P <- L⁻ᵀ P : each column x solves L' x = col
        for r in range(p - 1, -1, -1):
            acc = P[r * p + c]
            for i in range(r + 1, p):
                acc = acc - L[i * p + r] * P[i * p + c]
            P[r * p + c] = acc / L[r * p + r]


cdef void _acc_ptv(const double* P, Py_ssize_t pr, Py_ssize_t pc, const double* T, Py_ssize_t pt,
                   const double* V, Py_ssize_t pv, int transpose_p, double* Q, double* buf,
                   int transpose_v=0) noexcept nogil:
    """Q += op(P) T' op(V): op(P) = P (pr x pc, pc == pt) or P' (pc x pr, pr == pt); op(V) =
    V (pt x pv, row-major) or, with ``transpose_v``, V' of a row-major pv x pt V."""
    cdef Py_ssize_t s, t, i, a, nrow = pc if transpose_p else pr
    cdef double acc
    for i in range(pt):  # buf = T' op(V)  (pt x pv)
        for t in range(pv):
            acc = 0.0
            for a in range(i, pt):
                acc = acc + T[a + i * pt] * (V[t * pt + a] if transpose_v else V[a * pv + t])
            buf[i * pv + t] = acc
    for s in range(nrow):
        for t in range(pv):
            acc = 0.0
            for i in range(pt):
                acc = acc + (P[i * pc + s] if transpose_p else P[s * pc + i]) * buf[i * pv + t]
            Q[s * pv + t] += acc


def schur_inverse(BlockedKernel self):
    """S⁻¹ (q2 x q2, the kernel's internal order) for the dense part's Schur complement
    S = A22 - A21 A11⁻¹ A21', from the factor an update left (dpotri on a copy)."""
    cdef Py_ssize_t q2 = self.q2
    cdef int n2 = <int> q2, info = 0
    cdef char lo = b'L'
    out = np.array(self.S[:q2, :q2], order="F", copy=True)
    if q2 == 0:
        return out
    cdef double[::1, :] Sv = out
    with nogil:
        dpotri(&lo, &n2, &Sv[0, 0], &n2, &info)
        if info == 0:
            _symmetrize(&Sv[0, 0], q2)
    if info != 0:
        raise FloatingPointError("the Schur complement's factor is singular")
    return out
