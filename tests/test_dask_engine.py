"""Every algorithm's core through a real Dask cluster equals the local engine's output.

The cluster (``dask scheduler`` + two ``dask worker --nthreads 1`` on 127.0.0.1) is
started once per session (conftest.dask_cluster). Each case runs the same core call
twice, locally and with the Dask engine, in many blocks; the files must be equal pixel
for pixel (bit for bit, NaN included) with the same grid, bands and NoData, and the
reported numbers equal to 1e-9 relative.
"""
import math
import os

import numpy as np
import pytest
from osgeo import gdal

from s1s2_toolkit.core import BandSource, Grid, streaming
from s1s2_toolkit.core.bandstats import Statistics
from s1s2_toolkit.core.engine import LOCAL, use_engine
from testkit import BIGEARTHNET, patch_band, write

pytest.importorskip("distributed")

CASES = {}
S1_PATCH = patch_band(os.path.join(BIGEARTHNET, "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48"),
                      "VV")  # EPSG:32633, 120 x 120, 10 m, dB
GT = (500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0)
SHAPE = (150, 190)


def case(func):
    CASES[func.__name__] = func
    return func


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Shared synthetic inputs (S2 DN, SCL, S1 linear power, angle), 150 x 190 at 10 m."""
    folder = tmp_path_factory.mktemp("dask-inputs")
    rng = np.random.default_rng(11)
    vv = rng.gamma(4.0, 0.02, SHAPE).astype(np.float32)
    vh = (vv * rng.uniform(0.1, 0.4, SHAPE)).astype(np.float32)
    vv[40:44, 60:70] = np.nan
    red = rng.integers(300, 2000, SHAPE).astype(np.uint16)
    nir = rng.integers(1500, 5000, SHAPE).astype(np.uint16)
    red[3, 4] = 0
    scl = np.full(SHAPE, 4, np.uint8)
    scl[20:60, 30:90] = 9
    scl[100:130, 120:170] = 8
    angle = np.tile(np.linspace(29.0, 46.0, SHAPE[1], dtype=np.float32), (SHAPE[0], 1))
    paths = {name: write(str(folder / f"{name}.tif"), array, GT, nodata=nodata)
             for name, array, nodata in (("vv", vv, None), ("vh", vh, None),
                                         ("red", red, 0), ("nir", nir, 0), ("scl", scl, None),
                                         ("angle", angle, None))}
    paths["stack"] = []
    for i in range(5):
        date = rng.normal(0.2 * i, 1.0, SHAPE).astype(np.float32)
        date[rng.random(SHAPE) < 0.1] = np.nan
        paths["stack"].append(write(str(folder / f"date{i}.tif"), date, GT))
    return paths


# -- the algorithms' core calls: (folder, inputs) -> ([written paths], {number: value}) --------
@case
def ndvi(folder, paths):
    from s1s2_toolkit.core.indices import ndvi_file
    lines = []
    out = ndvi_file(BandSource(paths["red"]), BandSource(paths["nir"]), str(folder / "ndvi.tif"),
                    scl=BandSource(paths["scl"]), cloud_classes=(8, 9), cloud_buffer_m=30.0,
                    boa_add_offset=-1000.0, log=lines.append, warn=lines.append)
    # the reflectance <= 0 counts are summed from the blocks (on the client with Dask)
    assert any("have a reflectance <= 0" in line for line in lines)
    return [out], {"log": "\n".join(lines)}


@case
def rvi4s1_and_ratio_and_anglemask(folder, paths):
    from s1s2_toolkit.core.indices import angle_mask_file, rvi4s1_file, vv_vh_ratio_file
    vv, vh, angle = (BandSource(paths[k]) for k in ("vv", "vh", "angle"))
    return [rvi4s1_file(vv, vh, str(folder / "rvi.tif")),
            vv_vh_ratio_file(vv, vh, str(folder / "ratio.tif"), angle=angle),
            angle_mask_file(vv, angle, str(folder / "masked.tif"), 31.0, 44.0)], {}


@case
def dbconvert(folder, paths):
    from s1s2_toolkit.core.units import convert_db_file
    return [convert_db_file(BandSource(paths["vv"]), str(folder / "db.tif"))], {}


@case
def speckle_filters(folder, paths):
    from s1s2_toolkit.core.speckle import focal_median_file, lee_file, refined_lee_file
    vv = BandSource(paths["vv"])
    return [refined_lee_file(vv, str(folder / "rl.tif")),
            lee_file(vv, str(folder / "lee.tif"), window=5),
            focal_median_file(vv, str(folder / "fm.tif"), radius_m=30.0)], {}


@case
def stackstatistics(folder, paths):
    from s1s2_toolkit.core.stackstats import STATISTICS, stack_statistics_file
    outputs = {name: str(folder / f"{name}.tif") for name in STATISTICS}
    written = stack_statistics_file([BandSource(p) for p in paths["stack"]], outputs)
    return sorted(written.values()), {}


@case
def seaice(folder, paths):
    from s1s2_toolkit.core.seaice import sea_ice
    from test_seaice import synthetic_ice_scene
    os.makedirs(folder / "in", exist_ok=True)
    hv, b03, _, _ = synthetic_ice_scene(folder / "in")
    out1, out2 = str(folder / "s1ice.tif"), str(folder / "s2ice.tif")
    numbers = sea_ice(hv, BandSource(b03, 1, "B03", zero_is_nodata=True), out1, out2,
                      block_pixels=37 * 37)
    return [out1, out2], numbers


@case
def seaice_s1_on_another_grid(folder, paths):
    """S1 in dB on another grid: warped through an in-memory VRT the workers receive."""
    from s1s2_toolkit.core.seaice import sea_ice
    os.makedirs(folder / "in", exist_ok=True)
    b03 = write(str(folder / "in" / "b03.tif"), np.where(np.arange(120 * 120).reshape(120, 120)
                                                         % 7 < 3, 5000, 900).astype(np.uint16),
                (500000.0, 10.0, 0.0, 5100000.0, 0.0, -10.0), epsg=32633, dtype="uint16")
    hv = write(str(folder / "in" / "hv_db.tif"), np.random.default_rng(2).uniform(
        -36, -15, (70, 70)).astype(np.float32), (499990.0, 20.0, 0.0, 5100010.0, 0.0, -20.0),
        epsg=32633)
    out1, out2 = str(folder / "s1ice.tif"), str(folder / "s2ice.tif")
    numbers = sea_ice(hv, BandSource(b03, 1, "B03"), out1, out2, block_pixels=41 * 41)
    return [out1, out2], numbers


@case
def calibrate_safe_product(folder, paths):
    from s1s2_toolkit.core.calibration import calibrate
    from test_calibration_product import build_product
    safe = build_product(str(folder / "p"), scale=40, polarisations=("VH",))
    return [calibrate(safe, "VH", str(folder / "sigma0.tif"), output_db=True)], {}


@case
def calibrate_met_norway_netcdf(folder, paths):
    from s1s2_toolkit.core.calibration import calibrate
    from test_calibration import _write_netcdf
    rng = np.random.default_rng(7)
    shape = (90, 110)
    y, x = np.mgrid[0:shape[0], 0:shape[1]]
    os.makedirs(folder / "in", exist_ok=True)
    path = _write_netcdf(str(folder / "in" / "S1A_EW_GRDM_1SDH_test.nc"),
                         rng.integers(0, 300, shape).astype(np.uint16),
                         (400.0 + x * 2.0 + y * 0.5).astype(np.float32),
                         (1500.0 + x * 3.0).astype(np.float32), -70.0 + x * 0.01, 78.0 - y * 0.01)
    return [calibrate(path, "HV", str(folder / "hv.tif"))], {}


@case
def collocate_bilinear_and_db(folder, paths):
    from s1s2_toolkit.core.collocate import collocate_to_grid
    patch = Grid.of_path(S1_PATCH)
    gt = patch.geotransform
    target = Grid(patch.crs_wkt, (gt[0] + 3.0, 7.0, 0.0, gt[3] - 3.0, 0.0, -7.0), 150, 140)
    return [collocate_to_grid(S1_PATCH, target, str(folder / "bilinear.tif")),
            collocate_to_grid(S1_PATCH, target, str(folder / "in_db.tif"), linear_units=True),
            collocate_to_grid(paths["scl"], Grid.of_path(paths["vv"]), str(folder / "scl.tif"),
                              resampling="nearest")], {}


@case
def collocate_reprojected_cubic_average_and_gcps(folder, paths):
    """Onto another CRS (EPSG:4326, approximate transformer), cubic and average, and a
    GCP-only input by thin plate spline: each warped by the workers."""
    from s1s2_toolkit.core.collocate import collocate_to_grid
    from osgeo import osr
    from test_collocate import make_gcp_only
    wgs84 = osr.SpatialReference()
    wgs84.ImportFromEPSG(4326)
    wgs84.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    ds = gdal.Open(S1_PATCH)
    gt = ds.GetGeoTransform()
    corner = osr.CoordinateTransformation(ds.GetSpatialRef(), wgs84).TransformPoint(
        gt[0], gt[3])
    geographic = Grid(wgs84.ExportToWkt(), (corner[0], 0.0001, 0.0, corner[1], 0.0, -0.0001),
                      170, 110)
    os.makedirs(folder / "in", exist_ok=True)
    gcp_only = make_gcp_only(S1_PATCH, str(folder / "in" / "gcps.tif"))
    return [collocate_to_grid(S1_PATCH, geographic, str(folder / "cubic.tif"),
                              resampling="cubic"),
            collocate_to_grid(S1_PATCH, geographic, str(folder / "average.tif"),
                              resampling="average"),
            collocate_to_grid(gcp_only, Grid.of_path(S1_PATCH), str(folder / "tps.tif"),
                              resampling="bilinear", gcp_transform="tps")], {}


@case
def collocate_swath_file(folder, paths):
    from s1s2_toolkit.core.swath import collocate_swath
    from test_swath import swath_geometry, utm_grid, write_netcdf
    lon, lat = swath_geometry(n=300)
    values = np.random.default_rng(5).gamma(2.0, 0.05, lon.shape)
    os.makedirs(folder / "in", exist_ok=True)
    nc = write_netcdf(str(folder / "in" / "swath.nc"), lon, lat, values)
    grid = utm_grid(lon, lat, 300, 280)
    return [collocate_swath(nc, "sigmaNought_HV", grid, str(folder / "swath.tif"),
                            memory_mb=2)], {}


@case
def fusion_kriging_and_local(folder, paths):
    from s1s2_toolkit.core import fusion as core_fusion
    from test_fusion import synthetic_scene
    os.makedirs(folder / "in", exist_ok=True)
    scene, _ = synthetic_scene(folder / "in")
    inputs = [BandSource(scene[k]) for k in ("red", "nir", "scl", "vv", "vh")]
    written, numbers = [], {}
    for model in (core_fusion.MODEL_KRIGING, core_fusion.MODEL_LOCAL):
        out, src = str(folder / f"{model}.tif"), str(folder / f"{model}_source.tif")
        sigma = str(folder / f"{model}_sigma.tif") if model == core_fusion.MODEL_KRIGING \
            else None
        result = core_fusion.fuse_ndvi_files(*inputs, out, src, model=model, boa_add_offset=0.0,
                                             reference=BandSource(scene["ref"]),
                                             uncertainty_path=sigma)
        written += [p for p in (out, src, sigma) if p]
        numbers.update({f"{model}_{k}": v for k, v in result.outputs().items()})
        numbers[f"{model}_filled"], numbers[f"{model}_unfilled"] = result.filled, result.unfilled
        numbers[f"{model}_log"] = "\n".join(result.log)
    return written, numbers


# -- comparison ---------------------------------------------------------------------------
def raster_facts(path):
    ds = gdal.Open(path)
    bands = [ds.GetRasterBand(i) for i in range(1, ds.RasterCount + 1)]
    return {"size": (ds.RasterXSize, ds.RasterYSize), "gt": ds.GetGeoTransform(),
            "crs": ds.GetProjection(), "gcps": len(ds.GetGCPs() or []),
            "bands": [(b.GetDescription(), b.GetNoDataValue(), b.DataType) for b in bands],
            "statistics": [Statistics.from_metadata(b.GetMetadata()) for b in bands],
            "pixels": [b.ReadAsArray() for b in bands]}


# Outputs that are not bit for bit (known, documented in the README "Scaling out"): a
# GCP-only input warped by thin plate spline through a warped VRT on the workers moves a few
# float32 values in their last bits against the local warp straight into the file; the same
# VRT path run without Dask gives the cluster's values (GDAL's VRT warp path, not the workers).
NEAR = {"tps.tif": 1e-5}


def assert_same_raster(local, remote):
    a, b = raster_facts(local), raster_facts(remote)
    for key in ("size", "gt", "crs", "gcps", "bands"):
        assert a[key] == b[key] or (key == "bands" and str(a[key]) == str(b[key])), key
    for plane_a, plane_b in zip(a["pixels"], b["pixels"]):
        assert plane_a.dtype == plane_b.dtype
        rtol = NEAR.get(os.path.basename(local))
        if rtol is not None:
            np.testing.assert_allclose(plane_b, plane_a, rtol=rtol, atol=0.0)  # NaN = NaN
            continue
        # bit for bit: compare the bytes (NaN payloads included)
        assert plane_a.tobytes() == plane_b.tobytes(), f"{remote} differs from {local}"
    # the statistics gathered while writing (none in a local gdal.Warp into the file)
    for stats_a, stats_b in zip(a["statistics"], b["statistics"]):
        assert stats_a is None or stats_a == stats_b, f"{remote}: statistics differ"


def assert_same_numbers(local, remote):
    assert set(local) == set(remote)
    for key, value in local.items():
        other = remote[key]
        if isinstance(value, float) and not (value is None or math.isnan(value)):
            assert other == pytest.approx(value, rel=1e-9, abs=0.0), key
        elif isinstance(value, float):
            assert other is None or math.isnan(other), key
        else:
            assert other == value, key


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of about 48 x 48 padded pixels: every case runs in many blocks."""
    monkeypatch.setattr(streaming, "_budget_pixels", lambda *args, **kwargs: 48 * 48)


@pytest.mark.parametrize("name", sorted(CASES))
def test_cluster_output_equals_local(name, inputs, dask_cluster, small_blocks, tmp_path):
    run = CASES[name]
    (tmp_path / "local").mkdir()
    (tmp_path / "dask").mkdir()
    with use_engine(LOCAL):
        local_paths, local_numbers = run(tmp_path / "local", inputs)
    with use_engine(dask_cluster.address) as engine:
        engine.reset_stats()
        remote_paths, remote_numbers = run(tmp_path / "dask", inputs)
        stats = dict(engine.stats)
    assert stats["blocks"] > len(remote_paths), "the cluster computed the blocks"
    assert [os.path.basename(p) for p in local_paths] == \
        [os.path.basename(p) for p in remote_paths]
    for local, remote in zip(local_paths, remote_paths):
        assert_same_raster(local, remote)
    assert_same_numbers(local_numbers, remote_numbers)
    leftovers = [f for f in os.listdir(tmp_path / "dask") if ".part" in f]
    assert leftovers == []
