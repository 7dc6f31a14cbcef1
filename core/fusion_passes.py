"""The regression-kriging run of ``fuse_ndvi_files``: three named passes over the raster.

``fit_pass`` (scan) -> ``variogram_pass`` (scan) -> ``fill_pass`` (stream), then a
cheap count of the written source band. The science is in ``fusion_rk``; this module
wires the passes to the engine, the log and the result.
"""
import math
from dataclasses import dataclass
from typing import List

import numpy as np

from . import fusion_rk as rk
from .errors import S1S2Error
from .fusion import (FitReport, FusionResult, MODEL_KRIGING, count_sources, fused_outputs)
from .kriging import NEIGHBOURS, SEARCH_RADIUS
from .streaming import scan, stream, sub_progress
from .variogram import Exponential, PairSums, fit_exponential


@dataclass
class KrigingDetails:
    """What the regression-kriging run measured (beyond the FitReport)."""

    fit: rk.Fit
    variogram: Exponential
    holdout: rk.Holdout
    stride: int


def _scene(inputs, quantification, negative_reflectance, cloud_classes, buffer_px,
           speckle_filter) -> rk.Scene:
    return rk.Scene(inputs.grid.width, inputs.grid.height, inputs.has_s1,
                    inputs.reference is not None,
                    inputs.s1_units[0] == "db", inputs.s1_units[1] == "db",
                    inputs.boa_add_offset, quantification, tuple(cloud_classes), buffer_px,
                    bool(speckle_filter and inputs.has_s1), negative_reflectance)


def fit_pass(scene, sources, min_fit_pixels, progress, cancel, options) -> rk.Fit:
    """Pass 1: the ridge regression, the hold-out cell size and the cloud fraction."""
    parts = scan(rk.FitBlock(scene), sources, halo=scene.feature_margin, progress=progress,
                 cancel=cancel, **options)
    fit = rk.combine_fit(parts, scene.names, min_fit_pixels)
    if fit.n == 0:
        raise S1S2Error(
            "No clear pixel where S2 NDVI and the predictors are all valid: nothing to fit "
            "or check a model on. Check the inputs' overlap and the cloud classes, or choose "
            "the custom coefficients model.")
    return fit


def sample_stride(fit: rk.Fit) -> int:
    """Lattice step of the hold-out sample (whole-raster coordinates): at most about
    ``MAX_SAMPLES`` kriged hold-out pixels, whatever the scene size."""
    return max(1, int(math.ceil(math.sqrt(fit.holdout_n / rk.MAX_SAMPLES))))


def variogram_pass(scene, fit, sources, progress, cancel, options):
    """Pass 2: the residual variogram and the honest hold-out of the whole predictor."""
    stride = sample_stride(fit)
    halo = scene.feature_margin + SEARCH_RADIUS
    parts = scan(rk.VariogramBlock(scene, fit, stride), sources, halo=halo, progress=progress,
                 cancel=cancel, **options)
    sums = PairSums.empty()
    samples = []
    for pair_sums, sample in parts:
        sums = sums + pair_sums
        if len(sample.truth):
            samples.append(sample)
    model = fit_exponential(sums, fit.residual_var)
    if samples:
        sample = rk.Sample(*(np.concatenate([getattr(s, name) for s in samples])
                             for name in ("truth", "regression", "offsets", "residuals",
                                          "present")))
    else:
        sample = rk.Sample.empty(NEIGHBOURS)
    holdout = rk.evaluate_holdout(sample, fit, model)
    return model, holdout, stride, sums


def fill_pass(scene, fit, model, holdout, sources, outputs, grid, progress, cancel, options):
    """Pass 3: write the fused NDVI, the source band and (optionally) the uncertainty."""
    halo = scene.feature_margin + SEARCH_RADIUS
    block = rk.FillBlock(scene, fit, model, holdout.scale, len(outputs) == 3)
    stream(block, sources, outputs, halo=halo, pass_window=True, progress=progress,
           cancel=cancel, grid=grid, **options)


def report_of(fit: rk.Fit, holdout: rk.Holdout) -> FitReport:
    """The FitReport of the whole predictor (its hold-out figures) for the number outputs."""
    coefficients = {"INTERCEPT": float(fit.beta[0])}
    for name, value in zip(fit.names, fit.beta[1:]):
        coefficients[name] = float(value)
    return FitReport(MODEL_KRIGING, coefficients, fit.n, holdout.r2, holdout.rmse,
                     holdout.baseline_rmse, holdout.n, fit.n - fit.holdout_n, fit.clear_mean,
                     fit.fallback, list(fit.warnings))


def describe_run(fit: rk.Fit, model: Exponential, holdout: rk.Holdout, stride: int,
                 scene: rk.Scene) -> List[str]:
    """The log lines a user reads: predictors, regression, variogram, honest hold-out."""
    used = ([f"S1 multi-scale box statistics ({len(rk.ff.S1_FEATURE_NAMES)} columns: "
             "mean of VV_dB, VH_dB, VH_dB-VV_dB and std of VV_dB, VH_dB over radii "
             f"{', '.join(str(r) for r in rk.ff.BOX_RADII)} px)"] if scene.has_s1 else []) + \
        (["REFERENCE_NDVI"] if scene.has_reference else [])
    regression = ("FALLBACK: clear-pixel mean" if fit.fallback else
                  f"ridge, alpha {fit.alpha:g} chosen on the hold-out")
    lines = [
        f"Regression kriging. Predictors: {' + '.join(used)}; {regression}; fitted on "
        f"{fit.n} clear pixels (intercept {fit.beta[0]:+.4f}).",
        f"Hold-out design: checkerboard of {fit.cell} x {fit.cell} px cells (scene's mean "
        f"cloud run {fit.gap_px:.1f} px); regression alone on the withheld cells: RMSE "
        f"{fit.regression_rmse:.4f} vs {fit.mean_rmse:.4f} for the training mean.",
        f"Residuals: {model.describe()}.",
        f"Whole predictor (regression + kriging of {NEIGHBOURS} nearest clear training-cell "
        f"pixels within {SEARCH_RADIUS} px), {holdout.n} hold-out pixels (every {stride}. "
        f"row/column of the withheld cells): RMSE {holdout.rmse:.4f}, R2 {holdout.r2:.3f}; "
        f"clear-pixel mean RMSE {holdout.baseline_rmse:.4f}.",
        "Hold-out RMSE by distance to the nearest clear pixel: " + "; ".join(
            f"{label}: {rmse:.4f} ({n} px)" for label, n, rmse in holdout.by_distance) + ".",
        f"Uncertainty: the kriging + regression variance covered {100 * holdout.coverage_raw:.1f}"
        f" % of the hold-out errors with its 95 % interval; scaled by {holdout.scale:.3f} so "
        "that 95 % do."]
    if scene.has_s1 and scene.has_reference:
        lines.append("Where a predictor is NoData the clear-pixel mean + kriging fills.")
    return lines


def fuse_kriging(inputs, output_path, source_path, uncertainty_path, quantification,
                 negative_reflectance, cloud_classes, buffer_px, speckle_filter,
                 min_fit_pixels, say, progress, cancel, options) -> FusionResult:
    """Regression kriging, file to file: fit, variogram + hold-out, fill, count."""
    scene = _scene(inputs, quantification, negative_reflectance, cloud_classes, buffer_px,
                   speckle_filter)
    sources = inputs.sources()
    fit = fit_pass(scene, sources, min_fit_pixels, sub_progress(progress, 0, 25), cancel,
                   options)
    say(f"Cloud fraction (SCL classes {','.join(str(c) for c in cloud_classes)}"
        f"{f', buffer {buffer_px} px' if buffer_px else ''}): {fit.cloud_fraction:.4f}.")
    model, holdout, stride, _ = variogram_pass(scene, fit, sources,
                                               sub_progress(progress, 25, 50), cancel, options)
    for line in describe_run(fit, model, holdout, stride, scene):
        say(line)
    report = report_of(fit, holdout)
    metadata = {"algorithm": "s1s2:fusendvi", "model": MODEL_KRIGING,
                "predictors": ",".join(scene.names),
                "coefficients": ", ".join(f"{k}={v:.6g}" for k, v in report.coefficients.items()),
                "ridge_alpha": f"{fit.alpha:g}", "variogram": model.describe(),
                "fit_n": str(fit.n), "fit_rmse": f"{holdout.rmse:.6g}",
                "baseline_rmse": f"{holdout.baseline_rmse:.6g}", "fit_r2": f"{holdout.r2:.6g}",
                "cloud_fraction": f"{fit.cloud_fraction:.6g}",
                "cloud_classes": ",".join(str(c) for c in cloud_classes),
                "speckle_filter": "refined_lee" if scene.speckle_filter else "none"}
    outputs = fused_outputs(output_path, source_path, metadata, uncertainty_path)
    fill_pass(scene, fit, model, holdout, sources, outputs, inputs.grid,
              sub_progress(progress, 50, 100), cancel, options)
    filled, unfilled = count_sources(source_path, cancel)
    say(f"Filled: {filled} px; NoData (no predictor and no clear pixel within "
        f"{SEARCH_RADIUS} px): {unfilled} px.")
    return FusionResult(output_path, source_path, fit.cloud_fraction, report, None, filled,
                        unfilled, say.lines, uncertainty_path,
                        KrigingDetails(fit, model, holdout, stride))
