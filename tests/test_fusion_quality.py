"""Fill quality of s1s2:fusendvi on the six real BigEarthNet S1/S2 pairs.

BigEarthNet has no SCL: a synthetic SCL marks three blocks (29 % of each
120 x 120 patch) as cloud; the true S2 NDVI under these "clouds" is known, so
the fill RMSE of every model can be measured. ``scripts/fusion_quality.py``
prints the same table as markdown for the README.
"""
import os

import numpy as np
from osgeo import gdal

from s1s2_toolkit.core import BandSource, fusion
from testkit import bigearthnet_pairs, patch_band, read, write

CLOUD_BLOCKS = (((20, 60), (30, 70), 9), ((75, 110), (5, 45), 8), ((70, 105), (80, 115), 10))


def synthetic_scl(shape=(120, 120)):
    """SCL: vegetation (4) everywhere, three blocks of cloud classes 9, 8, 10."""
    scl = np.full(shape, 4, np.uint8)
    for (r0, r1), (c0, c1), value in CLOUD_BLOCKS:
        scl[r0:r1, c0:c1] = value
    return scl


def write_synthetic_scl(path, like):
    ds = gdal.Open(like)
    epsg = int(ds.GetSpatialRef().GetAuthorityCode(None))
    return write(path, synthetic_scl((ds.RasterYSize, ds.RasterXSize)), ds.GetGeoTransform(),
                 epsg)


def true_ndvi(s2_dir):
    red, nir = read(patch_band(s2_dir, "B04")), read(patch_band(s2_dir, "B08"))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((red > 0) & (nir > 0), (nir - red) / (nir + red), np.nan)


# (column title, fuse_ndvi_files options)
RUNS = (
    ("recipe formula (toDb = 10 ln10 x)", dict(model=fusion.MODEL_RECIPE, speckle_filter=False)),
    ("A3 coefficients, correct dB (clamped)", dict(model=fusion.MODEL_CUSTOM, speckle_filter=False,
                                         coefficients=fusion.RECIPE_COEFFICIENTS)),
    ("local model, no speckle filter", dict(model=fusion.MODEL_LOCAL, speckle_filter=False)),
    ("local model + Refined Lee (default)", dict(model=fusion.MODEL_LOCAL, speckle_filter=True)),
)


def patch_quality(s2_dir, s1_dir, workdir):
    """Fill RMSE (under the synthetic clouds, against the true S2 NDVI) of every model."""
    scl_path = write_synthetic_scl(os.path.join(workdir, "scl.tif"), patch_band(s2_dir, "B04"))
    truth = true_ndvi(s2_dir)
    cloud = np.isin(synthetic_scl(truth.shape), [8, 9, 10]) & np.isfinite(truth)
    clear = ~np.isin(synthetic_scl(truth.shape), [8, 9, 10]) & np.isfinite(truth)
    row = {"patch": os.path.basename(s2_dir), "cloud_px": int(cloud.sum())}
    row["clear-pixel mean"] = float(np.sqrt(np.mean((truth[cloud] - truth[clear].mean()) ** 2)))
    for title, options in RUNS:
        out = os.path.join(workdir, "fused.tif")
        result = fusion.fuse_ndvi_files(
            BandSource(patch_band(s2_dir, "B04")), BandSource(patch_band(s2_dir, "B08")),
            BandSource(scl_path), BandSource(patch_band(s1_dir, "VV")),
            BandSource(patch_band(s1_dir, "VH")), out, os.path.join(workdir, "source.tif"),
            s1_units=fusion.UNITS_DB, boa_add_offset=0.0, **options)
        fused = read(out)
        row[title] = float(np.sqrt(np.mean((fused[cloud] - truth[cloud]) ** 2)))
        if options["model"] == fusion.MODEL_LOCAL and options["speckle_filter"]:
            row["FIT_RMSE"] = result.report.fit_rmse
            row["BASELINE_RMSE"] = result.report.baseline_rmse
            row["FIT_R2"] = result.report.fit_r2
            row["fallback"] = result.report.fallback
    return row


def quality_table(workdir):
    rows = []
    for s2_dir, s1_dir in bigearthnet_pairs():
        folder = os.path.join(workdir, os.path.basename(s2_dir))
        os.makedirs(folder, exist_ok=True)
        rows.append(patch_quality(s2_dir, s1_dir, folder))
    return rows


def test_local_model_beats_the_recipe_formula_on_every_patch(tmp_path):
    rows = quality_table(str(tmp_path))
    assert len(rows) == 6
    recipe, a3 = RUNS[0][0], RUNS[1][0]
    local = RUNS[3][0]
    for row in rows:
        assert row[local] < row[recipe], row
        assert row[local] < row[a3], row
        # ... and the clear-pixel mean (modestly on some patches: see the README table).
        assert row[local] < row["clear-pixel mean"], row
        # The fixed formula is off by far more than the spread of NDVI itself.
        assert row[recipe] > 2 * row["clear-pixel mean"], row
        # Honest report: the hold-out says the model has skill, and the default ran it.
        assert row["FIT_RMSE"] < row["BASELINE_RMSE"] and not row["fallback"], row
