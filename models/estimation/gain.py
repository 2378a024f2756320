r"""The gain matrix :math:`G = H^T W H` of the normal equations: assembly and factorisation.

H has a fixed pattern per sensor set, so G's pattern (upper triangle) and the pairs of
H entries that make each of its entries are computed once; per iteration

.. math:: G_{ab} = \sum_i w_i H_{ia} H_{ib}

is one ``bincount`` over those pairs, and :math:`H^T W r` one more. Two factorisations
share this: :class:`DenseGain` (LAPACK Cholesky, fastest up to a few hundred states)
and :class:`SparseGain` (QDLDL's sparse LDL^T with its ordering and symbolic analysis
done once, for thousands of states; SuperLU when qdldl is not installed). Both
factorise the diagonally scaled :math:`\tilde G = D^{-1/2} G D^{-1/2}`
(:math:`D = \operatorname{diag} G`) so that a tiny pivot of :math:`\tilde G` means an
unobservable state whatever the spread of the weights, and both give
:math:`\operatorname{diag}(H G^{-1} H^T)` for the normalised residuals.

References
----------
.. [1] A. Abur and A. G. Exposito, *Power System State Estimation: Theory and
   Implementation*, ch. 2 and 4. New York: Marcel Dekker, 2004.
.. [2] G. Banjac, B. Stellato, P. Goulart, "QDLDL: a free LDL factorization routine",
   https://github.com/osqp/qdldl
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.linalg import lapack

__all__ = ["DenseGain", "SingularGainError", "SparseGain"]

#: Smallest pivot of the diagonally scaled gain matrix still taken as observable.
PIVOT_TOLERANCE = 1e-11
#: A Gauss-Newton step larger than this (rad or pu) comes from a numerically singular G.
MAX_SANE_STEP = 1e4
#: Rows per block when solving for diag(H G^-1 H^T) with the sparse factor.
BLOCK = 256


class SingularGainError(np.linalg.LinAlgError):
    """The gain matrix is singular: the measurements do not determine every state."""


class _Gain:
    """Shared part: H values on the pattern, G's upper triangle by pair products."""

    def __init__(self, h_row: np.ndarray, h_col: np.ndarray, shape: tuple[int, int]) -> None:
        self.h_row, self.h_col, self.shape = h_row, h_col, shape
        n = shape[1]
        starts = np.r_[0, np.cumsum(np.bincount(h_row, minlength=shape[0]))]
        first, second = [], []
        for i in range(shape[0]):  # once per sensor set
            entries = np.arange(starts[i], starts[i + 1])
            a, b = np.triu_indices(len(entries))
            first.append(entries[a])
            second.append(entries[b])
        p1 = np.concatenate(first).astype(np.int64) if first else np.zeros(0, np.int64)
        p2 = np.concatenate(second).astype(np.int64) if second else np.zeros(0, np.int64)
        c1, c2 = h_col[p1], h_col[p2]
        lo, hi = np.minimum(c1, c2), np.maximum(c1, c2)
        key = hi * n + lo  # CSC order of the upper triangle: by column hi, then row lo
        keys, slot = np.unique(np.r_[key, np.arange(n) * (n + 1)], return_inverse=True)
        self._p1, self._p2, self._prow = p1, p2, h_row[p1]
        self._slot = slot[: len(key)]
        self.g_row = (keys % n).astype(np.int64)  # upper triangle: g_row <= g_col
        self.g_col = (keys // n).astype(np.int64)
        self._diag = np.searchsorted(keys, np.arange(n) * (n + 1))
        self._n_g = len(keys)
        self._scale = np.ones(n)
        self._values = np.zeros(len(h_row))
        self._w = np.zeros(shape[0])

    def _assemble(self, values: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Scaled upper-triangle data of G (CSC order); keeps H and w for later."""
        self._values, self._w = values, w
        g = np.bincount(
            self._slot,
            weights=values[self._p1] * values[self._p2] * w[self._prow],
            minlength=self._n_g,
        )
        diagonal = g[self._diag]
        if not np.all(np.isfinite(g)):
            raise SingularGainError("the gain matrix has non-finite entries")
        empty = np.flatnonzero(diagonal <= 0)
        if len(empty):
            raise SingularGainError(
                f"{len(empty)} state(s) have no weighted measurement (first: state {empty[0]})"
            )
        scale = 1.0 / np.sqrt(diagonal)
        self._scale = scale
        return g * scale[self.g_row] * scale[self.g_col]

    def _gradient(self, r: np.ndarray) -> np.ndarray:
        r"""Scaled :math:`D^{-1/2} H^T W r`."""
        weighted = self._values * (self._w * r)[self.h_row]
        return np.bincount(self.h_col, weights=weighted, minlength=self.shape[1]) * self._scale

    def _check_step(self, dx: np.ndarray) -> np.ndarray:
        step = np.max(np.abs(dx)) if len(dx) else 0.0
        if not np.isfinite(step) or step > MAX_SANE_STEP:
            raise SingularGainError(f"the gain matrix is numerically singular (step {step:.1e})")
        return dx

    def h_dense(self) -> np.ndarray:
        """H as a dense array (for the normalised residuals)."""
        h = np.zeros(self.shape)
        h[self.h_row, self.h_col] = self._values
        return h

    def h_sparse(self) -> sp.csr_matrix:
        """H as a CSR matrix."""
        return sp.csr_matrix((self._values, (self.h_row, self.h_col)), shape=self.shape)


class DenseGain(_Gain):
    """Dense Cholesky factor of G (LAPACK ``potrf``/``potrs``)."""

    def __init__(self, h_row: np.ndarray, h_col: np.ndarray, shape: tuple[int, int]) -> None:
        super().__init__(h_row, h_col, shape)
        n = shape[1]
        self._flat = self.g_col * n + self.g_row  # row-major (g_col, g_row): Fortran upper
        self._g = np.zeros((n, n))

    def factor(self, values: np.ndarray, w: np.ndarray) -> None:
        """Take H's ``values`` on its pattern and factorise G for weights ``w``."""
        g = self._g
        g.ravel()[self._flat] = self._assemble(values, w)
        # g holds G's upper triangle in Fortran order, read in place by LAPACK via g.T
        factor, info = lapack.dpotrf(g.T, lower=False, clean=False, overwrite_a=False)
        if info != 0:
            raise SingularGainError(f"the gain matrix is not positive definite (pivot {info})")
        pivots = np.diag(factor) ** 2
        if pivots.min() < PIVOT_TOLERANCE:
            raise SingularGainError(
                f"the gain matrix is singular (scaled pivot {pivots.min():.1e} at state "
                f"{int(np.argmin(pivots))})"
            )
        self._factor = factor

    def solve(self, r: np.ndarray) -> np.ndarray:
        """The Gauss-Newton step :math:`G^{-1} H^T W r` for residuals ``r``."""
        x, _ = lapack.dpotrs(self._factor, self._gradient(r), lower=False)
        return self._check_step(x * self._scale)

    def hgh_diagonal(self) -> np.ndarray:
        r""":math:`\operatorname{diag}(H G^{-1} H^T)`, one value per row of H."""
        hs = self.h_dense() * self._scale[None, :]
        x, _ = lapack.dpotrs(self._factor, hs.T, lower=False)
        return np.einsum("ij,ji->i", hs, x)


class SparseGain(_Gain):
    """Sparse LDL^T factor of G (QDLDL, symbolic analysis reused; else SuperLU)."""

    def __init__(self, h_row: np.ndarray, h_col: np.ndarray, shape: tuple[int, int]) -> None:
        super().__init__(h_row, h_col, shape)
        n = shape[1]
        self._indptr = np.r_[0, np.cumsum(np.bincount(self.g_col, minlength=n))].astype(np.int32)
        self._indices = self.g_row.astype(np.int32)
        self._qdldl = None
        self._selected = None  # (perm, SelectedInverse, positions of H's pairs in Z)

    def _upper(self, data: np.ndarray) -> sp.csc_matrix:
        n = self.shape[1]
        return sp.csc_matrix((data, self._indices, self._indptr), shape=(n, n))

    def factor(self, values: np.ndarray, w: np.ndarray) -> None:
        """Take H's ``values`` on its pattern and factorise G for weights ``w``."""
        upper = self._upper(self._assemble(values, w))
        self._g_upper = upper
        try:
            import qdldl
        except ImportError:  # pragma: no cover - qdldl is a dependency
            self._lu_factor(upper)
            return
        try:
            if self._qdldl is None:
                self._qdldl = qdldl.Solver(upper, upper=True)
            else:
                self._qdldl.update(upper, upper=True)
        except ValueError as exc:
            self._qdldl = None
            raise SingularGainError(f"the gain matrix is singular: {exc}") from exc
        self._solve = self._qdldl.solve

    def _lu_factor(self, upper: sp.csc_matrix) -> None:
        full = (upper + sp.triu(upper, 1).T).tocsc()
        try:
            lu = spla.splu(full, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0)
        except RuntimeError as exc:
            raise SingularGainError(f"the gain matrix is singular: {exc}") from exc
        pivots = np.abs(lu.U.diagonal())
        if pivots.min() < PIVOT_TOLERANCE:
            raise SingularGainError(
                f"the gain matrix is singular (scaled pivot {pivots.min():.1e})"
            )
        self._solve = lu.solve
        self._lu = lu

    def solve(self, r: np.ndarray) -> np.ndarray:
        """The Gauss-Newton step :math:`G^{-1} H^T W r` for residuals ``r``."""
        return self._check_step(self._solve(self._gradient(r)) * self._scale)

    def hgh_diagonal(self) -> np.ndarray:
        r""":math:`\operatorname{diag}(H G^{-1} H^T)`, one value per row of H.

        Every pair of entries of a row of H is an entry of G, so only the entries of
        :math:`G^{-1}` on G's pattern are needed: the sparse inverse subset of the
        LDL^T factor (Takahashi's equations, Abur & Exposito ch. 5.7 [1]_), without
        forming :math:`G^{-1}` or solving for every row.
        """
        if self._qdldl is None:  # pragma: no cover - qdldl is a dependency
            return self._hgh_by_solves()
        lower, d, perm = self._qdldl.factors()
        lower = lower.tocsc()
        if self._selected is None or not np.array_equal(self._selected[0], perm):
            inverse = SelectedInverse(lower)
            inverse_perm = np.empty_like(perm)
            inverse_perm[perm] = np.arange(len(perm))
            a = inverse_perm[self.h_col[self._p1]]
            b = inverse_perm[self.h_col[self._p2]]
            self._selected = (
                perm.copy(),
                inverse,
                inverse.position(np.maximum(a, b), np.minimum(a, b)),
            )
        _, inverse, at = self._selected
        z_ab = inverse.compute(lower, d)[at]
        hs = self._values * self._scale[self.h_col]
        twice = np.where(self._p1 == self._p2, 1.0, 2.0)
        return np.bincount(
            self._prow, weights=twice * hs[self._p1] * hs[self._p2] * z_ab, minlength=self.shape[0]
        )

    def _hgh_by_solves(self) -> np.ndarray:  # pragma: no cover - without qdldl
        self._lu_factor(self._g_upper)
        hs = (self.h_sparse() @ sp.diags(self._scale)).tocsr()
        out = np.empty(self.shape[0])
        for start in range(0, self.shape[0], BLOCK):
            block = hs[start : start + BLOCK]
            x = self._lu.solve(block.T.toarray())
            out[start : start + BLOCK] = np.asarray(block.multiply(x.T).sum(axis=1)).ravel()
        return out


class SelectedInverse:
    r"""Entries of :math:`A^{-1}` on the pattern of :math:`L + L^T + I`, A = (I+L) D (I+L)^T.

    Takahashi's recurrence (:math:`S_i` = rows of column i of the strictly lower L):

    .. math::

        Z_{S_i, i} = -Z_{S_i, S_i} L_{S_i, i}, \qquad
        Z_{ii} = 1/d_i - L_{S_i, i}^T Z_{S_i, i}.

    Column i needs only columns of its ancestors in the elimination tree (the rows of
    :math:`S_i` are), so all columns of one depth of the tree are computed together, one
    vectorised batch per depth, and Z is kept only on the pattern (lower triangle). The
    gather/scatter indices depend on L's pattern alone and are built once.

    Parameters
    ----------
    lower : scipy.sparse.csc_matrix
        The strictly lower factor L (its pattern is fixed for the object's life).

    References
    ----------
    .. [1] K. Takahashi, J. Fagan, M.-S. Chen, "Formation of a sparse bus impedance
       matrix and its application to short circuit study", PICA 1973.
    """

    def __init__(self, lower: sp.csc_matrix) -> None:
        n = lower.shape[0]
        indptr, indices = lower.indptr, lower.indices
        counts = np.diff(indptr)
        col = np.repeat(np.arange(n), counts)
        # lower-triangle keys (row, col), row >= col: the pattern and the diagonal
        keys = np.unique(np.r_[indices.astype(np.int64) * n + col, np.arange(n) * (n + 1)])
        self.n, self._keys = n, keys
        self._zero, self._trash = len(keys), len(keys) + 1  # padding: reads 0, writes lost
        # depth in the elimination tree (parent = first row of the column), roots first
        parent = np.where(counts > 0, indices[np.minimum(indptr[:-1], len(indices) - 1)], -1)
        depth = np.zeros(n, np.int64)
        for i in range(n - 1, -1, -1):  # parents have larger indices
            if parent[i] >= 0:
                depth[i] = depth[parent[i]] + 1
        self._batches = []
        for level in range(int(depth.max()) + 1 if n else 0):
            cols = np.flatnonzero(depth == level)
            k = int(counts[cols].max())
            j = np.arange(k)
            valid = j[None, :] < counts[cols][:, None]
            pos = np.where(valid, indptr[cols][:, None] + j[None, :], 0)
            rows = np.where(valid, indices[pos], 0)
            a, b = rows[:, :, None], rows[:, None, :]
            both = valid[:, :, None] & valid[:, None, :]
            block = np.where(both, self.position(np.maximum(a, b), np.minimum(a, b)), self._zero)
            column = np.where(valid, self.position(rows, cols[:, None]), self._trash)
            data_at = np.where(valid, pos, len(indices))  # L's data with a 0 appended
            self._batches.append((cols, block, column, data_at, self.position(cols, cols)))

    def position(self, row: np.ndarray, col: np.ndarray) -> np.ndarray:
        """Index into the values of Z (:meth:`compute`) of lower entries (row >= col)."""
        return np.searchsorted(self._keys, np.asarray(row, np.int64) * self.n + col)

    def compute(self, lower: sp.csc_matrix, d: np.ndarray) -> np.ndarray:
        """Z on the pattern, in :meth:`position` order (then two padding slots)."""
        z = np.zeros(len(self._keys) + 2)
        data = np.r_[lower.data, 0.0]
        for cols, block, column, data_at, diagonal in self._batches:
            values = data[data_at]
            found = -np.einsum("bkl,bl->bk", z[block], values)
            z[column] = found
            z[diagonal] = 1.0 / d[cols] - np.einsum("bk,bk->b", values, found)
            z[self._trash] = 0.0
        return z


def selected_inverse(lower: sp.csc_matrix, d: np.ndarray) -> np.ndarray:
    r"""Entries of :math:`A^{-1}` on the pattern of :math:`L + L^T + I` as a dense array.

    The reference (one column at a time) form of :class:`SelectedInverse`; other
    entries of the returned array are undefined.
    """
    n = len(d)
    z = np.empty((n, n))
    indptr, indices, data = lower.indptr, lower.indices, lower.data
    for i in range(n - 1, -1, -1):
        rows = indices[indptr[i] : indptr[i + 1]]
        if len(rows):
            values = data[indptr[i] : indptr[i + 1]]
            column = -(z[rows[:, None], rows] @ values)
            z[rows, i] = column
            z[i, rows] = column
            z[i, i] = 1.0 / d[i] - values @ column
        else:
            z[i, i] = 1.0 / d[i]
    return z
