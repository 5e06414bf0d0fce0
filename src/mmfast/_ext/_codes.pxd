# Level codes (int32, 0-based) as the kernels take them: their range in one C pass, instead of
# numpy's np.min/np.max Python wrappers on every fit (issue 15's per-fit footprint).


cdef inline void code_range(const int[::1] codes, int* lo, int* hi) noexcept nogil:
    """Smallest and largest code into lo, hi (0 and -1 when there are none)."""
    cdef Py_ssize_t i
    cdef int c
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
