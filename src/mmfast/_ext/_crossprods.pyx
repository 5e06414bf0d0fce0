# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Reweighted cross-products for GLMMs with several random-effects terms: Z'WZ as the block
structure's sub-blocks (from its ``row_pair`` table), Z'W[X z] and [X z]'W[X z] in one pass over
the rows, and the linear predictor from u; the factorisation itself is the LMM kernel's.

Each row visits only its nonzero term columns: an indicator term ``(0 + factor(block) | g)`` with
p columns adds one product to its p x p block per row, not p², so a PIRLS iteration costs
O(nnz(Z)) over the rows whatever the structure on top of the term."""
import numpy as np
cimport numpy as cnp
from libc.string cimport memset
from ._checks import check_length
from ..errors import DataError
from ._types cimport i64

cnp.import_array()

cdef extern from *:
    void __builtin_prefetch(const void* addr) noexcept nogil

cdef enum:
    AHEAD = 16  # rows ahead whose A⁻¹ pair blocks hat_rows prefetches (random reads)


def nonzero_slots(X):
    """(values, columns), each n x nz: row i's nonzero entries of the term matrix X in column
    order, padded with zero-valued slots to nz, the most any row has (X itself when nz = p)."""
    n, p = X.shape
    nz = X != 0.0
    width = max(int(nz.sum(axis=1).max()) if n else 0, 1)
    if width >= p:
        return X, np.broadcast_to(np.arange(p, dtype=np.int32), (n, p))
    order = np.argsort(~nz, axis=1, kind="stable")[:, :width].astype(np.int32)
    return np.take_along_axis(X, order, axis=1), order


cdef class Crossprods:
    """Reweighted cross-products in the layout of ``design.blocks.BlockStructure`` (several terms).

    Z is held row-wise and compressed: per term k, ``term_nz[k]`` slots per row (the most
    nonzeros any row has in the term's model matrix), ``zval`` (n x sum term_nz) their values
    and ``zcol`` their columns within the term (zero-valued padding where a row has fewer);
    ``zbase`` (n x nterms) the first u index of each row's block per term; ``vidx``
    (npieces x n) the offset in V of the sub-block each row adds to, per term pair.
    """

    cdef Py_ssize_t n, nterms, npieces, nzc, q, nv, tsize
    cdef double[:, ::1] zval
    cdef int[:, ::1] zcol
    cdef i64[:, ::1] zbase, vidx
    cdef int[::1] term_p, term_col, term_nz, tofs, piece_k, piece_m, ones, toff, tlev
    cdef double[::1] acc, lu

    def __init__(self, blocks, terms):
        self.n = blocks.row_pair.shape[1]
        self.nterms = len(terms)
        self.q = blocks.q
        self.nv = len(blocks.V)
        vals, cols = zip(*[nonzero_slots(np.asarray(t.X, dtype=np.float64)) for t in terms])
        self.zval = np.ascontiguousarray(np.column_stack(vals), dtype=np.float64)
        self.zcol = np.ascontiguousarray(np.column_stack(cols), dtype=np.int32)
        self.nzc = self.zval.shape[1]
        tnz = np.array([v.shape[1] for v in vals], dtype=np.int32)
        self.term_nz = tnz
        self.zbase = np.ascontiguousarray(np.column_stack(
            [t.offset + t.factor.codes.astype(np.int64) * t.p for t in terms]), dtype=np.int64)
        tp = np.array([t.p for t in terms], dtype=np.int32)
        self.term_p = tp
        self.tsize = int(np.sum(tp.astype(np.int64) ** 2))
        self.term_col = (np.cumsum(tnz) - tnz).astype(np.int32)  # first slot of each term
        self.toff = np.array([t.offset for t in terms], dtype=np.int32)
        self.tlev = np.array([t.nlevels for t in terms], dtype=np.int32)
        self.lu = np.zeros(self.q)
        self.tofs = (np.cumsum(tp.astype(np.int64) ** 2) - tp.astype(np.int64) ** 2).astype(np.int32)
        self.ones = np.array([t.p == 1 and bool(np.all(t.X == 1.0)) for t in terms], dtype=np.int32)
        self.piece_k = np.array([k for k, m in blocks.pieces], dtype=np.int32)
        self.piece_m = np.array([m for k, m in blocks.pieces], dtype=np.int32)
        self.npieces = len(blocks.pieces)
        self.vidx = np.ascontiguousarray(np.asarray(blocks.pair_vofs)[np.asarray(blocks.row_pair)],
                                         dtype=np.int64)
        self.acc = np.zeros(64)

    def reweight(self, const double[::1] w, const double[::1] zt, X, double[::1] V,
                 double[::1, :] ZtW, double[:, ::1] WtW):
        """V <- Z'WZ sub-blocks, ZtW <- Z'W[X zt], WtW <- [X zt]'W[X zt] (X may be None)."""
        cdef const double[:, ::1] Xv
        cdef Py_ssize_t px = 0
        if w.shape[0] != self.n:
            check_length("w", w.shape[0], self.n)
        if zt.shape[0] != self.n:
            check_length("zt", zt.shape[0], self.n)
        if X is not None:
            Xv = X
            px = Xv.shape[1]
            if Xv.shape[0] != self.n:
                check_length("X (rows)", Xv.shape[0], self.n)
        else:
            Xv = np.zeros((1, 1))
        if V.shape[0] != self.nv:
            check_length("V", V.shape[0], self.nv)
        if ZtW.shape[0] != self.q:
            check_length("ZtW (rows)", ZtW.shape[0], self.q)
        if ZtW.shape[1] != px + 1 or WtW.shape[0] != px + 1 or WtW.shape[1] != px + 1:
            raise DataError("kernel arguments ZtW / WtW do not match the number of columns of "
                            f"[X zt] ({px + 1})")
        if (px + 1) * (px + 1) > self.acc.shape[0]:
            self.acc = np.zeros((px + 1) * (px + 1))
        cdef Py_ssize_t i, r, k, m, s, t, pk, pm, ck, cm, nk, nm, c1, c2, n = self.n, nzc = self.nzc
        cdef Py_ssize_t ldz = ZtW.shape[0], npc = px + 1, nt = self.nterms
        cdef i64 vo, row, so
        cdef double wi, xs, wz, acc
        cdef const i64* vid
        cdef const double* zv = &self.zval[0, 0]
        cdef const int* zc = &self.zcol[0, 0]
        cdef const int* tnz = &self.term_nz[0]
        cdef const i64* zb = &self.zbase[0, 0]
        cdef const int* tp = &self.term_p[0]
        cdef const int* tc = &self.term_col[0]
        cdef const int* ones = &self.ones[0]
        cdef const int* pks = &self.piece_k[0]
        cdef const int* pms = &self.piece_m[0]
        cdef const double* Xp = &Xv[0, 0]
        cdef const double* wp = &w[0]
        cdef const double* zp = &zt[0]
        cdef double* Vp = &V[0]
        cdef double* Zp = &ZtW[0, 0]
        cdef double* Zy = Zp + px * ldz
        cdef double* A = &self.acc[0]
        cdef int allscalar = 1
        for k in range(nt):
            if tp[k] != 1:
                allscalar = 0
        with nogil:
            memset(Vp, 0, V.shape[0] * sizeof(double))
            memset(Zp, 0, ldz * npc * sizeof(double))
            memset(A, 0, npc * npc * sizeof(double))
            for r in range(self.npieces):
                k = pks[r]
                m = pms[r]
                pk = tp[k]
                pm = tp[m]
                ck = tc[k]
                cm = tc[m]
                vid = &self.vidx[r, 0]
                if ones[k] and ones[m]:  # sum runs of equal targets in a register
                    vo = vid[0]
                    wz = 0.0
                    for i in range(n):
                        if vid[i] != vo:
                            Vp[vo] += wz
                            vo = vid[i]
                            wz = 0.0
                        wz = wz + wp[i]
                    Vp[vo] += wz
                elif pk == 1 and pm == 1:
                    for i in range(n):
                        Vp[vid[i]] += wp[i] * zv[i * nzc + ck] * zv[i * nzc + cm]
                else:  # the row's nonzero slots of term k times those of term m
                    nk = tnz[k]
                    nm = tnz[m]
                    for i in range(n):
                        vo = vid[i]
                        wi = wp[i]
                        for s in range(nk):
                            xs = wi * zv[i * nzc + ck + s]
                            if xs == 0.0:
                                continue
                            so = vo + zc[i * nzc + ck + s] * pm
                            for t in range(nm):
                                Vp[so + zc[i * nzc + cm + t]] += xs * zv[i * nzc + cm + t]
            if allscalar:  # Z'W[X zt] with one column per term (nzc == nt)
                for k in range(nt):
                    row = zb[k]
                    acc = 0.0
                    for i in range(n):
                        xs = zv[i * nt + k] * wp[i]
                        if zb[i * nt + k] != row:
                            Zy[row] += acc
                            row = zb[i * nt + k]
                            acc = 0.0
                        acc = acc + xs * zp[i]
                        for c1 in range(px):
                            Zp[row + c1 * ldz] += xs * Xp[i * px + c1]
                    Zy[row] += acc
            else:
                for i in range(n):
                    wi = wp[i]
                    wz = wi * zp[i]
                    for k in range(nt):
                        nk = tnz[k]
                        ck = tc[k]
                        for s in range(nk):
                            xs = zv[i * nzc + ck + s]
                            row = zb[i * nt + k] + zc[i * nzc + ck + s]
                            Zy[row] += xs * wz
                            for c1 in range(px):
                                Zp[row + c1 * ldz] += xs * wi * Xp[i * px + c1]
            acc = 0.0
            for i in range(n):
                wi = wp[i]
                for c1 in range(px):
                    xs = wi * Xp[i * px + c1]
                    for c2 in range(c1, px):
                        A[c1 * npc + c2] += xs * Xp[i * px + c2]
                    A[c1 * npc + px] += xs * zp[i]
                acc = acc + wi * zp[i] * zp[i]
            A[px * npc + px] = acc
            for c1 in range(npc):
                for c2 in range(c1, npc):
                    WtW[c1, c2] = A[c1 * npc + c2]
                    WtW[c2, c1] = A[c1 * npc + c2]

    def linpred(self, const double[::1] base, const double[::1] u, const double[::1] T,
                double[::1] out):
        """out = base + Z Λ u, Λ from the flat column-major templates T: Λu per level first
        (p x p per level of a vector-valued term), then each row's nonzero slots."""
        if base.shape[0] != self.n:
            check_length("base", base.shape[0], self.n)
        if u.shape[0] != self.q:
            check_length("u", u.shape[0], self.q)
        if T.shape[0] != self.tsize:
            check_length("T", T.shape[0], self.tsize)
        if out.shape[0] != self.n:
            check_length("out", out.shape[0], self.n)
        cdef Py_ssize_t i, k, s, t, l, pk, ck, nk, nzc = self.nzc, nt = self.nterms
        cdef i64 row
        cdef double acc, bs
        cdef const double* zv = &self.zval[0, 0]
        cdef const int* zc = &self.zcol[0, 0]
        cdef const int* tnz = &self.term_nz[0]
        cdef double* lu = &self.lu[0]
        cdef const i64* zb = &self.zbase[0, 0]
        cdef const int* tp = &self.term_p[0]
        cdef const int* tc = &self.term_col[0]
        cdef const int* to = &self.tofs[0]
        cdef const double* Tp = &T[0]
        cdef const double* up = &u[0]
        cdef const double* bp = &base[0]
        cdef double* op = &out[0]
        with nogil:
            for k in range(nt):
                pk = tp[k]
                if pk == 1:
                    continue
                for l in range(self.tlev[k]):
                    row = self.toff[k] + l * pk
                    for s in range(pk):
                        bs = 0.0  # (T_k u_blk)[s] = sum_{t <= s} T_k[s, t] u[t]
                        for t in range(s + 1):
                            bs = bs + Tp[to[k] + s + t * pk] * up[row + t]
                        lu[row + s] = bs
            for i in range(self.n):
                acc = bp[i]
                for k in range(nt):
                    pk = tp[k]
                    ck = tc[k]
                    row = zb[i * nt + k]
                    if pk == 1:
                        acc = acc + zv[i * nzc + ck] * Tp[to[k]] * up[row]
                        continue
                    nk = tnz[k]
                    for s in range(nk):
                        acc = acc + zv[i * nzc + ck + s] * lu[row + zc[i * nzc + ck + s]]
                op[i] = acc



    def hat_rows(self, const double[::1] T, const double[::1] PP, const double[::1] w,
                 double[::1] h, double[::1] D):
        """The Laplace gradient's first row pass (``model.laplace_gradient``): h_i =
        (ZΛ A⁻¹ Λ'Z')_ii into h, and D_t[r, c] += 2 Σ_i w_i x_i[r] (ZΛ A⁻¹)_{i, c} per term t
        into D (p x p row-major per term, at T's offsets).

        A⁻¹'s sub-blocks G come multiplied by the templates: P = G T_m' and P2 = T_k G per pair
        (k, m), side by side in PP at twice the pair's offset in V (one cache line for a scalar
        pair, whose G a row reads at random), so a row costs O(p nnz) per term pair, not p²."""
        if T.shape[0] != self.tsize:
            check_length("T", T.shape[0], self.tsize)
        if D.shape[0] != self.tsize:
            check_length("D", D.shape[0], self.tsize)
        if PP.shape[0] != 2 * self.nv:
            check_length("PP", PP.shape[0], 2 * self.nv)
        if w.shape[0] != self.n:
            check_length("w", w.shape[0], self.n)
        if h.shape[0] != self.n:
            check_length("h", h.shape[0], self.n)
        cdef Py_ssize_t i, r, k, m, s, t, a, c, cs, pk, pm, ck, cm, mo, nzc = self.nzc, nt = self.nterms
        cdef i64 vo
        cdef double v, acc
        cdef int[::1] mofs_a = (np.cumsum(self.term_p) - np.asarray(self.term_p)).astype(np.int32)
        cdef double[::1] buf = np.zeros(2 * max(int(np.sum(self.term_p)), 1))
        cdef const int* mofs = &mofs_a[0]
        cdef double* vb = &buf[0]
        cdef double* gb = vb + buf.shape[0] // 2
        cdef const double* zv = &self.zval[0, 0]
        cdef const int* zc = &self.zcol[0, 0]
        cdef const int* tnz = &self.term_nz[0]
        cdef const int* tp = &self.term_p[0]
        cdef const int* tc = &self.term_col[0]
        cdef const int* to = &self.tofs[0]
        cdef const double* Tp = &T[0]
        cdef const double* Pp
        cdef const double* P2p
        cdef double* Dp = &D[0]
        with nogil:
            for i in range(self.n):
                if i + AHEAD < self.n:
                    for r in range(self.npieces):
                        __builtin_prefetch(&PP[2 * self.vidx[r, i + AHEAD]])
                for k in range(nt):  # (ZΛ)_i on term k's slots: Σ_s x_s T_k[c_s, :]
                    pk = tp[k]
                    ck = tc[k]
                    mo = mofs[k]
                    for c in range(pk):
                        vb[mo + c] = 0.0
                        gb[mo + c] = 0.0
                    for s in range(tnz[k]):
                        cs = zc[i * nzc + ck + s]
                        v = zv[i * nzc + ck + s]
                        for c in range(cs + 1):  # T lower triangular (column-major)
                            vb[mo + c] += v * Tp[to[k] + cs + c * pk]
                for r in range(self.npieces):  # (ZΛ A⁻¹)_i on the slots: G T_m' x^m (+ G' T_k' x^k)
                    k = self.piece_k[r]
                    m = self.piece_m[r]
                    pk = tp[k]
                    pm = tp[m]
                    ck = tc[k]
                    cm = tc[m]
                    vo = self.vidx[r, i]
                    Pp = &PP[2 * vo]
                    P2p = Pp + pk * pm
                    for t in range(tnz[m]):
                        cs = zc[i * nzc + cm + t]
                        v = zv[i * nzc + cm + t]
                        for a in range(pk):
                            gb[mofs[k] + a] += v * Pp[a * pm + cs]
                    if k != m:
                        for s in range(tnz[k]):
                            cs = zc[i * nzc + ck + s]
                            v = zv[i * nzc + ck + s]
                            for a in range(pm):
                                gb[mofs[m] + a] += v * P2p[cs * pm + a]
                acc = 0.0
                for k in range(nt):
                    for c in range(tp[k]):
                        acc = acc + vb[mofs[k] + c] * gb[mofs[k] + c]
                h[i] = acc
                for k in range(nt):
                    pk = tp[k]
                    ck = tc[k]
                    for s in range(tnz[k]):
                        cs = zc[i * nzc + ck + s]
                        v = 2.0 * w[i] * zv[i * nzc + ck + s]
                        for c in range(pk):
                            Dp[to[k] + cs * pk + c] += v * gb[mofs[k] + c]

    def zt_rows(self, const double[::1] v, double[::1] out):
        """out = Z'v (q), by each row's nonzero slots."""
        if v.shape[0] != self.n:
            check_length("v", v.shape[0], self.n)
        if out.shape[0] != self.q:
            check_length("out", out.shape[0], self.q)
        cdef Py_ssize_t i, k, s, nzc = self.nzc, nt = self.nterms
        with nogil:
            for i in range(self.q):
                out[i] = 0.0
            for i in range(self.n):
                for k in range(nt):
                    for s in range(self.term_nz[k]):
                        out[self.zbase[i, k] + self.zcol[i, self.term_col[k] + s]] += (
                            v[i] * self.zval[i, self.term_col[k] + s])

    def score_rows(self, const double[::1] a, const double[::1] r, const double[::1] u,
                   const double[::1] z, double[::1] G):
        """The Laplace gradient's second row pass: G_t[rr, c] += Σ_i x_i[rr] (a_i u + r_i z)
        on row i's block of term t (p x p row-major per term, at T's offsets)."""
        if a.shape[0] != self.n:
            check_length("a", a.shape[0], self.n)
        if r.shape[0] != self.n:
            check_length("r", r.shape[0], self.n)
        if u.shape[0] != self.q:
            check_length("u", u.shape[0], self.q)
        if z.shape[0] != self.q:
            check_length("z", z.shape[0], self.q)
        if G.shape[0] != self.tsize:
            check_length("G", G.shape[0], self.tsize)
        cdef Py_ssize_t i, k, s, c, cs, pk, ck, nzc = self.nzc, nt = self.nterms
        cdef i64 row
        cdef double v
        with nogil:
            for i in range(self.n):
                for k in range(nt):
                    pk = self.term_p[k]
                    ck = self.term_col[k]
                    row = self.zbase[i, k]
                    for s in range(self.term_nz[k]):
                        cs = self.zcol[i, ck + s]
                        v = self.zval[i, ck + s]
                        for c in range(pk):
                            G[self.tofs[k] + cs * pk + c] += v * (a[i] * u[row + c] + r[i] * z[row + c])
