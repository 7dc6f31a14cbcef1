"""Temporal mode of s1s2:fusendvi (REFERENCE_NDVI, no Sentinel-1) on a real NDVI series.

The eo-learn test patch (101 x 100 px, 36 dates of 2016-12 .. 2017-12, real SCL and NDVI;
``tests/data/eolearn``): for each pair of consecutive clear dates, the earlier date is the
REFERENCE_NDVI and the later one's NDVI is hidden under the real clouds of a cloudy date of
the same series. The series gives NDVI, not bands: B04/B08 that reproduce it are built with
NIR fixed and RED = NIR (1 - NDVI) / (1 + NDVI).
"""
import os

import numpy as np
import pytest
from osgeo import gdal

from s1s2_toolkit.core import BandSource, fusion
from testkit import DATA_DIR, read, write

EOLEARN = os.path.join(DATA_DIR, "eolearn")
CLOUD_CLASSES = (3, 8, 9, 10)
NIR_DN = 3000.0
Z95 = 1.959963984540054


def series():
    """({date: NDVI} of the clear dates, {date: SCL} of all dates, geotransform, EPSG)."""
    ndvi_ds = gdal.Open(os.path.join(EOLEARN, "eolearn_ndvi_clear.tif"))
    scl_ds = gdal.Open(os.path.join(EOLEARN, "eolearn_scl.tif"))
    ndvi = {ndvi_ds.GetRasterBand(i).GetDescription(): ndvi_ds.GetRasterBand(i).ReadAsArray()
            for i in range(1, ndvi_ds.RasterCount + 1)}
    scl = {scl_ds.GetRasterBand(i).GetDescription(): scl_ds.GetRasterBand(i).ReadAsArray()
           for i in range(1, scl_ds.RasterCount + 1)}
    return ndvi, scl, ndvi_ds.GetGeoTransform(), 32633


def cases():
    """(reference date, target date, cloud-mask date): consecutive clear dates, each under
    two of the series' partly cloudy dates (10-60 % cloud), taken in turn."""
    ndvi, scl, _, _ = series()
    clear_dates = sorted(ndvi)
    cloudy = [d for d in sorted(scl) if 0.10 <= np.isin(scl[d], CLOUD_CLASSES).mean() <= 0.60]
    out = []
    for i, (ref, target) in enumerate(zip(clear_dates[:-1], clear_dates[1:])):
        for j in (i, i + len(cloudy) // 2):
            out.append((ref, target, cloudy[j % len(cloudy)]))
    return out


def temporal_case(ref, target, mask_date, workdir, data=None):
    ndvi, scl, gt, epsg = data or series()
    truth = ndvi[target].astype(np.float64)
    # whole DN, as in a product (fractional DN are refused as a wrong layer)
    red = np.round(NIR_DN * (1 - truth) / (1 + truth)).astype(np.float32)
    paths = {"red": write(os.path.join(workdir, "B04.tif"), red, gt, epsg),
             "nir": write(os.path.join(workdir, "B08.tif"),
                          np.full(truth.shape, NIR_DN, np.float32), gt, epsg),
             "scl": write(os.path.join(workdir, "SCL.tif"), scl[mask_date], gt, epsg)}
    reference = ndvi[ref].copy()
    reference[np.isin(scl[ref], CLOUD_CLASSES)] = np.nan      # the reference's own clouds
    paths["ref"] = write(os.path.join(workdir, "ref.tif"), reference, gt, epsg, nodata=np.nan)
    out, sigma = os.path.join(workdir, "fused.tif"), os.path.join(workdir, "sigma.tif")
    result = fusion.fuse_ndvi_files(
        BandSource(paths["red"]), BandSource(paths["nir"]), BandSource(paths["scl"]), None,
        None, out, os.path.join(workdir, "source.tif"), reference=BandSource(paths["ref"]),
        boa_add_offset=0.0, cloud_classes=CLOUD_CLASSES, uncertainty_path=sigma, threads=1)
    fused, sd = read(out), read(sigma)
    hidden = np.isin(scl[mask_date], CLOUD_CLASSES)
    cloud = hidden & np.isfinite(fused)
    error = fused[cloud] - truth[cloud]
    sst = np.sum((truth[cloud] - truth[cloud].mean()) ** 2)
    as_is = np.isfinite(reference) & cloud
    as_is_error = reference[as_is] - truth[as_is]
    return {"ref": ref, "target": target, "mask": mask_date,
            "r2": 1 - float(np.sum(error ** 2) / sst),
            "rmse": float(np.sqrt(np.mean(error ** 2))),
            "mean_rmse": float(np.sqrt(np.mean((truth[cloud] - truth[~hidden].mean()) ** 2))),
            "as_is_r2": 1 - float(np.sum(as_is_error ** 2)
                                  / np.sum((truth[as_is] - truth[as_is].mean()) ** 2)),
            "covered": int(np.count_nonzero(np.abs(error) <= Z95 * sd[cloud])),
            "hidden": int(cloud.sum()), "unfilled": int(np.count_nonzero(hidden) - cloud.sum()),
            "predictors": result.details.fit.names}


def temporal_cases(workdir):
    data = series()
    rows = []
    for i, (ref, target, mask) in enumerate(cases()):
        folder = os.path.join(workdir, f"case{i}")
        os.makedirs(folder)
        rows.append(temporal_case(ref, target, mask, folder, data))
    return rows


def test_bands_built_from_the_series_reproduce_its_ndvi(tmp_path):
    from s1s2_toolkit.core.indices import ndvi as s2_ndvi

    values, _, _, _ = series()
    truth = values["2017-07-05"]
    red = (NIR_DN * (1 - truth.astype(np.float64)) / (1 + truth)).astype(np.float32)
    got = s2_ndvi(red, np.full(truth.shape, NIR_DN, np.float32))
    np.testing.assert_allclose(got, truth, rtol=0, atol=2e-6)


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    return temporal_cases(str(tmp_path_factory.mktemp("temporal")))


def test_temporal_fill_without_s1_on_the_eolearn_series(rows):
    assert len(rows) == 28
    assert all(r["predictors"] == ("REFERENCE_NDVI",) for r in rows)
    assert all(r["unfilled"] == 0 for r in rows)
    assert np.median([r["r2"] for r in rows]) >= 0.65
    # Far better than the clear-pixel mean and than the earlier NDVI used as it is.
    assert np.median([r["rmse"] / r["mean_rmse"] for r in rows]) < 0.7
    assert np.median([r["r2"] for r in rows]) > np.median([r["as_is_r2"] for r in rows]) + 0.2


def test_temporal_uncertainty_coverage(rows):
    coverage = sum(r["covered"] for r in rows) / sum(r["hidden"] for r in rows)
    assert 0.90 <= coverage <= 0.98
