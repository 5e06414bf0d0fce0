"""Compiled kernels (Cython on CHOLMOD): no policy, no pandas, GIL released in the loops."""
