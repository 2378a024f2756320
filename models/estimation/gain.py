r"""The gain matrix :math:`G = H^T W H` of the normal equations: assembly and factorisation.

Two interchangeable implementations on the fixed pattern of H: :class:`DenseGain`
(LAPACK Cholesky, fastest for a few hundred states) and :class:`SparseGain` (SuperLU
with a minimum-degree ordering, for thousands). Both factorise the diagonally scaled
:math:`\tilde G = D^{-1/2} G D^{-1/2}` (:math:`D = \operatorname{diag} G`) so that a
zero pivot of :math:`\tilde G` means an unobservable state whatever the spread of the
weights, and both give :math:`\operatorname{diag}(H G^{-1} H^T)` for the normalised
residuals.

References
----------
.. [1] A. Abur and A. G. Exposito, *Power System State Estimation: Theory and
   Implementation*, ch. 2.6 and 4. New York: Marcel Dekker, 2004.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as la
import scipy.sparse as sp
import scipy.sparse.linalg as spla

__all__ = ["DenseGain", "SingularGainError", "SparseGain"]

#: Smallest pivot of the diagonally scaled gain matrix still taken as observable.
PIVOT_TOLERANCE = 1e-11
#: Columns per block when solving for diag(H G^-1 H^T) with the sparse factor.
BLOCK = 512


class SingularGainError(np.linalg.LinAlgError):
    """The gain matrix is singular: the measurements do not determine every state."""


class _Gain:
    def __init__(self, h_row: np.ndarray, h_col: np.ndarray, shape: tuple[int, int]) -> None:
        self.h_row, self.h_col, self.shape = h_row, h_col, shape
        self._scale = np.ones(shape[1])

    def _check_diagonal(self, diagonal: np.ndarray) -> np.ndarray:
        if not np.all(np.isfinite(diagonal)):
            raise SingularGainError("the gain matrix has non-finite entries")
        empty = np.flatnonzero(diagonal <= 0)
        if len(empty):
            raise SingularGainError(
                f"{len(empty)} state(s) have no weighted measurement (first: state {empty[0]})"
            )
        return 1.0 / np.sqrt(diagonal)


class DenseGain(_Gain):
    """Dense H and Cholesky factor of G (``scipy.linalg.cho_factor``)."""

    def __init__(self, h_row: np.ndarray, h_col: np.ndarray, shape: tuple[int, int]) -> None:
        super().__init__(h_row, h_col, shape)
        self.h = np.zeros(shape)
        self._flat = h_row * shape[1] + h_col

    def factor(self, values: np.ndarray, w: np.ndarray) -> None:
        """Fill H with ``values`` on its pattern and factorise G for weights ``w``."""
        h = self.h
        h.ravel()[self._flat] = values
        self._hw = h * w[:, None]
        g = h.T @ self._hw
        scale = self._check_diagonal(np.diag(g).copy())
        g *= scale[:, None]
        g *= scale[None, :]
        try:
            self._cho = la.cho_factor(g, lower=False, check_finite=False)
        except np.linalg.LinAlgError as exc:
            raise SingularGainError(f"the gain matrix is not positive definite: {exc}") from exc
        pivots = np.diag(self._cho[0]) ** 2
        if pivots.min() < PIVOT_TOLERANCE:
            raise SingularGainError(
                f"the gain matrix is singular (scaled pivot {pivots.min():.1e} at state "
                f"{int(np.argmin(pivots))})"
            )
        self._scale = scale

    def solve(self, r: np.ndarray) -> np.ndarray:
        """The Gauss-Newton step :math:`G^{-1} H^T W r`."""
        rhs = (self._hw.T @ r) * self._scale
        return la.cho_solve(self._cho, rhs, check_finite=False) * self._scale

    def hgh_diagonal(self) -> np.ndarray:
        r""":math:`\operatorname{diag}(H G^{-1} H^T)`, one value per row of H."""
        hs = self.h * self._scale[None, :]
        x = la.cho_solve(self._cho, hs.T, check_finite=False)
        return np.einsum("ij,ji->i", hs, x)


class SparseGain(_Gain):
    """Sparse H (CSR on the fixed pattern) and a SuperLU factor of G."""

    def __init__(self, h_row: np.ndarray, h_col: np.ndarray, shape: tuple[int, int]) -> None:
        super().__init__(h_row, h_col, shape)
        self._indptr = np.r_[0, np.cumsum(np.bincount(h_row, minlength=shape[0]))]
        self._indices = h_col.astype(np.int32)

    def factor(self, values: np.ndarray, w: np.ndarray) -> None:
        """Fill H with ``values`` on its pattern and factorise G for weights ``w``."""
        self.h = sp.csr_matrix((values, self._indices, self._indptr), shape=self.shape)
        self._hw = sp.csr_matrix(
            (values * w[self.h_row], self._indices, self._indptr), shape=self.shape
        )
        g = (self.h.T @ self._hw).tocsc()
        scale = self._check_diagonal(g.diagonal())
        d = sp.diags(scale)
        gs = (d @ g @ d).tocsc()
        try:
            lu = spla.splu(gs, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0)
        except RuntimeError as exc:
            raise SingularGainError(f"the gain matrix is singular: {exc}") from exc
        pivots = np.abs(lu.U.diagonal())
        if pivots.min() < PIVOT_TOLERANCE:
            raise SingularGainError(
                f"the gain matrix is singular (scaled pivot {pivots.min():.1e})"
            )
        self._lu = lu
        self._scale = scale

    def solve(self, r: np.ndarray) -> np.ndarray:
        """The Gauss-Newton step :math:`G^{-1} H^T W r`."""
        rhs = (self._hw.T @ r) * self._scale
        return self._lu.solve(rhs) * self._scale

    def hgh_diagonal(self) -> np.ndarray:
        r""":math:`\operatorname{diag}(H G^{-1} H^T)`, one value per row of H."""
        hs = (self.h @ sp.diags(self._scale)).tocsr()
        out = np.empty(self.shape[0])
        for start in range(0, self.shape[0], BLOCK):
            block = hs[start : start + BLOCK]
            x = self._lu.solve(block.T.toarray())
            out[start : start + BLOCK] = np.asarray(block.multiply(x.T).sum(axis=1)).ravel()
        return out
