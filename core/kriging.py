"""Simple kriging of residuals from the nearest data pixels, deterministic at ties.

Neighbours of a target pixel: the ``k`` nearest data pixels within ``radius``
pixels (Euclidean, whole-raster pixel coordinates). Pixels on an integer grid
are often equidistant; ties are broken by (row, column) of the whole raster, so a
block sees exactly the neighbours the whole raster would (a k-d tree alone returns
an arbitrary subset of the tied pixels, which moved fills by up to 0.1 NDVI).

Simple kriging (known mean 0) with covariance ``C``: weights ``w = K^-1 c`` where
``K`` is the neighbours' covariance matrix and ``c`` their covariance with the
target; estimate ``w' r``, variance ``C(0) - w' c``.
"""
from typing import Optional, Tuple

import numpy as np
from scipy.spatial import cKDTree

NEIGHBOURS = 16
SEARCH_RADIUS = 64
_EXTRA = 4           # candidates beyond k fetched to sort out ties
_CHUNK = 2048        # targets per batched solve (2048 x 16 x 16 float64 = 4 MB: cache-sized)
_FAR = 1 << 24       # offset of absent neighbours: beyond any covariance table


def tree_of(data_rc: np.ndarray) -> Optional[cKDTree]:
    """The k-d tree of data pixel coordinates (None without data)."""
    return cKDTree(data_rc.astype(np.float64)) if len(data_rc) else None


def nearest(data_rc: np.ndarray, target_rc: np.ndarray, k: int = NEIGHBOURS,
            radius: float = SEARCH_RADIUS, tree: Optional[cKDTree] = None
            ) -> Tuple[np.ndarray, np.ndarray]:
    """Indices into ``data_rc`` (n_targets, k; -1 = none) of each target's ``k`` nearest data
    pixels within ``radius`` and their squared distances (int64).

    The *set* is deterministic: pixels tied at the k-th distance are taken in whole-raster
    (row, column) order; the order inside the set is unspecified (kriging does not depend
    on it). ``data_rc``, ``target_rc``: (n, 2) integer whole-raster (row, col); ``tree``:
    :func:`tree_of` ``data_rc`` when already built.
    """
    if len(target_rc) == 0 or len(data_rc) == 0:
        return (np.full((len(target_rc), k), -1, dtype=np.int64),
                np.full((len(target_rc), k), -1, dtype=np.int64))
    tree = tree if tree is not None else tree_of(data_rc)
    return _nearest(tree, data_rc, target_rc, k, radius,
                    min(k + max(_EXTRA, 1), len(data_rc)))


def _nearest(tree, data_rc, target_rc, k, radius, fetch):
    """:func:`nearest` fetching ``fetch`` candidates; targets whose tie at the k-th distance
    runs to the last candidate are redone with twice as many (the tree may have left tied
    pixels out)."""
    n_t = len(target_rc)
    index = np.full((n_t, k), -1, dtype=np.int64)
    dist2 = np.full((n_t, k), -1, dtype=np.int64)
    distance, cand = tree.query(target_rc.astype(np.float64), k=fetch,
                                distance_upper_bound=radius + 1e-6)
    cand = np.asarray(cand).reshape(n_t, fetch)
    missing = cand >= len(data_rc)
    d2 = np.where(missing, -1, np.rint(np.asarray(distance).reshape(n_t, fetch) ** 2)
                  ).astype(np.int64)
    kk = min(k, fetch)
    index[:, :kk] = np.where(missing[:, :kk], -1, cand[:, :kk])
    dist2[:, :kk] = d2[:, :kk]
    if fetch <= k:
        return index, dist2
    # Where the (k+1)-th candidate is as near as the k-th, which tied pixels are in is
    # decided by whole-raster (row, column).
    tie = np.nonzero((d2[:, k - 1] >= 0) & (d2[:, k] == d2[:, k - 1]))[0]
    if len(tie):
        c = np.where(missing[tie], 0, cand[tie])
        key_d2 = np.where(missing[tie], np.iinfo(np.int64).max, d2[tie])
        order = np.lexsort((data_rc[c, 1], data_rc[c, 0], key_d2), axis=-1)[:, :k]
        index[tie] = np.take_along_axis(cand[tie], order, -1)
        dist2[tie] = np.take_along_axis(d2[tie], order, -1)
        reach = tie[(d2[tie, -1] == d2[tie, k - 1]) & ~missing[tie, -1]]
        if len(reach) and fetch < len(data_rc):
            index[reach], dist2[reach] = _nearest(tree, data_rc, target_rc[reach], k, radius,
                                                  min(2 * fetch, len(data_rc)))
    return index, dist2


def spd_solve(matrix: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve a batch of symmetric positive definite systems ``matrix @ x = rhs``.

    Cholesky (one LAPACK call per matrix) and substitution vectorised over the batch:
    numpy's batched ``solve`` costs ten times more on small matrices when the BLAS
    starts threads for each of them.
    """
    lower = np.linalg.cholesky(matrix)
    n, k = rhs.shape
    y = np.empty((n, k))
    for j in range(k):
        y[:, j] = (rhs[:, j] - np.einsum("ij,ij->i", lower[:, j, :j], y[:, :j])) / lower[:, j, j]
    x = np.empty((n, k))
    for j in range(k - 1, -1, -1):
        x[:, j] = (y[:, j] - np.einsum("ij,ij->i", lower[:, j + 1:, j], x[:, j + 1:])) \
            / lower[:, j, j]
    return x


def simple_kriging(data_rc: np.ndarray, values: np.ndarray, target_rc: np.ndarray,
                   covariance, index: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Estimates and kriging variances (float64) at the targets from their neighbours.

    ``covariance(h)``: the covariance function (``C(0)`` = sill); ``index`` from
    :func:`nearest`; coordinates are integers, so the covariances come from a table of
    ``C(sqrt(d2))`` by squared distance. Targets without neighbours get estimate 0 and
    variance ``C(0)``.
    """
    n_t, k = index.shape
    estimate = np.zeros(n_t)
    sill = float(covariance(np.zeros(1))[0])
    variance = np.full(n_t, sill)
    present_any = index[:, 0] >= 0
    for start in range(0, n_t, _CHUNK):
        part = np.arange(start, min(start + _CHUNK, n_t))
        part = part[present_any[part]]
        if not len(part):
            continue
        idx = index[part]
        present = idx >= 0
        rel = (data_rc[np.maximum(idx, 0)] - target_rc[part, None, :]).astype(np.int64)
        # Absent neighbours sit far from everything: covariance 0, weight exactly 0.
        far = _FAR * (1 + np.arange(k))
        rel[..., 0] = np.where(present, rel[..., 0], far)
        rel[..., 1] = np.where(present, rel[..., 1], 0)
        to_target = rel[..., 0] ** 2 + rel[..., 1] ** 2
        dr = rel[:, :, None, 0] - rel[:, None, :, 0]
        dc = rel[:, :, None, 1] - rel[:, None, :, 1]
        between = dr * dr + dc * dc
        table = _covariance_table(covariance, int(4 * np.max(np.where(present, to_target, 0))))
        matrix = _lookup(table, between)
        rhs = _lookup(table, to_target)
        weights = spd_solve(matrix, rhs)
        estimate[part] = np.sum(weights * np.where(present, values[np.maximum(idx, 0)], 0.0),
                                axis=1)
        variance[part] = np.maximum(sill - np.sum(weights * rhs, axis=1), 0.0)
    return estimate, variance


def _covariance_table(covariance, max_d2: int) -> np.ndarray:
    """``C(sqrt(d2))`` for d2 = 0 .. max_d2, then 0 for anything farther (float64)."""
    table = np.zeros(max_d2 + 2)
    table[:-1] = covariance(np.sqrt(np.arange(max_d2 + 1, dtype=np.float64)))
    return table


def _lookup(table: np.ndarray, d2: np.ndarray) -> np.ndarray:
    """Covariance by squared distance; beyond the table (absent neighbours) 0 (the table's
    last entry)."""
    return table[np.minimum(d2, len(table) - 1)]
