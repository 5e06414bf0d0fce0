"""Orders of u's blocks: where each block's rows sit in the kernel's dense part.

The blocked kernel keeps the first term's blocks as they are and lays the others out in
reverse Cuthill-McKee order of the block co-occurrence graph, so that blocks updated
together (by the same first-term level) sit together in memory.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import reverse_cuthill_mckee

__all__ = ["locality_order"]

LOCALITY_MIN_BLOCKS = 64  # fewer blocks after the first term: their given order (RCM cost ~0.5 ms)


def locality_order(blk_start, blk_term, term_p, pair_row, pair_col, nlev0):
    """Internal block starts: first-term blocks as given, the rest in reverse Cuthill-McKee
    order of the block co-occurrence graph, so that blocks updated together sit together."""
    nb = len(blk_term)
    istart = np.array(blk_start, dtype=np.int32, copy=True)
    if nb - nlev0 <= LOCALITY_MIN_BLOCKS:  # a dense part this small stays in cache in any order
        return istart
    G = sp.coo_matrix((np.ones(len(pair_row)), (pair_row, pair_col)), shape=(nb, nb)).tocsr()
    G = (G + G.T).tocsr()
    order = np.asarray(reverse_cuthill_mckee(G, symmetric_mode=True))
    rest = order[order >= nlev0]
    sizes = np.asarray(term_p)[np.asarray(blk_term)[rest]]
    q1 = int(nlev0 * term_p[0])
    istart[rest] = q1 + np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return istart
