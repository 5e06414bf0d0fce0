# The blocked kernel's Schur-complement downdate S -= L21 L21' (_blocked.pyx), one routine per
# first-term width.  Inline over raw arrays, as _dense.pxd: S is column-major q2 x q2, only its
# lower triangle is written (LAPACK's dpotrf reads no other part).
from libc.stdlib cimport malloc, free
from scipy.linalg.cython_blas cimport dsyrk
from ._types cimport i64

cdef enum:
    PANEL_DOUBLES = 65536  # S entries per panel of the scalar update (512 KB: in L2)
    SMALL_LEVEL_WORK = 1024  # rows² · p0 of a level below which its update skips BLAS


cdef inline int schur_scalar(double* S, Py_ssize_t q2, const double* L21, const int* pos,
                             const i64* lofs, const int* colptr, Py_ssize_t nlev0) noexcept nogil:
    """Scalar first term: S[pos a, pos b] -= l_a l_b entry by entry, in panels of S's columns
    that stay in cache (a large crossed S does not: scattered updates went to memory); each entry
    sums its levels in the same order.  -1 if out of memory."""
    cdef i64* cur = <i64*> malloc((nlev0 + 1) * sizeof(i64))
    cdef Py_ssize_t j, a, b, end, c0 = 0, width = max(8, PANEL_DOUBLES // q2)
    cdef double acc
    cdef double* col
    if cur == NULL:
        return -1
    for j in range(nlev0):
        cur[j] = lofs[colptr[j]]  # entries, not pairs
    while c0 < q2:
        for j in range(nlev0):
            end = lofs[colptr[j + 1]]
            b = cur[j]
            while b < end and pos[b] < c0 + width:
                acc = L21[b]
                col = S + pos[b] * q2
                for a in range(b, end):
                    col[pos[a]] -= L21[a] * acc
                b += 1
            cur[j] = b
        c0 += width
    free(cur)
    return 0


cdef inline void schur_levels(double* S, Py_ssize_t q2, double* L21, const int* cross_pos,
                              const i64* lofs, const int* colptr, Py_ssize_t nlev0, Py_ssize_t p0,
                              double* gbuf) noexcept nogil:
    """First term of width p0 > 1: S -= X'X per level, X the level's stacked L21'.  A level
    with few rows (nested designs: one or two) by direct dot products, as a BLAS call per level
    costs more than its arithmetic there; else one dsyrk, in place where its rows are contiguous
    in S, else through ``gbuf`` entry by entry."""
    cdef Py_ssize_t j, a, b, r0, i
    cdef int nr, kp = <int> p0, n2 = <int> q2
    cdef double one = 1.0, mone = -1.0, zero = 0.0, acc
    cdef char lo = b'L', tr = b'T'
    cdef double* Lp
    cdef const int* pos
    cdef double* col
    for j in range(nlev0):
        r0 = lofs[colptr[j]] // p0
        nr = <int> (lofs[colptr[j + 1]] // p0 - r0)
        if nr == 0:
            continue
        Lp = L21 + r0 * p0
        pos = cross_pos + r0
        if nr * nr * p0 <= SMALL_LEVEL_WORK:  # rows sorted by S position: lower triangle
            for b in range(nr):
                col = S + pos[b] * q2
                for a in range(b, nr):
                    acc = 0.0
                    for i in range(p0):
                        acc = acc + Lp[a * p0 + i] * Lp[b * p0 + i]
                    col[pos[a]] -= acc
            continue
        if pos[nr - 1] - pos[0] == nr - 1:  # rows contiguous in S: update it in place
            dsyrk(&lo, &tr, &nr, &kp, &mone, Lp, &kp, &one, S + pos[0] + pos[0] * q2, &n2)
            continue
        dsyrk(&lo, &tr, &nr, &kp, &one, Lp, &kp, &zero, gbuf, &nr)
        for b in range(nr):  # scattered rows: subtract the lower triangle entry by entry
            col = S + pos[b] * q2
            for a in range(b, nr):
                col[pos[a]] -= gbuf[a + b * nr]
