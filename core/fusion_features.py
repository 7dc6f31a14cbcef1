"""Multi-scale Sentinel-1 box features for the regression-kriging NDVI fill.

For box radii 1, 3, 7, 15 px: the mean of VV_dB, VH_dB and VH_dB - VV_dB, and the
standard deviation of VV_dB and VH_dB over the (2r+1)^2 box (20 columns, dB).
S1 NoData is skipped (a box mean is the mean of its valid pixels; a box with no
valid pixel is NoData); at the raster edges the image is reflected (``d c b a |
a b c d``), so a block's features equal the whole raster's: the block needs a halo
of ``FEATURE_HALO`` pixels and the raster size.
"""
from typing import Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

BOX_RADII = (1, 3, 7, 15)
FEATURE_HALO = max(BOX_RADII)
S1_FEATURE_NAMES = tuple(
    f"{stat}_{band}_R{r}" for r in BOX_RADII
    for stat, band in (("MEAN", "VV_DB"), ("MEAN", "VH_DB"), ("MEAN", "VH_MINUS_VV_DB"),
                       ("STD", "VV_DB"), ("STD", "VH_DB")))
REFERENCE_FEATURE = "REFERENCE_NDVI"


def reflect_index(start: int, size: int, length: int) -> np.ndarray:
    """Whole-raster indices of ``size`` positions starting at ``start`` (may be < 0 or run
    past ``length``), reflected at the edges (``d c b a | a b c d``)."""
    idx = np.arange(start, start + size)
    period = 2 * length
    idx = np.mod(idx, period)
    return np.where(idx >= length, period - 1 - idx, idx)


def reflect_edges(block: np.ndarray, xoff: int, yoff: int, width: int, height: int) -> np.ndarray:
    """Replace the out-of-raster part of a padded block by the reflected raster.

    ``xoff``/``yoff``: whole-raster offset of the padded block's first pixel (may be
    negative); ``width``/``height``: the raster size. The reflected pixels must lie in
    the block, which holds when the halo is at least the reach of the reflection.
    """
    rows = reflect_index(yoff, block.shape[0], height) - yoff
    cols = reflect_index(xoff, block.shape[1], width) - xoff
    if rows.min() < 0 or cols.min() < 0 or rows.max() >= block.shape[0] \
            or cols.max() >= block.shape[1]:
        raise ValueError("Internal error: the halo is too small to reflect the raster edge.")
    if np.array_equal(rows, np.arange(block.shape[0])) and \
            np.array_equal(cols, np.arange(block.shape[1])):
        return block
    return block[rows][:, cols]


def box_mean(values: np.ndarray, valid: Optional[np.ndarray], radius: int,
             weight: Optional[np.ndarray] = None) -> np.ndarray:
    """Mean of the valid ``values`` in each (2r+1)^2 box (float64, NaN where none is valid).

    ``valid=None``: every value is valid (no NoData: one filter instead of two).
    ``weight``: the box mean of ``valid`` when already computed (shared between bands).
    """
    size = 2 * radius + 1
    if valid is None:
        return ndimage.uniform_filter(values, size, mode="nearest")
    if weight is None:
        weight = ndimage.uniform_filter(valid.astype(np.float64), size, mode="nearest")
    total = ndimage.uniform_filter(np.where(valid, values, 0.0), size, mode="nearest")
    out = np.full(values.shape, np.nan)
    np.divide(total, weight, out=out, where=weight > 0.5 / size ** 2)
    return out


def s1_features(vv_db: np.ndarray, vh_db: np.ndarray, out: Optional[np.ndarray] = None
                ) -> np.ndarray:
    """The 20 multi-scale planes, features first (``out`` or a new float64 array of shape
    (20, rows, cols), rows and columns as the padded inputs; only pixels at least
    ``FEATURE_HALO`` from the block border are exact). Float64 on purpose: box sums of
    different blocks differ in the last bits, and float32 storage would turn that into 1e-7
    steps between blocks."""
    vv_db = np.asarray(vv_db, dtype=np.float64)
    vh_db = np.asarray(vh_db, dtype=np.float64)
    if out is None:
        out = np.empty((len(S1_FEATURE_NAMES),) + vv_db.shape)
    ok_vv, ok_vh = np.isfinite(vv_db), np.isfinite(vh_db)
    diff = vh_db - vv_db
    ok_diff = ok_vv & ok_vh
    if ok_diff.all():                          # no S1 NoData here: no counting needed
        ok_vv = ok_vh = ok_diff = None
    j = 0
    for radius in BOX_RADII:
        size = 2 * radius + 1
        weights = [None if ok is None else
                   ndimage.uniform_filter(ok.astype(np.float64), size, mode="nearest")
                   for ok in (ok_vv, ok_vh, ok_diff)]
        mean_vv = box_mean(vv_db, ok_vv, radius, weights[0])
        mean_vh = box_mean(vh_db, ok_vh, radius, weights[1])
        out[j], out[j + 1] = mean_vv, mean_vh
        out[j + 2] = box_mean(diff, ok_diff, radius, weights[2])
        for k, (band, ok, mean, weight) in enumerate(((vv_db, ok_vv, mean_vv, weights[0]),
                                                     (vh_db, ok_vh, mean_vh, weights[1]))):
            square = box_mean(band * band, ok, radius, weight)
            square -= mean * mean
            np.sqrt(np.maximum(square, 0.0, out=square), out=out[j + 3 + k])
        j += 5
    return out


def feature_names(with_s1: bool, with_reference: bool) -> Tuple[str, ...]:
    return (S1_FEATURE_NAMES if with_s1 else ()) + \
        ((REFERENCE_FEATURE,) if with_reference else ())


def features(vv_db: Optional[np.ndarray], vh_db: Optional[np.ndarray],
             reference: Optional[np.ndarray], out: Optional[np.ndarray] = None) -> np.ndarray:
    """Feature planes (features, rows, cols; float64): the S1 planes when VV/VH are given,
    then the reference NDVI when given; written into ``out`` when given."""
    shape = np.shape(vv_db if vv_db is not None else reference)
    p = (len(S1_FEATURE_NAMES) if vv_db is not None else 0) + (reference is not None)
    if out is None:
        out = np.empty((p,) + shape)
    if vv_db is not None:
        s1_features(vv_db, vh_db, out[:len(S1_FEATURE_NAMES)])
    if reference is not None:
        out[-1] = reference
    return out


def valid_rows(stack: np.ndarray) -> np.ndarray:
    """True where every feature is finite."""
    return np.all(np.isfinite(stack), axis=-1)


def design(stack: np.ndarray) -> np.ndarray:
    """``[1, features]`` rows for the normal equations (float64)."""
    out = np.empty(stack.shape[:-1] + (stack.shape[-1] + 1,))
    out[..., 0] = 1.0
    out[..., 1:] = stack
    return out


def standardise(means: Sequence[float], scales: Sequence[float]) -> np.ndarray:
    """Matrix ``T`` with ``[1, (x - mean)/scale] = [1, x] @ T`` (affine reparametrisation)."""
    p = len(means) + 1
    t = np.zeros((p, p))
    t[0, 0] = 1.0
    for j, (m, s) in enumerate(zip(means, scales), start=1):
        t[0, j] = -m / s
        t[j, j] = 1.0 / s
    return t
