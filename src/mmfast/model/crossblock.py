"""One sparse cross-product block C = Z_e'Z_r (eliminated term's levels x the other levels)
and the three products the iterative solver needs, split over threads by C's rows
(``_ext/_pcg.pyx`` releases the GIL; the scattering products give each thread its output).
Only C's CSR arrays are held: C' is never stored (ml-32m-sized: 32M pairs, 384 MB once).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp

from .._ext import _pcg
from ..errors import DataError
from ..threads import usable_cores

__all__ = ["CrossBlock"]

MIN_NNZ_PER_THREAD = 200_000  # below this a second thread costs more than it saves


class CrossBlock:
    """C (ne x nr, CSR, int64 row pointers) with threaded C Y, C'X and C' diag(w) C Y."""

    def __init__(self, C: sp.csr_matrix, threads: int | None = None):
        C = sp.csr_matrix(C)
        C.sum_duplicates()
        self.shape = C.shape
        if C.nnz and (C.indices.max() >= C.shape[1] or C.indices.min() < 0):
            raise DataError("cross-product block has a column index outside its shape")
        self.indptr = C.indptr.astype(np.int64)
        self.indices = C.indices.astype(np.int32)
        self.data = C.data.astype(float)
        self.nnz = int(C.nnz)
        nt = usable_cores() if threads is None else int(threads)
        nt = max(1, min(nt, self.nnz // MIN_NNZ_PER_THREAD))
        cuts = np.searchsorted(self.indptr, np.linspace(0, self.nnz, nt + 1)[1:-1])
        bounds = np.concatenate([[0], cuts, [C.shape[0]]]).astype(np.int64)
        self.ranges = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a] or [(0, 0)]
        self._pool = ThreadPoolExecutor(len(self.ranges)) if len(self.ranges) > 1 else None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_pool"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if len(self.ranges) > 1:
            self._pool = ThreadPoolExecutor(len(self.ranges))

    def _run(self, fn):
        """fn(r0, r1) over the row ranges, in the pool when there is one; the results in order."""
        if self._pool is None:
            return [fn(*r) for r in self.ranges]
        return list(self._pool.map(lambda r: fn(*r), self.ranges))

    def gather(self, Y: np.ndarray) -> np.ndarray:
        """C Y (ne x k) for Y (nr x k)."""
        Y = np.ascontiguousarray(Y, dtype=float)
        out = np.empty((self.shape[0], Y.shape[1]))
        self._run(lambda a, b: _pcg.gather(self.indptr, self.indices, self.data, self.shape[1], Y, out, a, b))
        return out

    def scatter(self, X: np.ndarray, squared: bool = False) -> np.ndarray:
        """C'X (nr x k) for X (ne x k); with ``squared`` the entries of C squared."""
        X = np.ascontiguousarray(X, dtype=float)

        def part(a, b):
            out = np.zeros((self.shape[1], X.shape[1]))
            _pcg.scatter(self.indptr, self.indices, self.data, self.shape[1], X, out, a, b, squared)
            return out

        return _summed(self._run(part))

    def sandwich(self, w: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """C' diag(w) C Y (nr x k) for Y (nr x k), C read once."""
        Y = np.ascontiguousarray(Y, dtype=float)
        w = np.ascontiguousarray(w, dtype=float)

        def part(a, b):
            out = np.zeros(Y.shape)
            _pcg.gather_scatter(self.indptr, self.indices, self.data, self.shape[1], w, Y, out, a, b)
            return out

        return _summed(self._run(part))


def _summed(parts: list) -> np.ndarray:
    """The threads' outputs added into the first."""
    out = parts[0]
    for o in parts[1:]:
        out += o
    return out
