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
from typing import Tuple

import numpy as np
from scipy.spatial import cKDTree

NEIGHBOURS = 16
SEARCH_RADIUS = 64
_EXTRA = 12          # candidates beyond k fetched to sort out ties
_CHUNK = 8192        # targets per batched solve (8192 x 16 x 16 float64 = 16 MB)


def nearest(data_rc: np.ndarray, target_rc: np.ndarray, k: int = NEIGHBOURS,
            radius: float = SEARCH_RADIUS) -> Tuple[np.ndarray, np.ndarray]:
    """Indices into ``data_rc`` (n_targets, k; -1 = none) of each target's neighbours and
    their squared distances (int64), ordered by (distance, row, column).

    ``data_rc``, ``target_rc``: (n, 2) integer whole-raster (row, col).
    """
    n_t = len(target_rc)
    index = np.full((n_t, k), -1, dtype=np.int64)
    dist2 = np.full((n_t, k), -1, dtype=np.int64)
    if n_t == 0 or len(data_rc) == 0:
        return index, dist2
    tree = cKDTree(data_rc.astype(np.float64))
    fetch = min(k + _EXTRA, len(data_rc))
    _, cand = tree.query(target_rc.astype(np.float64), k=fetch,
                         distance_upper_bound=radius + 1e-6)
    cand = np.asarray(cand).reshape(n_t, fetch)
    missing = cand >= len(data_rc)
    cand = np.where(missing, 0, cand)
    d = data_rc[cand] - target_rc[:, None, :]
    d2 = np.where(missing, np.iinfo(np.int64).max, d[..., 0] ** 2 + d[..., 1] ** 2)
    rows = np.where(missing, np.iinfo(np.int64).max, data_rc[cand][..., 0])
    cols = np.where(missing, np.iinfo(np.int64).max, data_rc[cand][..., 1])
    order = np.lexsort((cols, rows, d2), axis=-1)[:, :k]
    take = np.take_along_axis
    kk = order.shape[1]
    index[:, :kk] = np.where(take(missing, order, -1), -1, take(cand, order, -1))
    dist2[:, :kk] = np.where(take(missing, order, -1), -1, take(d2, order, -1))
    # A tie at the k-th distance may continue past the fetched candidates: redo those
    # targets with every data pixel inside that distance.
    if fetch < len(data_rc):
        last_fetched = d2.max(axis=1, where=~missing, initial=-1)
        kth = dist2[:, k - 1]
        redo = np.nonzero((kth >= 0) & ~missing[:, -1] & (last_fetched == kth))[0]
        for t in redo:
            inside = np.asarray(tree.query_ball_point(target_rc[t].astype(np.float64),
                                                      np.sqrt(kth[t]) + 1e-6), dtype=np.int64)
            dd = data_rc[inside] - target_rc[t]
            d2_t = dd[:, 0] ** 2 + dd[:, 1] ** 2
            o = np.lexsort((data_rc[inside, 1], data_rc[inside, 0], d2_t))[:k]
            index[t], dist2[t] = inside[o], d2_t[o]
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
    :func:`nearest`. Targets without neighbours get estimate 0 and variance ``C(0)``.
    """
    n_t, k = index.shape
    estimate = np.zeros(n_t)
    sill = float(covariance(np.zeros(1))[0])
    variance = np.full(n_t, sill)
    for start in range(0, n_t, _CHUNK):
        part = slice(start, min(start + _CHUNK, n_t))
        idx = index[part]
        present = idx >= 0
        if not present.any():
            continue
        safe = np.where(present, idx, 0)
        pos = data_rc[safe].astype(np.float64)                  # (n, k, 2)
        between = np.sqrt(((pos[:, :, None, :] - pos[:, None, :, :]) ** 2).sum(-1))
        to_target = np.sqrt(((pos - target_rc[part, None, :]) ** 2).sum(-1))
        both = present[:, :, None] & present[:, None, :]
        eye = np.eye(k, dtype=bool)[None]
        matrix = np.where(both, covariance(between), np.where(eye, 1.0, 0.0))
        rhs = np.where(present, covariance(to_target), 0.0)
        weights = spd_solve(matrix, rhs)
        estimate[part] = np.sum(weights * np.where(present, values[safe], 0.0), axis=1)
        variance[part] = np.maximum(sill - np.sum(weights * rhs, axis=1), 0.0)
    return estimate, variance
