"""Regression kriging of NDVI under clouds: the passes and their block functions.

Model: NDVI = ridge regression on features (multi-scale S1 box statistics, see
``fusion_features``; and/or an earlier REFERENCE_NDVI) + simple kriging of the
regression's residuals at the nearest clear pixels (``kriging``) with an exponential
residual variogram (``variogram``).

Passes (each a ``stream()`` / ``scan()`` over the raster; the block functions are
picklable dataclass callables, so any engine can run them; whole-scene results are
sums of small per-block results):

1. **fit** (scan): normal equations ``[1,x]'[1,x]``, ``[1,x]'y`` of the clear pixels,
   in total and for the hold-out cells of several checkerboard sizes, and the cloud
   run statistics that give the scene's typical cloud gap (mean run length of cloud
   along rows and columns). The hold-out cell is the smallest of ``CELLS`` at least
   that long; ridge alpha (on standardised features, intercept free, penalty
   ``alpha * n * |b|^2``) is chosen on that hold-out, then refitted on all clear pixels.
2. **variogram + hold-out sample** (scan, halo = search radius): pair sums of the
   residuals of the final model (-> the exponential variogram), and for a lattice
   sample of the clear hold-out pixels their true NDVI, the prediction of the model
   fitted without the hold-out cells, and the residuals of their nearest clear
   *training-cell* pixels. Kriging those samples after the pass gives the honest
   metrics of the whole predictor (regression + kriging, without the pixel's own
   cell), the RMSE by distance to the nearest clear pixel, and the calibration of the
   uncertainty (the factor that makes 95 % of the hold-out errors fall inside the
   95 % interval).
3. **fill** (stream, halo = search radius): for every pixel that is not clear, the
   regression plus the kriged residual of its 16 nearest clear pixels within 64 px
   (clamped to [-1, 1]); only blocks that have something to fill compute anything.
   Without valid features (S1 NoData) the clear-pixel mean plus kriging of the
   neighbours' NDVI anomalies fills; with neither, NoData.
"""
import ctypes
import math
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

import numpy as np

from . import fusion_features as ff
from . import indices, kriging, speckle
from . import scl as scl_module
from .streaming import Window
from .units import from_db, to_db
from .variogram import Exponential, PairSums, pair_sums

CELLS = (16, 32, 64, 128, 256)
DEFAULT_CELL = 32
ALPHAS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
MAX_SAMPLES = 40000
_TARGET_CHUNK = 65536     # targets per neighbour search + kriging batch in a block
DISTANCE_BINS_PX = (3.0, 10.0, 30.0)       # 30 m, 100 m, 300 m at 10 m
DISTANCE_LABELS = ("<= 30 m", "30-100 m", "100-300 m", "> 300 m")
Z95 = 1.959963984540054
SOURCE_NODATA, SOURCE_S2, SOURCE_FILL = 0, 1, 2


# --- normal equations -------------------------------------------------------------------
@dataclass
class Sums:
    """``n``, ``A'A``, ``A'y``, ``sum y``, ``sum y^2`` of rows ``A = [1, x]`` (float64)."""

    p: int
    n: int = 0
    ata: np.ndarray = None
    aty: np.ndarray = None
    syy: float = 0.0

    def __post_init__(self):
        if self.ata is None:
            self.ata = np.zeros((self.p, self.p))
        if self.aty is None:
            self.aty = np.zeros(self.p)

    def add(self, a: np.ndarray, y: np.ndarray) -> None:
        if len(y):
            self.n += len(y)
            self.ata += a.T @ a
            self.aty += a.T @ y
            self.syy += float(y @ y)

    def __add__(self, other):
        return Sums(self.p, self.n + other.n, self.ata + other.ata, self.aty + other.aty,
                    self.syy + other.syy)

    def __sub__(self, other):
        return Sums(self.p, self.n - other.n, self.ata - other.ata, self.aty - other.aty,
                    self.syy - other.syy)

    @property
    def mean(self) -> float:
        return self.aty[0] / self.n if self.n else math.nan

    def sse(self, beta: np.ndarray) -> float:
        return max(float(self.syy - 2.0 * beta @ self.aty + beta @ self.ata @ beta), 0.0)

    def sse_constant(self, value: float) -> float:
        return self.sse(np.r_[value, np.zeros(self.p - 1)])


def standardisation(total: Sums) -> np.ndarray:
    """``T`` with ``[1, (x - mean)/sd] = [1, x] T`` from the total sums."""
    n = max(total.n, 1)
    means = total.ata[0, 1:] / n
    var = np.diag(total.ata)[1:] / n - means ** 2
    scales = np.sqrt(np.maximum(var, 0.0))
    scales[~(scales > 1e-12)] = 1.0
    return ff.standardise(means, scales)


def ridge(sums: Sums, alpha: float, transform: np.ndarray) -> np.ndarray:
    """Raw-unit coefficients ``[b0, b...]`` of ridge on standardised features (intercept
    free, penalty ``alpha * n * |b|^2``)."""
    a = transform.T @ sums.ata @ transform
    b = transform.T @ sums.aty
    penalty = np.full(sums.p, alpha * max(sums.n, 1))
    penalty[0] = 0.0
    z = np.linalg.lstsq(a + np.diag(penalty), b, rcond=None)[0]
    return transform @ z


# --- the per-block pixel preparation ----------------------------------------------------------
@dataclass
class Scene:
    """Everything a block function needs to know about the inputs (picklable)."""

    width: int
    height: int
    has_s1: bool
    has_reference: bool
    vv_db: bool
    vh_db: bool
    boa_add_offset: float
    quantification: float
    cloud_classes: Tuple[int, ...]
    buffer_px: int
    speckle_filter: bool
    negative_reflectance: str = indices.NEGATIVE_MASK

    @property
    def feature_margin(self) -> int:
        """Pixels at the padded block border whose features or cloud mask are not exact."""
        s1 = (ff.FEATURE_HALO + (speckle.REFINED_LEE_HALO if self.speckle_filter else 0)
              if self.has_s1 else 0)
        return max(s1, self.buffer_px, 1)

    @property
    def names(self) -> Tuple[str, ...]:
        return ff.feature_names(self.has_s1, self.has_reference)

    def unpack(self, arrays):
        """(red, nir, scl, vv, vh, reference) from the streamed arrays (None = not given)."""
        red, nir, scl = arrays[:3]
        rest = list(arrays[3:])
        vv, vh = (rest.pop(0), rest.pop(0)) if self.has_s1 else (None, None)
        reference = rest.pop(0) if self.has_reference else None
        return red, nir, scl, vv, vh, reference

    def optical(self, red, nir, scl_block):
        """Padded NDVI (float64), clear, cloud and SCL-valid masks."""
        ndvi = np.asarray(indices.ndvi(red, nir, self.boa_add_offset, self.quantification,
                                       self.negative_reflectance), dtype=np.float64)
        scl_valid = np.isfinite(scl_block) & (scl_block != 0)
        cloud = np.asarray(scl_module.cloud_mask(scl_block, self.cloud_classes,
                                                 self.buffer_px), dtype=bool)
        clear = np.isfinite(ndvi) & scl_valid & ~cloud
        return ndvi, clear, cloud, scl_valid

    def _s1_db(self, band, in_db, x0, y0):
        band = ff.reflect_edges(np.asarray(band, dtype=np.float64), x0, y0, self.width,
                                self.height)
        if not self.speckle_filter:
            return band if in_db else to_db(band)
        linear = from_db(band) if in_db else band
        filtered = np.full(linear.shape, np.nan)
        h = speckle.REFINED_LEE_HALO
        filtered[h:-h, h:-h] = speckle.refined_lee_padded(linear)
        return to_db(filtered)

    def features(self, vv, vh, reference, window: Window) -> np.ndarray:
        """Feature stack of the padded block (rows, cols, p) float64; exact at least
        ``feature_margin`` pixels inside the block border."""
        x0, y0 = window.xoff - window.halo, window.yoff - window.halo
        shape = (window.ysize + 2 * window.halo, window.xsize + 2 * window.halo)
        # Only the raster and a margin around it matter (no data pixel lies beyond the
        # edge): on small rasters the halo would otherwise dominate the work.
        reach = self.feature_margin
        r0, c0 = max(0, -reach - y0), max(0, -reach - x0)
        r1 = min(shape[0], self.height + reach - y0)
        c1 = min(shape[1], self.width + reach - x0)
        crop = (slice(r0, r1), slice(c0, c1))
        vv_db = vh_db = ref = None
        if self.has_s1:
            vv_db = self._s1_db(np.asarray(vv)[crop], self.vv_db, x0 + c0, y0 + r0)
            vh_db = self._s1_db(np.asarray(vh)[crop], self.vh_db, x0 + c0, y0 + r0)
        if reference is not None:
            ref = np.asarray(reference)[crop]
        planes = np.full((len(self.names),) + shape, np.nan)
        ff.features(vv_db, vh_db, ref, planes[(slice(None),) + crop])
        return planes.transpose(1, 2, 0)      # features last, contiguous planes


def inner(window: Window, margin: int) -> Tuple[slice, slice]:
    """The padded block minus ``margin`` pixels on each side."""
    rows = window.ysize + 2 * window.halo
    cols = window.xsize + 2 * window.halo
    return slice(margin, rows - margin), slice(margin, cols - margin)


def raster_coords(window: Window, region: Tuple[slice, slice]):
    """Whole-raster (row, col) index vectors of a region of the padded block."""
    rows = window.yoff - window.halo + np.arange(region[0].start, region[0].stop)
    cols = window.xoff - window.halo + np.arange(region[1].start, region[1].stop)
    return rows, cols


def _libc_malloc_trim():
    """glibc's ``malloc_trim`` or None (other platforms)."""
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _libc_malloc_trim()


def release_memory() -> None:
    """Hand the block's freed temporaries back to the system (glibc only).

    The block functions allocate many arrays of a few MB from two worker threads; glibc
    keeps such freed memory in per-thread arenas, and on a full tile the process held
    1.4 GB for about 0.3 GB in use. Trimming after each block keeps the peak near the
    memory budget.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


class _Block:
    """A pass's block function: ``run`` on one block, then its freed temporaries go back."""

    def __call__(self, *arrays, window: Window):
        try:
            return self.run(*arrays, window=window)
        finally:
            release_memory()


def _at(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``values[index]`` that also works on an empty ``values`` (a block without kriging data:
    every index is a placeholder 0 of an absent neighbour; zeros are returned)."""
    if len(values):
        return values[index]
    return np.zeros(index.shape + values.shape[1:], dtype=values.dtype)


def pixel_rc(window: Window, shape, mask: np.ndarray) -> np.ndarray:
    """(n, 2) whole-raster (row, col) of the ``mask`` pixels of a padded block."""
    r_all, c_all = raster_coords(window, (slice(0, shape[0]), slice(0, shape[1])))
    return np.column_stack([np.broadcast_to(r_all[:, None], shape)[mask],
                            np.broadcast_to(c_all[None, :], shape)[mask]])


def data_pixels(scene: "Scene", ndvi, clear, stack, window: Window) -> np.ndarray:
    """The clear pixels the kriging may use: fit-valid and far enough inside the padded
    block for their features to be exact."""
    region = inner(window, scene.feature_margin)
    data = np.zeros(clear.shape, dtype=bool)
    data[region] = fit_valid(ndvi[region], clear[region], stack[region])
    return data


def holdout_cells(rows: np.ndarray, cols: np.ndarray, cell: int) -> np.ndarray:
    """True in the withheld cells of a ``cell``-pixel checkerboard (whole-raster coords)."""
    return ((rows[:, None] // cell + cols[None, :] // cell) % 2) == 1


def fit_valid(ndvi: np.ndarray, clear: np.ndarray, stack: np.ndarray) -> np.ndarray:
    """Clear pixels the model may learn from: features valid, NDVI inside [-1, 1]
    (NDVI from negative reflectance is never fitted, whatever the NDVI option)."""
    return clear & ff.valid_rows(stack) & (np.abs(ndvi) <= 1.0)


# --- pass 1: fit -------------------------------------------------------------------------------
@dataclass
class FitPart:
    total: Sums
    holdout: Dict[int, Sums]
    cloudy: int
    with_scl: int
    cloud_px: int
    run_starts: int


@dataclass
class FitBlock(_Block):
    """Pass 1 block function: normal equations and cloud statistics of the core."""

    scene: Scene

    def run(self, *arrays, window: Window) -> FitPart:
        red, nir, scl, vv, vh, reference = self.scene.unpack(arrays)
        ndvi, clear, cloud, scl_valid = self.scene.optical(red, nir, scl)
        rows, cols = window.core
        core_cloud = cloud[rows, cols]
        # Runs of cloud along rows and columns that start in the core (the pixel before
        # lies in the halo at the core's edge, NaN SCL beyond the raster = not cloud).
        before_x = cloud[rows, slice(cols.start - 1, cols.stop - 1)]
        before_y = cloud[slice(rows.start - 1, rows.stop - 1), cols]
        starts = (np.count_nonzero(core_cloud & ~before_x)
                  + np.count_nonzero(core_cloud & ~before_y))
        p = len(self.scene.names) + 1
        part = FitPart(Sums(p), {c: Sums(p) for c in CELLS},
                       int(np.count_nonzero(core_cloud & scl_valid[rows, cols])),
                       int(np.count_nonzero(scl_valid[rows, cols])),
                       int(np.count_nonzero(core_cloud)), int(starts))
        if not clear[rows, cols].any():
            return part
        stack = self.scene.features(vv, vh, reference, window)[rows, cols]
        use = fit_valid(ndvi[rows, cols], clear[rows, cols], stack)
        a = ff.design(stack[use])
        y = ndvi[rows, cols][use]
        part.total.add(a, y)
        r, c = raster_coords(window, window.core)
        for cell in CELLS:
            held = holdout_cells(r, c, cell)[use]
            part.holdout[cell].add(a[held], y[held])
        return part


@dataclass
class Fit:
    """What pass 1 found: the regression and the hold-out design."""

    names: Tuple[str, ...]
    beta: np.ndarray               # raw-unit [intercept, coefficients...] on all clear pixels
    beta_train: np.ndarray         # the same model fitted without the hold-out cells
    alpha: float
    cell: int
    gap_px: float
    n: int
    holdout_n: int
    train_mean: float
    clear_mean: float
    clear_var: float
    residual_var: float
    regression_rmse: float         # regression alone on the hold-out
    mean_rmse: float               # training mean on the hold-out
    inverse: np.ndarray            # (A'A + P)^-1 in raw units, for the parameter variance
    cloud_fraction: float
    fallback: bool = False
    warnings: List[str] = field(default_factory=list)


def combine_fit(parts: Sequence[FitPart], names: Tuple[str, ...], min_fit_pixels: int) -> Fit:
    p = len(names) + 1
    total = Sums(p)
    holdout = {c: Sums(p) for c in CELLS}
    cloudy = with_scl = cloud_px = starts = 0
    for part in parts:
        total = total + part.total
        for c in CELLS:
            holdout[c] = holdout[c] + part.holdout[c]
        cloudy += part.cloudy
        with_scl += part.with_scl
        cloud_px += part.cloud_px
        starts += part.run_starts
    gap = 2.0 * cloud_px / starts if starts else 0.0      # runs along rows and columns
    cell = next((c for c in CELLS if c >= gap), CELLS[-1]) if starts else DEFAULT_CELL
    held = holdout[cell]
    train = total - held
    transform = standardisation(total)
    warnings = []
    fallback = False
    best = None
    if train.n >= p and held.n:
        for alpha in ALPHAS:
            sse = held.sse(ridge(train, alpha, transform))
            if best is None or sse < best[0] - 1e-12 * abs(best[0]):
                best = (sse, alpha)
        alpha = best[1]
        beta_train = ridge(train, alpha, transform)
        regression_rmse = math.sqrt(held.sse(beta_train) / held.n)
        mean_rmse = math.sqrt(held.sse_constant(train.mean) / held.n)
    else:
        alpha, regression_rmse, mean_rmse = ALPHAS[-1], math.nan, math.nan
        beta_train = np.r_[train.mean if train.n else total.mean, np.zeros(p - 1)]
    beta = ridge(total, alpha, transform)
    intercept_only = np.r_[total.mean, np.zeros(p - 1)]
    if total.n < min_fit_pixels:
        fallback = True
        warnings.append(
            f"WARNING: only {total.n} clear pixels (fewer than {min_fit_pixels}) to fit the "
            "regression: it is replaced by the clear-pixel mean NDVI "
            f"({total.mean:.4f}); the kriging of the clear neighbours stays (the fill is a "
            "spatial interpolation of NDVI).")
    elif not held.n or not train.n:
        fallback = True
        warnings.append(
            "WARNING: the clear pixels do not cover both halves of the hold-out "
            "checkerboard, so the regression cannot be checked: it is replaced by the "
            f"clear-pixel mean NDVI ({total.mean:.4f}); the kriging stays.")
    elif not regression_rmse < mean_rmse:
        fallback = True
        warnings.append(
            f"WARNING: the regression has no skill on this scene: hold-out RMSE "
            f"{regression_rmse:.4f} >= {mean_rmse:.4f} of the clear-pixel mean. It is "
            f"replaced by the clear-pixel mean NDVI ({total.mean:.4f}); the kriging of the "
            "clear neighbours stays (the fill is a spatial interpolation of NDVI).")
    if fallback:
        beta = intercept_only
        beta_train = np.r_[train.mean if train.n else total.mean, np.zeros(p - 1)]
    n = max(total.n, 1)
    clear_var = max(total.syy / n - total.mean ** 2, 0.0) if total.n else math.nan
    residual_var = total.sse(beta) / n if total.n else math.nan
    penalty = np.full(p, alpha * n)
    penalty[0] = 0.0
    z_inverse = np.linalg.pinv(transform.T @ total.ata @ transform + np.diag(penalty))
    inverse = transform @ z_inverse @ transform.T
    if fallback:
        inverse = np.zeros((p, p))
        inverse[0, 0] = 1.0 / n
    cloud_fraction = cloudy / with_scl if with_scl else math.nan
    return Fit(names, beta, beta_train, alpha, cell, gap, total.n, held.n,
               train.mean, total.mean, clear_var, residual_var, regression_rmse, mean_rmse,
               inverse, cloud_fraction, fallback, warnings)


# --- pass 2: variogram and the hold-out sample ---------------------------------------------------
@dataclass
class Sample:
    """Hold-out targets of one block: truth, regression (train model) and the residuals
    and offsets of their neighbours (``-1`` index = none)."""

    truth: np.ndarray
    regression: np.ndarray
    offsets: np.ndarray            # (n, k, 2) int32: neighbour (row, col) - target (row, col)
    residuals: np.ndarray          # (n, k) float64, 0 where none
    present: np.ndarray            # (n, k) bool

    @classmethod
    def empty(cls, k):
        return cls(np.zeros(0), np.zeros(0), np.zeros((0, k, 2), np.int32), np.zeros((0, k)),
                   np.zeros((0, k), bool))


@dataclass
class VariogramBlock(_Block):
    """Pass 2 block function: residual pair sums and the hold-out sample of the core."""

    scene: Scene
    fit: Fit
    stride: int
    k: int = kriging.NEIGHBOURS
    radius: int = kriging.SEARCH_RADIUS

    def run(self, *arrays, window: Window):
        red, nir, scl, vv, vh, reference = self.scene.unpack(arrays)
        ndvi, clear, _, _ = self.scene.optical(red, nir, scl)
        region = inner(window, self.scene.feature_margin)
        rows, cols = window.core
        if not clear[region].any():
            return PairSums.empty(), Sample.empty(self.k)
        stack = self.scene.features(vv, vh, reference, window)
        data = data_pixels(self.scene, ndvi, clear, stack, window)
        residual = np.full(clear.shape, np.nan)
        residual[data] = ndvi[data] - predict(stack[data], self.fit.beta)
        sums = pair_sums(residual, window.core)
        # The hold-out sample: lattice pixels of the core in the withheld cells.
        r_all, c_all = raster_coords(window, (slice(0, clear.shape[0]), slice(0, clear.shape[1])))
        held = holdout_cells(r_all, c_all, self.fit.cell)
        on_lattice = ((r_all % self.stride) == 0)[:, None] & ((c_all % self.stride) == 0)[None, :]
        target = np.zeros(clear.shape, dtype=bool)
        target[rows, cols] = (data & held & on_lattice)[rows, cols]
        train = data & ~held
        if not target.any():
            return sums, Sample.empty(self.k)
        residual_train = ndvi[train] - predict(stack[train], self.fit.beta_train)
        data_rc = pixel_rc(window, clear.shape, train)
        t_rc = pixel_rc(window, clear.shape, target)
        index, _ = kriging.nearest(data_rc, t_rc, self.k, self.radius)
        present = index >= 0
        safe = np.where(present, index, 0)
        offsets = (_at(data_rc, safe) - t_rc[:, None, :]).astype(np.int32)
        regression = predict(stack[target], self.fit.beta_train)
        return sums, Sample(ndvi[target], regression, offsets,
                            np.where(present, _at(residual_train, safe), 0.0), present)


@dataclass
class Holdout:
    """Honest metrics of the whole predictor on the hold-out sample."""

    n: int
    rmse: float
    r2: float
    baseline_rmse: float
    regression_rmse: float
    by_distance: List[Tuple[str, int, float]]
    scale: float                   # variance calibration factor
    coverage_raw: float            # 95 % interval coverage before calibration


def krige_offsets(offsets, residuals, present, model: Exponential):
    """Kriging at the origin from neighbours at ``offsets`` (targets at (0, 0))."""
    n, k = present.shape
    index = np.where(present, np.arange(n * k).reshape(n, k), -1)
    data_rc = offsets.reshape(n * k, 2)
    return kriging.simple_kriging(data_rc, residuals.reshape(n * k), np.zeros((n, 2)),
                                  model.covariance, index)


def predict(rows: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """``[1, x] @ beta`` without building ``[1, x]``."""
    return rows @ beta[1:] + beta[0]


def parameter_variance(rows: np.ndarray, fit: Fit) -> np.ndarray:
    """``s^2 a' (A'A + P)^-1 a`` with ``a = [1, x]``: the regression's own uncertainty."""
    m = fit.inverse
    quadratic = np.einsum("ij,jk,ik->i", rows, m[1:, 1:], rows) if rows.shape[1] else 0.0
    return fit.residual_var * (m[0, 0] + 2.0 * rows @ m[1:, 0] + quadratic)


def evaluate_holdout(sample: Sample, fit: Fit, model: Exponential) -> Holdout:
    n = len(sample.truth)
    if n == 0:
        return Holdout(0, math.nan, math.nan, math.nan, fit.regression_rmse, [], 1.0, math.nan)
    estimate, variance = krige_offsets(sample.offsets, sample.residuals, sample.present, model)
    prediction = np.clip(sample.regression + estimate, -1.0, 1.0)
    error = prediction - sample.truth
    rmse = float(np.sqrt(np.mean(error ** 2)))
    sst = float(np.sum((sample.truth - sample.truth.mean()) ** 2))
    r2 = 1.0 - float(np.sum(error ** 2)) / sst if sst > 0 else math.nan
    baseline = float(np.sqrt(np.mean((sample.truth - fit.train_mean) ** 2)))
    regression_rmse = float(np.sqrt(np.mean((np.clip(sample.regression, -1, 1)
                                             - sample.truth) ** 2)))
    d = np.sqrt((sample.offsets[:, 0, :].astype(np.float64) ** 2).sum(-1))
    d = np.where(sample.present[:, 0], d, np.inf)
    bins = np.digitize(d, DISTANCE_BINS_PX, right=True)
    by_distance = []
    for i, label in enumerate(DISTANCE_LABELS):
        sel = bins == i
        if sel.any():
            by_distance.append((label, int(sel.sum()), float(np.sqrt(np.mean(error[sel] ** 2)))))
    sd = np.sqrt(np.maximum(variance, 1e-12))
    z = np.abs(error) / sd
    coverage_raw = float(np.mean(z <= Z95))
    scale = float((np.quantile(z, 0.95) / Z95) ** 2) if n >= 20 else 1.0
    return Holdout(n, rmse, r2, baseline, regression_rmse, by_distance, scale, coverage_raw)


# --- pass 3: fill -------------------------------------------------------------------------------
@dataclass
class FillBlock(_Block):
    """Pass 3 block function: fused NDVI, source and standard error of the core."""

    scene: Scene
    fit: Fit
    model: Exponential
    scale: float
    with_uncertainty: bool
    k: int = kriging.NEIGHBOURS
    radius: int = kriging.SEARCH_RADIUS

    def run(self, *arrays, window: Window):
        red, nir, scl, vv, vh, reference = self.scene.unpack(arrays)
        ndvi, clear, _, _ = self.scene.optical(red, nir, scl)
        rows, cols = window.core
        fused = ndvi[rows, cols].astype(np.float32)
        source = np.full(fused.shape, SOURCE_S2, dtype=np.uint8)
        sigma = np.full(fused.shape, np.nan, dtype=np.float32)
        targets = np.zeros(clear.shape, dtype=bool)
        targets[rows, cols] = ~clear[rows, cols]
        if not targets.any():          # nothing to fill: no S1 work here
            return self._outputs(fused, source, sigma)
        fill, var = self.fill(ndvi, clear, targets, vv, vh, reference, window)
        t_core = targets[rows, cols]
        fused[t_core] = fill.astype(np.float32)
        source[t_core] = np.where(np.isfinite(fill), SOURCE_FILL, SOURCE_NODATA)
        sigma[t_core] = np.sqrt(self.scale * var).astype(np.float32)
        fused[source == SOURCE_NODATA] = np.nan
        sigma[source == SOURCE_NODATA] = np.nan
        return self._outputs(fused, source, sigma)

    def _outputs(self, fused, source, sigma):
        return (fused, source, sigma) if self.with_uncertainty else (fused, source)

    def fill(self, ndvi, clear, targets, vv, vh, reference, window):
        """Fill values and variances (float64, NaN where nothing fills) of ``targets``
        (core pixels, row-major)."""
        fit = self.fit
        stack = self.scene.features(vv, vh, reference, window)
        data = data_pixels(self.scene, ndvi, clear, stack, window)
        data_stack = stack[data]
        residual = ndvi[data] - predict(data_stack, fit.beta)
        del data_stack
        anomaly = ndvi[data] - fit.clear_mean
        t_stack = stack[targets]
        del stack
        has_features = ff.valid_rows(t_stack)
        t_stack[~has_features] = 0.0
        trend = np.where(has_features, predict(t_stack, fit.beta), fit.clear_mean)
        trend_var = np.where(has_features, parameter_variance(t_stack, fit),
                             max(fit.clear_var - self.model.sill, 0.0))
        data_rc = pixel_rc(window, clear.shape, data)
        t_rc = pixel_rc(window, clear.shape, targets)
        estimate = np.zeros(len(t_rc))
        variance = np.zeros(len(t_rc))
        no_neighbour = np.zeros(len(t_rc), dtype=bool)
        tree = kriging.tree_of(data_rc)
        for start in range(0, len(t_rc), _TARGET_CHUNK):     # bounded memory per block
            part = slice(start, start + _TARGET_CHUNK)
            index, _ = kriging.nearest(data_rc, t_rc[part], self.k, self.radius, tree)
            safe = np.maximum(index, 0)
            values = np.where(has_features[part, None], _at(residual, safe), _at(anomaly, safe))
            # simple_kriging reads values[index]: one value per (target, slot).
            n, k = index.shape
            slot = np.where(index >= 0, np.arange(n * k).reshape(n, k), -1)
            estimate[part], variance[part] = kriging.simple_kriging(
                _at(data_rc, safe).reshape(n * k, 2), values.reshape(n * k), t_rc[part],
                self.model.covariance, slot)
            no_neighbour[part] = index[:, 0] < 0
        fill = np.clip(trend + estimate, -1.0, 1.0)
        fill[~has_features & no_neighbour] = np.nan
        return fill, variance + trend_var
