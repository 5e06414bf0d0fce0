# Level codes (int32 or int64, 0-based) as the kernels take them: their range in one C pass, instead of
# numpy's np.min/np.max Python wrappers on every fit (issue 15's per-fit footprint); and the
# sort of a few int64 keys per level that pair coding and the blocked kernel's set-up share.
from libc.stdlib cimport qsort
from ._types cimport i64


ctypedef fused code_t:
    int
    i64


cdef inline void code_range(const code_t[::1] codes, i64* lo, i64* hi) noexcept nogil:
    """Smallest and largest code into lo, hi (0 and -1 when there are none)."""
    cdef Py_ssize_t i
    cdef i64 c
    lo[0], hi[0] = 0, -1
    if codes.shape[0] == 0:
        return
    lo[0] = hi[0] = codes[0]
    for i in range(1, codes.shape[0]):
        c = codes[i]
        if c < lo[0]:
            lo[0] = c
        elif c > hi[0]:
            hi[0] = c


cdef inline bint out_of_range(const code_t[::1] codes, i64 lo, i64 hi) noexcept nogil:
    """Whether some code lies outside lo <= c < hi (False when there are none)."""
    cdef i64 a, b
    code_range(codes, &a, &b)
    return codes.shape[0] > 0 and (a < lo or b >= hi)


cdef inline int _cmp_i64(const void* x, const void* y) noexcept nogil:
    cdef i64 u = (<const i64*> x)[0], v = (<const i64*> y)[0]
    return (u > v) - (u < v)


cdef inline void sort_i64(i64* a, Py_ssize_t m) noexcept nogil:
    """Sort a[0:m] ascending: insertion sort for the few keys of one level, else qsort."""
    cdef Py_ssize_t k, i
    cdef i64 x
    if m > 32:
        qsort(a, m, sizeof(i64), _cmp_i64)
        return
    for k in range(1, m):
        x = a[k]
        i = k - 1
        while i >= 0 and a[i] > x:
            a[i + 1] = a[i]
            i -= 1
        a[i + 1] = x
