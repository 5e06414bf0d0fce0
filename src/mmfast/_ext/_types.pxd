# Fixed-width integer types of the kernels: numpy int64 arrays are i64 memoryviews everywhere
# (C's `long` is 32 bits on Windows, so `long[::1]` would reject them there).
from libc.stdint cimport int64_t

ctypedef int64_t i64
