"""Cloud-masked S1/S2 NDVI fusion that reports how good its fill is.

S2 NDVI where the S2 pixel is clear (SCL not in ``cloud_classes``, buffer
included) and valid; elsewhere a predicted NDVI, flagged in a source band
(1 = S2, 2 = filled, 0 = neither).

Models:

* ``kriging`` (default): regression kriging, multi-scale S1 box statistics
  and/or REFERENCE_NDVI + simple kriging of the residuals of the nearest clear
  pixels, with an uncertainty band. Science in ``fusion_rk`` (features in
  ``fusion_features``, ``kriging``, ``variogram``); its passes in
  ``fusion_passes``. The linear v1 models below live in this module.

Predictors of the linear models (S1 in dB, ``dB = 10*log10(linear)``):
``VH_dB``, ``VV_dB``, ``NRPB = (VH_dB - VV_dB) / (VH_dB + VV_dB)``
(Filgueiras et al. 2019, eq. 4) and optionally an earlier cloud-free
``REFERENCE_NDVI`` of the same place.

* ``local`` (the v1 default): ordinary least squares of S2 NDVI on the predictors
  over the scene's own clear pixels (S2 NDVI, S1 and, when given, the
  reference all valid). The normal equations ``X^T X``, ``X^T y`` are
  accumulated block by block (first streaming pass); the fill is written in a
  second pass. Honesty: the clear pixels are split by a fixed checkerboard of
  ``holdout_cell`` x ``holdout_cell`` pixel cells (pixel coordinates of the
  whole raster, so independent of the block size); the model fitted on the
  "train" cells predicts the withheld cells -> ``FIT_RMSE``, ``FIT_R2``; the
  same withheld cells predicted by the train cells' mean NDVI ->
  ``BASELINE_RMSE``. The coefficients used for the fill are then refitted on
  all clear pixels (train + hold-out; ``FIT_N`` counts them). With fewer than
  ``min_fit_pixels`` clear pixels, or without skill on the hold-out
  (``FIT_RMSE >= BASELINE_RMSE``), the fill falls back to the clear-pixel
  mean (intercept only), with a loud warning. Predictions are clamped to
  [-1, 1] (the reported metrics are of the unclamped linear model, an upper
  bound of the clamped one's error since NDVI lies in [-1, 1]).
* ``recipe``: the Sentinel Hub custom script ``data-fusion/ndvi_s1_s2``
  (sentinel-hub/custom-scripts, author Maxim Lamare) reproduced exactly:
  ``toDb(x) = 10 * Math.LN10 * x`` applied to linear sigma0 (a linear
  scaling, NOT decibels: the script's comment cites Filgueiras eq. 3 but the
  code multiplies), ``NRPB`` from those values, then approach A3
  ``2.572 - 0.05047*VH + 0.176*VV + 3.422*NRPB``; no clamping (the script's
  ColorMapVisualizer only saturates the colours); a pixel is filled when
  ``SCL in [7, 8, 9, 10]``. Evaluated on the same hold-out, so its RMSE is
  reported too. Kept to reproduce that script's output, not for use: with a
  correct dB the A3 coefficients give NDVI of 2 to 3. Differences on purpose (all
  modes): S2 NoData is filled from S1 too, and NoData gives NoData (the script has
  no NoData handling).
* ``custom``: user coefficients ``c0, c_VH, c_VV, c_NRPB[, c_REFERENCE]`` on
  the correct-dB predictors, evaluated on the hold-out like the recipe.

Other conventions: S2 NDVI is exactly ``core.indices.ndvi`` (the
``s1s2:ndvi`` algorithm); S1 NoData, ``x <= 0`` and division by zero give
NoData; SCL missing (NoData or class 0) means "not clear" (S1 fills it); an
optional Refined Lee filter runs on linear VV/VH before the dB conversion
(halo 3, computed in both passes).
"""
import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import collocate, indices, speckle
from . import scl as scl_module
from .errors import S1S2Error
from .raster import BandSource, Grid, check_distinct, common_grid, open_band, warped_to_grid
from .streaming import Window, scan, stream, sub_progress
from .units import from_db, require_linear, to_db
from .writer import OutputRaster, check_output_path

MODEL_LOCAL = "local"
MODEL_RECIPE = "recipe"
MODEL_CUSTOM = "custom"
MODEL_KRIGING = "kriging"
MODELS = (MODEL_LOCAL, MODEL_RECIPE, MODEL_CUSTOM, MODEL_KRIGING)

UNITS_LINEAR = "linear"
UNITS_DB = "db"

SOURCE_NODATA, SOURCE_S2, SOURCE_S1 = 0, 1, 2

# Filgueiras et al. (2019) approach A3 as used by the Sentinel Hub script.
RECIPE_COEFFICIENTS = (2.572, -0.05047, 0.176, 3.422)
RECIPE_CLOUD_CLASSES = (7, 8, 9, 10)
# JavaScript Math.LN10 is the double nearest ln(10), as math.log(10).
JS_LN10 = math.log(10.0)

PREDICTOR_NAMES = ("INTERCEPT", "VH_DB", "VV_DB", "NRPB")
REFERENCE_NAME = "REFERENCE_NDVI"

HOLDOUT_CELL = 32
MIN_FIT_PIXELS = 100


# --- pixel arithmetic ---------------------------------------------------------------
def recipe_to_db(linear: np.ndarray) -> np.ndarray:
    """The recipe's ``toDb(linear) = 10 * Math.LN10 * linear`` (float64, NOT decibels)."""
    return (10.0 * JS_LN10) * np.asarray(linear, dtype=np.float64)


def nrpb(vh: np.ndarray, vv: np.ndarray) -> np.ndarray:
    """``(VH - VV) / (VH + VV)`` in float64; a zero denominator gives NaN."""
    vh = np.asarray(vh, dtype=np.float64)
    vv = np.asarray(vv, dtype=np.float64)
    den = vh + vv
    out = np.full(np.broadcast(vh, vv).shape, np.nan)
    np.divide(vh - vv, den, out=out, where=den != 0)
    return out


def recipe_s1_ndvi(vv_linear: np.ndarray, vh_linear: np.ndarray) -> np.ndarray:
    """The recipe's ``calc_s1_ndvi(sigmaVV, sigmaVH)``, same operations in the same order.

    ``vh_Db = toDb(VH); vv_Db = toDb(VV); NRPB = (vh_Db - vv_Db)/(vh_Db + vv_Db);
    2.572 - 0.05047*vh_Db + 0.176*vv_Db + 3.422*NRPB`` in float64 (JavaScript
    numbers). NaN in -> NaN out; a zero denominator gives NaN (JS: NaN or +-Infinity).
    """
    vh_db = recipe_to_db(vh_linear)
    vv_db = recipe_to_db(vv_linear)
    ratio = nrpb(vh_db, vv_db)
    return 2.572 - 0.05047 * vh_db + 0.176 * vv_db + 3.422 * ratio


def predictor_columns(vv_db: np.ndarray, vh_db: np.ndarray,
                      reference: Optional[np.ndarray] = None) -> List[np.ndarray]:
    """Design columns (float64) in coefficient order: 1, VH_dB, VV_dB, NRPB[, reference]."""
    vh_db = np.asarray(vh_db, dtype=np.float64)
    vv_db = np.asarray(vv_db, dtype=np.float64)
    columns = [np.ones(vh_db.shape), vh_db, vv_db, nrpb(vh_db, vv_db)]
    if reference is not None:
        columns.append(np.asarray(reference, dtype=np.float64))
    return columns


def linear_predict(columns: Sequence[np.ndarray], coefficients: Sequence[float]) -> np.ndarray:
    """``c0*1 + c1*x1 + ...`` summed left to right (float64)."""
    out = np.zeros(np.shape(columns[0]))
    for column, coefficient in zip(columns, coefficients):
        out = out + float(coefficient) * column
    return out


def holdout_mask(window: Window, cell: int = HOLDOUT_CELL) -> np.ndarray:
    """True for pixels of the window's core region that are withheld from the fit.

    A checkerboard of ``cell`` x ``cell`` pixel cells in whole-raster pixel
    coordinates (cells with odd ``row//cell + col//cell``): the split does not
    depend on how the raster is cut into blocks.
    """
    rows = (window.yoff + np.arange(window.ysize)) // cell
    cols = (window.xoff + np.arange(window.xsize)) // cell
    return ((rows[:, None] + cols[None, :]) % 2) == 1


# --- normal equations -------------------------------------------------------------------
@dataclass
class NormalEquations:
    """Sums of one pixel set: ``n``, ``X^T X``, ``X^T y``, ``sum y``, ``sum y^2`` (float64).

    Enough to fit least squares, to evaluate any coefficients' squared error on
    the set (``SSE(b) = y'y - 2 b'X'y + b'X'X b``) and its mean.
    """

    p: int
    n: int = 0
    xtx: np.ndarray = None
    xty: np.ndarray = None
    sy: float = 0.0
    syy: float = 0.0

    def __post_init__(self):
        if self.xtx is None:
            self.xtx = np.zeros((self.p, self.p))
        if self.xty is None:
            self.xty = np.zeros(self.p)

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        """Accumulate rows ``x`` (n, p) and targets ``y`` (n,)."""
        if len(y) == 0:
            return
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        self.n += len(y)
        self.xtx += x.T @ x
        self.xty += x.T @ y
        self.sy += float(y.sum())
        self.syy += float(y @ y)

    def __add__(self, other: "NormalEquations") -> "NormalEquations":
        return NormalEquations(self.p, self.n + other.n, self.xtx + other.xtx,
                               self.xty + other.xty, self.sy + other.sy, self.syy + other.syy)

    @property
    def mean(self) -> float:
        return self.sy / self.n if self.n else math.nan

    def solve(self) -> Tuple[np.ndarray, int]:
        """Least-squares coefficients and the rank of ``X``.

        Columns are scaled to unit root-mean-square first (dB predictors and the
        intercept differ by orders of magnitude); a rank-deficient ``X``
        (a constant predictor) gets the minimum-norm solution.
        """
        scale = np.sqrt(np.diag(self.xtx) / max(self.n, 1))
        scale[scale == 0] = 1.0
        a = self.xtx / np.outer(scale, scale)
        b = self.xty / scale
        z, _, rank, _ = np.linalg.lstsq(a, b, rcond=None)
        return z / scale, int(rank)

    def sse(self, coefficients: Sequence[float]) -> float:
        """Sum of squared errors of ``X @ coefficients`` against ``y`` on this set."""
        c = np.asarray(coefficients, dtype=np.float64)
        return max(float(self.syy - 2.0 * c @ self.xty + c @ self.xtx @ c), 0.0)

    def sse_constant(self, value: float) -> float:
        """Sum of squared errors of predicting every pixel by ``value``."""
        return max(self.syy - 2.0 * value * self.sy + self.n * value * value, 0.0)

    def sst(self) -> float:
        """Total sum of squares about the set's own mean."""
        return self.sse_constant(self.mean) if self.n else math.nan


@dataclass
class FitReport:
    """What the fit (or the fixed model's evaluation) found; every figure in NDVI units."""

    model: str
    coefficients: Dict[str, float]
    fit_n: int
    fit_r2: float
    fit_rmse: float
    baseline_rmse: float
    holdout_n: int
    train_n: int
    clear_mean: float
    fallback: bool = False
    warnings: List[str] = field(default_factory=list)

    @property
    def skilful(self) -> bool:
        return (math.isfinite(self.fit_rmse) and math.isfinite(self.baseline_rmse)
                and self.fit_rmse < self.baseline_rmse)


def evaluate_fit(train: NormalEquations, holdout: NormalEquations, names: Sequence[str],
                 model: str = MODEL_LOCAL, coefficients: Optional[Sequence[float]] = None,
                 min_fit_pixels: int = MIN_FIT_PIXELS) -> FitReport:
    """Fit (local) or evaluate fixed ``coefficients`` on the hold-out; the report.

    Local: coefficients of the fill = least squares on train + hold-out; the
    metrics come from the fit on train only. Fixed models: metrics of the given
    coefficients on the hold-out (nothing fitted; ``fit_n`` = 0).
    """
    total = train + holdout
    warnings = []
    if total.n == 0 and model == MODEL_LOCAL:
        raise S1S2Error(
            "No clear pixel where S2 NDVI and S1 are both valid: nothing to fit or check a "
            "model on. Check the inputs' overlap and the cloud classes, or choose the "
            "custom coefficients model.")
    baseline = (math.sqrt(holdout.sse_constant(train.mean) / holdout.n)
                if holdout.n and train.n else math.nan)
    fallback = False
    if model == MODEL_LOCAL:
        if train.n >= len(names) and holdout.n:
            beta_train, _ = train.solve()
            fit_sse = holdout.sse(beta_train)
            fit_rmse = math.sqrt(fit_sse / holdout.n)
            sst = holdout.sst()
            fit_r2 = 1.0 - fit_sse / sst if sst > 0 else math.nan
        else:
            fit_rmse = fit_r2 = math.nan
        beta, rank = total.solve()
        if rank < len(names):
            warnings.append(
                f"The predictors are collinear on the clear pixels (rank {rank} < {len(names)}):"
                " minimum-norm coefficients.")
        if total.n < min_fit_pixels:
            fallback = True
            warnings.append(
                f"WARNING: only {total.n} clear pixels (fewer than {min_fit_pixels}) to fit the "
                "S1 -> NDVI model: cloudy pixels are filled with the clear-pixel mean NDVI "
                f"({total.mean:.4f}) instead.")
        elif not holdout.n or not train.n:
            fallback = True
            warnings.append(
                "WARNING: the clear pixels do not cover both halves of the hold-out "
                f"checkerboard, so the fit cannot be checked: cloudy pixels are filled with the "
                f"clear-pixel mean NDVI ({total.mean:.4f}).")
        elif not fit_rmse < baseline:
            fallback = True
            warnings.append(
                f"WARNING: the S1 -> NDVI model has no skill on this scene: hold-out RMSE "
                f"{fit_rmse:.4f} >= {baseline:.4f} of the clear-pixel mean. Cloudy pixels are "
                f"filled with the clear-pixel mean NDVI ({total.mean:.4f}) instead.")
        if fallback:
            beta = np.zeros(len(names))
            beta[0] = total.mean
        fit_n = total.n
    else:
        beta = np.asarray(coefficients, dtype=np.float64)
        fit_rmse = math.sqrt(holdout.sse(beta) / holdout.n) if holdout.n else math.nan
        sst = holdout.sst() if holdout.n else math.nan
        fit_r2 = 1.0 - holdout.sse(beta) / sst if holdout.n and sst > 0 else math.nan
        fit_n = 0
        label = "recipe formula" if model == MODEL_RECIPE else "custom coefficients"
        if total.n == 0:  # fixed coefficients need no fit: fill, but say it is unchecked
            warnings.append(
                f"WARNING: no clear pixel where S2 NDVI and S1 are both valid: the {label} "
                "cannot be checked on this scene.")
        elif not fit_rmse < baseline:
            warnings.append(
                f"WARNING: the {label} predict the clear hold-out pixels worse than their mean "
                f"NDVI (RMSE {fit_rmse:.4f} vs {baseline:.4f}): the S1-filled pixels are not "
                "trustworthy. The local model (default) fits the scene's own clear pixels.")
    return FitReport(model, dict(zip(names, (float(b) for b in beta))), fit_n, fit_r2, fit_rmse,
                     baseline, holdout.n, train.n, total.mean, fallback, warnings)


# --- the two streaming passes ---------------------------------------------------------------
@dataclass
class FusionResult:
    """Paths written and the fit report of a :func:`fuse_ndvi_files` run."""

    output: str
    source_output: str
    cloud_fraction: float
    report: FitReport
    reference_free_report: Optional[FitReport] = None
    filled: int = 0
    unfilled: int = 0
    log: List[str] = field(default_factory=list)
    uncertainty_output: Optional[str] = None
    details: Optional[object] = None     # regression kriging: fusion_passes.KrigingDetails

    @property
    def warnings(self) -> List[str]:
        extra = self.reference_free_report.warnings if self.reference_free_report else []
        return self.report.warnings + extra

    def outputs(self) -> Dict[str, float]:
        """The number outputs of ``s1s2:fusendvi`` (NaN where undefined)."""
        numbers = {"CLOUD_FRACTION": self.cloud_fraction, "FIT_N": float(self.report.fit_n),
                   "FIT_R2": self.report.fit_r2, "FIT_RMSE": self.report.fit_rmse,
                   "BASELINE_RMSE": self.report.baseline_rmse}
        for name in PREDICTOR_NAMES + (REFERENCE_NAME,):
            numbers["COEF_" + name] = self.report.coefficients.get(name, math.nan)
        return numbers


class _Blocks:
    """Per-block pixel preparation shared by the fit pass and the fill pass."""

    def __init__(self, model, s1_band_units, boa_add_offset, quantification, cloud_classes,
                 buffer_px, speckle_filter, has_reference, holdout_cell,
                 negative_reflectance=indices.NEGATIVE_MASK):
        self.model = model
        self.vv_db, self.vh_db = (units == UNITS_DB for units in s1_band_units)
        self.boa_add_offset = boa_add_offset
        self.quantification = quantification
        self.cloud_classes = tuple(cloud_classes)
        self.buffer_px = buffer_px
        self.speckle_filter = speckle_filter
        self.has_reference = has_reference
        self.holdout_cell = holdout_cell
        self.negative_reflectance = negative_reflectance

    def unpack(self, arrays):
        """(red, nir, scl, vv, vh, reference or None) from the streamed arrays."""
        arrays = list(arrays)
        return arrays[:5] + [arrays[5] if self.has_reference else None]

    def _s1_linear(self, band: np.ndarray, in_db: bool, window: Window) -> np.ndarray:
        """Core region of a band in linear power, Refined Lee filtered when asked."""
        linear = np.asarray(band, dtype=np.float64)
        if in_db:
            linear = from_db(linear)
        rows, cols = window.core
        if not self.speckle_filter:
            return linear[rows, cols]
        if window.halo == speckle.REFINED_LEE_HALO:   # the streaming function: core only
            return np.asarray(speckle.refined_lee_padded(linear), dtype=np.float64)
        return np.asarray(speckle.refined_lee(linear), dtype=np.float64)[rows, cols]

    def _s1_db(self, band: np.ndarray, in_db: bool, window: Window) -> np.ndarray:
        """Core region of a band in dB (unfiltered dB input is used as it is)."""
        if in_db and not self.speckle_filter:
            rows, cols = window.core
            return np.asarray(band[rows, cols], dtype=np.float64)
        return to_db(self._s1_linear(band, in_db, window))

    def optical(self, red, nir, scl_block, window):
        """Core-region S2 NDVI (float32, = core.indices.ndvi) and the clear, SCL-valid and
        cloud masks (bool)."""
        rows, cols = window.core
        ndvi = np.asarray(indices.ndvi(red[rows, cols], nir[rows, cols], self.boa_add_offset,
                                       self.quantification, self.negative_reflectance),
                          dtype=np.float32)
        scl_core = scl_block[rows, cols]
        scl_valid = np.isfinite(scl_core) & (scl_core != 0)
        cloud = np.asarray(scl_module.cloud_mask(scl_block, self.cloud_classes, self.buffer_px),
                           dtype=bool)[rows, cols]
        clear = np.isfinite(ndvi) & scl_valid & ~cloud
        return ndvi, clear, scl_valid, cloud

    def columns(self, vv, vh, reference, window):
        """The model's design columns (float64, core region; recipe mode: 1, toDb(VH),
        toDb(VV) and their NRPB) and, with a reference, the reference-free S1 columns."""
        if self.model == MODEL_RECIPE:
            vh_r = recipe_to_db(self._s1_linear(vh, self.vh_db, window))
            vv_r = recipe_to_db(self._s1_linear(vv, self.vv_db, window))
            return [np.ones(vh_r.shape), vh_r, vv_r, nrpb(vh_r, vv_r)], None
        s1_columns = predictor_columns(self._s1_db(vv, self.vv_db, window),
                                       self._s1_db(vh, self.vh_db, window))
        if not self.has_reference:
            return s1_columns, None
        rows, cols = window.core
        ref = np.asarray(reference, dtype=np.float64)[rows, cols]
        return s1_columns + [ref], s1_columns


def _valid(columns: Sequence[np.ndarray]) -> np.ndarray:
    ok = np.ones(columns[0].shape, dtype=bool)
    for column in columns:
        ok &= np.isfinite(column)
    return ok


def _accumulate(columns, ndvi, clear, hold):
    """Train and hold-out normal equations of the clear pixels where ``columns`` are valid."""
    use = clear & _valid(columns)
    stacked = np.stack([c[use] for c in columns], axis=1)
    y = ndvi[use].astype(np.float64)
    held = hold[use]
    train, holdout = NormalEquations(len(columns)), NormalEquations(len(columns))
    train.add(stacked[~held], y[~held])
    holdout.add(stacked[held], y[held])
    return train, holdout


def _parse_coefficients(coefficients, has_reference):
    values = [float(c) for c in coefficients]
    if len(values) not in (4, 5):
        raise S1S2Error(
            f"COEFFICIENTS: {len(values)} values given; expected 4 (intercept, VH_dB, VV_dB, "
            "NRPB) or 5 (..., REFERENCE_NDVI).")
    if len(values) == 5 and not has_reference:
        raise S1S2Error("COEFFICIENTS: 5 values given (with a REFERENCE_NDVI coefficient) but "
                        "no REFERENCE_NDVI raster.")
    return values


def _on_grid(source: BandSource, grid: Grid) -> bool:
    return Grid.of(open_band(source)[0]).mismatch(grid) is None


@dataclass
class LinearFitBlock:
    """Pass 1 of the linear models: train / hold-out normal equations and cloud counts."""

    blocks: "_Blocks"
    holdout_cell: int

    def __call__(self, *arrays, window):
        red_b, nir_b, scl_b, vv_b, vh_b, ref_b = self.blocks.unpack(arrays)
        ndvi, clear, scl_valid, cloud = self.blocks.optical(red_b, nir_b, scl_b, window)
        counts = int(np.count_nonzero(cloud & scl_valid)), int(np.count_nonzero(scl_valid))
        if not clear.any():   # nothing to learn here: skip the S1 work (speckle filter)
            return [], counts
        # NDVI outside [-1, 1] (negative reflectance) is never fitted.
        clear = clear & (np.abs(ndvi) <= 1.0)
        columns, s1_columns = self.blocks.columns(vv_b, vh_b, ref_b, window)
        hold = holdout_mask(window, self.holdout_cell)
        sums = [_accumulate(columns, ndvi, clear, hold)]
        if s1_columns is not None:
            sums.append(_accumulate(s1_columns, ndvi, clear, hold))
        return sums, counts


@dataclass
class LinearFillBlock:
    """Pass 2 of the linear models: fused NDVI and source band of the core."""

    blocks: "_Blocks"
    model: str
    beta: Sequence[float]
    beta_free: Optional[Sequence[float]]

    def __call__(self, *arrays, window):
        red_b, nir_b, scl_b, vv_b, vh_b, ref_b = self.blocks.unpack(arrays)
        ndvi, clear, _, _ = self.blocks.optical(red_b, nir_b, scl_b, window)
        if clear.all():       # nothing to fill here: skip the S1 work (speckle filter)
            return ndvi, np.full(ndvi.shape, SOURCE_S2, dtype=np.uint8)
        columns, s1_columns = self.blocks.columns(vv_b, vh_b, ref_b, window)
        fill = _predict(self.model, columns, self.beta)
        if s1_columns is not None and self.beta_free is not None:
            missing = ~np.isfinite(fill)
            fill = np.where(missing, _predict(self.model, s1_columns, self.beta_free), fill)
        fused = np.where(clear, ndvi, fill.astype(np.float32))
        source = np.where(clear, SOURCE_S2, np.where(np.isfinite(fused), SOURCE_S1,
                                                     SOURCE_NODATA)).astype(np.uint8)
        fused[source == SOURCE_NODATA] = np.nan
        return fused, source


def _count_sources(source, window):
    """Pixels filled (2) and left NoData (0) in a block of the written source band."""
    rows, cols = window.core
    core = source[rows, cols]
    return int(np.count_nonzero(core == SOURCE_S1)), int(np.count_nonzero(np.isnan(core)))


def count_sources(source_path: str, cancel=None, **stream_options) -> Tuple[int, int]:
    """(filled, NoData) pixel counts of a written OUTPUT_SOURCE (NoData 0 reads as NaN)."""
    parts = scan(_count_sources, [BandSource(source_path)], cancel=cancel,
                 **{k: v for k, v in stream_options.items() if k != "scratch"})
    return sum(p[0] for p in parts), sum(p[1] for p in parts)


class _Log:
    """Collects the run's log lines and forwards them to the caller's ``log``."""

    def __init__(self, log):
        self.lines: List[str] = []
        self.log = log

    def __call__(self, message: str) -> None:
        self.lines.append(message)
        if self.log is not None:
            self.log(message)


@dataclass
class _Inputs:
    """The run's inputs after checks and collocation, all on ``grid``."""

    red: BandSource
    nir: BandSource
    scl: BandSource
    vv: Optional[BandSource]
    vh: Optional[BandSource]
    reference: Optional[BandSource]
    grid: Grid
    s1_units: List[str]
    boa_add_offset: float

    @property
    def has_s1(self) -> bool:
        return self.vv is not None

    def sources(self, with_reference: bool = True) -> List[BandSource]:
        s1 = [self.vv, self.vh] if self.has_s1 else []
        ref = [self.reference] if with_reference and self.reference is not None else []
        return [self.red, self.nir, self.scl] + s1 + ref


def prepare_inputs(red, nir, scl, vv, vh, reference, s1_units, boa_add_offset, outputs,
                   say) -> _Inputs:
    """Check the inputs and outputs; put SCL and S1 on the S2 grid (logged)."""
    if s1_units not in (UNITS_LINEAR, UNITS_DB):
        raise S1S2Error(f"Unknown S1 units {s1_units!r}: use {UNITS_LINEAR!r} or {UNITS_DB!r}.")
    if (vv is None) != (vh is None):
        raise S1S2Error("VV and VH: give both Sentinel-1 bands or neither.")
    if vv is None and reference is None:
        raise S1S2Error("VV/VH: without Sentinel-1 a REFERENCE_NDVI is needed (the temporal "
                        "mode); give VV and VH, a REFERENCE_NDVI, or both.")
    if s1_units == UNITS_LINEAR and vv is not None:
        for band in (vv, vh):
            require_linear(band, "set S1_UNITS to dB")
    # As s1s2:ndvi: DN 0 is the S2 NoData; the offset comes from the SAFE metadata when None.
    red = BandSource(red.path, red.band, red.label or "RED", red.nodata, True, red.extra_nodata)
    nir = BandSource(nir.path, nir.band, nir.label or "NIR", nir.nodata, True, nir.extra_nodata)
    check_distinct(red, nir)
    if vv is not None:
        check_distinct(vv, vh)
    grid = common_grid([red, nir])
    boa_add_offset = indices.resolve_boa_add_offset([red, nir], boa_add_offset)
    indices.check_s2_bands([red, nir], boa_add_offset)  # DN or reflectance, not an S1 layer
    scl_module.check_scl_band(scl)
    given = [s for s in (red, nir, scl, vv, vh, reference) if s is not None]
    for path in outputs:
        if path:
            check_output_path(path, [s.path for s in given])
    named = [p for p in outputs if p]
    if len(set(named)) != len(named):
        raise S1S2Error("OUTPUT, OUTPUT_SOURCE and OUTPUT_UNCERTAINTY must be different files.")
    if not _on_grid(scl, grid):
        say(f"{scl.name} is not on the grid of {red.name}: resampled onto it with nearest "
            "neighbour (SCL is categorical).")
        scl = warped_to_grid(scl, grid, "near")
    collocated, band_units = [], []
    for band in ((vv, vh) if vv is not None else ()):
        units = s1_units
        if not _on_grid(band, grid):
            say(f"{band.name} is not on the grid of {red.name}: collocated onto it with "
                "bilinear resampling in linear units.")
            path = collocate.collocated_vrt(band, grid, "bilinear",
                                            db_input=s1_units == UNITS_DB, categorical=False,
                                            target_label=red.name)
            # The collocated VRT holds linear power (dB input is interpolated in linear).
            band, units = BandSource(path, 1, band.name), UNITS_LINEAR
        collocated.append(band)
        band_units.append(units)
    vv, vh = collocated if collocated else (None, None)
    inputs = _Inputs(red, nir, scl, vv, vh, reference, grid, band_units or [s1_units] * 2,
                     boa_add_offset)
    common_grid(inputs.sources())  # REFERENCE_NDVI must be on the grid: a clear error otherwise
    return inputs


def fuse_ndvi_files(red: BandSource, nir: BandSource, scl: BandSource,
                    vv: Optional[BandSource], vh: Optional[BandSource], output_path: str,
                    source_path: str, reference: Optional[BandSource] = None,
                    s1_units: str = UNITS_LINEAR, boa_add_offset: Optional[float] = None,
                    quantification: float = 10000.0,
                    cloud_classes: Sequence[int] = RECIPE_CLOUD_CLASSES,
                    cloud_buffer_m: float = 0.0, speckle_filter: bool = False,
                    model: str = MODEL_KRIGING, coefficients: Optional[Sequence[float]] = None,
                    holdout_cell: int = HOLDOUT_CELL, min_fit_pixels: int = MIN_FIT_PIXELS,
                    uncertainty_path: Optional[str] = None,
                    negative_reflectance: str = indices.NEGATIVE_MASK,
                    log: Optional[Callable[[str], None]] = None, progress=None, cancel=None,
                    **stream_options) -> FusionResult:
    """Fused NDVI (float32, NaN NoData), source band (uint8, 1 S2 / 2 filled / 0 NoData) and,
    with ``uncertainty_path`` (regression kriging only), the fill's standard error (NDVI).
    ``negative_reflectance``: as ``s1s2:ndvi`` (mask / clamp / keep reflectance <= 0); the
    models never learn from NDVI outside [-1, 1] whatever the mode.

    RED/NIR: S2 L2A DN bands on the target grid (10 m). SCL: nearest onto that
    grid when it is not on it (20 m). VV/VH: linear power, or dB with
    ``s1_units="db"``; collocated onto the grid (bilinear, in linear units)
    when needed; both may be None with a ``reference`` (temporal mode, regression
    kriging). ``boa_add_offset=None``: from the SAFE metadata, else 0 (as
    ``s1s2:ndvi``). ``reference``: an earlier cloud-free NDVI on the grid. See the
    module docstring for the models.
    """
    if model not in MODELS:
        raise S1S2Error(f"Unknown model {model!r}: use one of {', '.join(MODELS)}.")
    indices.check_negative_reflectance(negative_reflectance)
    say = _Log(log)
    inputs = prepare_inputs(red, nir, scl, vv, vh, reference, s1_units, boa_add_offset,
                            [output_path, source_path, uncertainty_path], say)
    if not inputs.has_s1 and model != MODEL_KRIGING:
        raise S1S2Error("VV/VH: the local, recipe and custom models need Sentinel-1; without "
                        "it use the regression kriging model with a REFERENCE_NDVI.")
    if uncertainty_path and model != MODEL_KRIGING:
        raise S1S2Error("OUTPUT_UNCERTAINTY: only the regression kriging model estimates the "
                        "uncertainty of its fill.")
    buffer_px = (int(scl_module.buffer_pixels(cloud_buffer_m, inputs.grid))
                 if cloud_buffer_m else 0)
    # Temporary float64 arrays per block pixel, in units of one float32 input array.
    stream_options.setdefault("scratch", 12.0)
    if model == MODEL_KRIGING:
        from .fusion_passes import fuse_kriging
        return fuse_kriging(inputs, output_path, source_path, uncertainty_path, quantification,
                            negative_reflectance, cloud_classes, buffer_px, speckle_filter,
                            min_fit_pixels, say, progress, cancel, stream_options)
    return _fuse_linear(inputs, output_path, source_path, (quantification, negative_reflectance),
                        cloud_classes, buffer_px, speckle_filter, model, coefficients,
                        holdout_cell, min_fit_pixels, say, progress, cancel, stream_options)


def _linear_setup(inputs, model, coefficients, cloud_classes, say):
    """(has_reference, fixed coefficients or None) of a linear model."""
    has_reference = inputs.reference is not None
    fixed = None
    if model == MODEL_RECIPE:
        if has_reference:
            say("REFERENCE_NDVI is ignored by the recipe formula.")
            has_reference = False
        fixed = list(RECIPE_COEFFICIENTS)
        if tuple(cloud_classes) != RECIPE_CLOUD_CLASSES:
            say(f"Note: the recipe uses cloud classes 7,8,9,10; running with "
                f"{','.join(str(c) for c in cloud_classes)}.")
    elif model == MODEL_CUSTOM:
        if coefficients is None:
            raise S1S2Error("COEFFICIENTS: the custom model needs 4 or 5 coefficients.")
        fixed = _parse_coefficients(coefficients, has_reference)
        if len(fixed) == 4 and has_reference:
            say("REFERENCE_NDVI is ignored: 4 custom coefficients given (no reference term).")
            has_reference = False
    return has_reference, fixed


def _fuse_linear(inputs, output_path, source_path, ndvi_options, cloud_classes, buffer_px,
                 speckle_filter, model, coefficients, holdout_cell, min_fit_pixels, say,
                 progress, cancel, stream_options) -> FusionResult:
    """The local, recipe and custom models: pass 1 fit (scan), pass 2 fill (stream)."""
    quantification, negative = ndvi_options
    has_reference, fixed = _linear_setup(inputs, model, coefficients, cloud_classes, say)
    sources = inputs.sources(with_reference=has_reference)
    halo = max(buffer_px, speckle.REFINED_LEE_HALO if speckle_filter else 0)
    blocks = _Blocks(model, inputs.s1_units, inputs.boa_add_offset, quantification,
                     cloud_classes, buffer_px, speckle_filter, has_reference, holdout_cell,
                     negative)

    # Pass 1: accumulate the normal equations of train / hold-out clear pixels.
    results = scan(LinearFitBlock(blocks, holdout_cell), sources, halo=halo,
                   progress=sub_progress(progress, 0, 45), cancel=cancel, **stream_options)
    n_models = 2 if has_reference and model == MODEL_LOCAL else 1
    n_cols = [len(PREDICTOR_NAMES) + (1 if has_reference else 0), len(PREDICTOR_NAMES)]
    train = [NormalEquations(n_cols[i]) for i in range(n_models)]
    hold = [NormalEquations(n_cols[i]) for i in range(n_models)]
    cloudy = with_scl = 0
    for sums, (n_cloud, n_scl) in results:
        for i, (t, h) in enumerate(sums[:n_models]):
            train[i], hold[i] = train[i] + t, hold[i] + h
        cloudy += n_cloud
        with_scl += n_scl
    cloud_fraction = cloudy / with_scl if with_scl else math.nan
    names = list(PREDICTOR_NAMES) + ([REFERENCE_NAME] if has_reference else [])
    report = evaluate_fit(train[0], hold[0], names, model, fixed, min_fit_pixels)
    free_report = None
    if n_models == 2:
        free_report = evaluate_fit(train[1], hold[1], list(PREDICTOR_NAMES), model, None,
                                   min_fit_pixels)
    say(f"Cloud fraction (SCL classes {','.join(str(c) for c in cloud_classes)}"
        f"{f', buffer {buffer_px} px' if buffer_px else ''}): {cloud_fraction:.4f}.")
    say(describe(report))
    if free_report is not None:
        say("Where REFERENCE_NDVI is NoData the S1-only model fills: " + describe(free_report))

    # Pass 2: write the fused NDVI and the source band.
    beta = [report.coefficients[n] for n in names]
    beta_free = ([free_report.coefficients[n] for n in PREDICTOR_NAMES]
                 if free_report is not None else None)
    metadata = {"algorithm": "s1s2:fusendvi", "model": model,
                "coefficients": ", ".join(f"{n}={report.coefficients[n]:.6g}" for n in names),
                "fit_n": str(report.fit_n), "fit_rmse": f"{report.fit_rmse:.6g}",
                "baseline_rmse": f"{report.baseline_rmse:.6g}", "fit_r2": f"{report.fit_r2:.6g}",
                "cloud_fraction": f"{cloud_fraction:.6g}",
                "cloud_classes": ",".join(str(c) for c in cloud_classes),
                "speckle_filter": "refined_lee" if speckle_filter else "none"}
    outputs = fused_outputs(output_path, source_path, metadata)
    stream(LinearFillBlock(blocks, model, beta, beta_free), sources, outputs, halo=halo,
           pass_window=True, progress=sub_progress(progress, 45, 100), cancel=cancel,
           grid=inputs.grid, **stream_options)
    filled, unfilled = count_sources(source_path, cancel)
    say(f"Filled from S1: {filled} px; NoData (neither source): {unfilled} px.")
    return FusionResult(output_path, source_path, cloud_fraction, report, free_report,
                        filled, unfilled, say.lines)


def fused_outputs(output_path: str, source_path: str, metadata: Dict[str, str],
                  uncertainty_path: Optional[str] = None) -> List[OutputRaster]:
    """The output rasters of a run (written together by one stream())."""
    outputs = [OutputRaster(output_path, bands=["Fused NDVI"], metadata=metadata),
               OutputRaster(source_path, bands=["source (1=S2, 2=filled, 0=nodata)"],
                            dtype="uint8", nodata=SOURCE_NODATA, label="OUTPUT_SOURCE",
                            metadata=dict(metadata, classes="1=Sentinel-2, 2=filled by the "
                                                            "model, 0=no data from either "
                                                            "source"))]
    if uncertainty_path:
        outputs.append(OutputRaster(uncertainty_path, bands=["fill standard error (NDVI)"],
                                    label="OUTPUT_UNCERTAINTY", metadata=metadata))
    return outputs


def _predict(model: str, columns: Sequence[np.ndarray], beta: Sequence[float]) -> np.ndarray:
    if model == MODEL_RECIPE:
        # Same operations as the script (columns are 1, toDb(VH), toDb(VV), NRPB).
        _, vh_r, vv_r, ratio = columns
        return 2.572 - 0.05047 * vh_r + 0.176 * vv_r + 3.422 * ratio
    prediction = linear_predict(columns, beta)
    return np.clip(prediction, -1.0, 1.0)


def describe(report: FitReport) -> str:
    """One line a user can read: the model, its coefficients and how well it did."""
    coefficients = ", ".join(f"{k} {v:+.5g}" for k, v in report.coefficients.items())
    if report.model == MODEL_LOCAL:
        head = (f"Local least-squares model on {report.fit_n} clear pixels"
                + (" (FALLBACK: clear-pixel mean)" if report.fallback else ""))
    else:
        head = ("Recipe formula (Sentinel Hub script, toDb = 10*ln(10)*x)"
                if report.model == MODEL_RECIPE else "Custom coefficients")
    return (f"{head}: {coefficients}. Spatial hold-out ({report.holdout_n} px withheld, "
            f"{report.train_n} px train): RMSE {report.fit_rmse:.4f}, R2 {report.fit_r2:.3f}; "
            f"clear-pixel mean baseline RMSE {report.baseline_rmse:.4f}.")
