"""Raster collocation (GDAL warp): exact target grid, round trips on real S1, GCP-only input,
dB handled in linear power, NoData, categorical rasters, no overlap, cancel, plugin runs."""
import os

import numpy as np
import pytest
from osgeo import gdal, osr
from pyproj import Transformer
from scipy.ndimage import map_coordinates

from s1s2_toolkit.core import BandSource, Cancelled, Grid, S1S2Error
from s1s2_toolkit.core.collocate import collocate_to_grid, collocated_vrt
from testkit import BIGEARTHNET, S1_CHIP, patch_band, read, write

S1_PATCH = patch_band(os.path.join(BIGEARTHNET, "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48"),
                      "VV")  # EPSG:32633, 120 x 120, 10 m, dB


def wkt(epsg):
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    return srs.ExportToWkt()


def grid_around(path, epsg, pixel, margin=3):
    """A north-up grid in ``epsg`` with ``pixel`` size covering the raster at ``path``."""
    ds = gdal.Open(path)
    gt = ds.GetGeoTransform()
    src = osr.SpatialReference(wkt=ds.GetProjection())
    src.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    cols, rows = np.meshgrid(np.linspace(0, ds.RasterXSize, 20), np.linspace(0, ds.RasterYSize, 20))
    x, y = gt[0] + cols * gt[1], gt[3] + rows * gt[5]
    tx, ty = Transformer.from_crs(src.ExportToWkt(), epsg, always_xy=True).transform(x, y)
    x0 = np.floor(tx.min() / pixel) * pixel - margin * pixel
    y1 = np.ceil(ty.max() / pixel) * pixel + margin * pixel
    width = int(np.ceil((tx.max() - x0) / pixel)) + margin
    height = int(np.ceil((y1 - ty.min()) / pixel)) + margin
    return Grid(wkt(epsg), (x0, pixel, 0.0, y1, 0.0, -pixel), width, height)


def assert_on_grid(path, grid):
    ds = gdal.Open(path)
    assert tuple(ds.GetGeoTransform()) == tuple(grid.geotransform)  # to the last digit
    assert (ds.RasterXSize, ds.RasterYSize) == (grid.width, grid.height)
    assert Grid.of(ds).same_crs(grid)


@pytest.mark.parametrize("source, intermediate_epsg, pixel", [
    (S1_PATCH, 3035, 2.5),        # UTM 33N -> LAEA Europe (rotated) -> back
    (S1_CHIP, 32630, 2.5),        # EPSG:4326 (Sen1Floods11) -> UTM 30N -> back
])
def test_nearest_round_trip_reproduces_real_s1_exactly(tmp_path, source, intermediate_epsg, pixel):
    """Nearest to a 4x finer grid in another CRS and back: every intermediate pixel near an
    original pixel centre carries that pixel, so the round trip is one-to-one away from the
    border and must return the original values bit for bit."""
    original_grid = Grid.of_path(source)
    fine = grid_around(source, intermediate_epsg, pixel if intermediate_epsg != 4326 else 2e-5)
    there = collocate_to_grid(source, fine, str(tmp_path / "there.tif"), resampling="nearest",
                              bands=[1])
    assert_on_grid(there, fine)
    back = collocate_to_grid(there, original_grid, str(tmp_path / "back.tif"),
                             resampling="nearest")
    assert_on_grid(back, original_grid)  # non-round EPSG:4326 geotransform kept exactly
    original, got = read(source), read(back)
    core = (slice(2, -2), slice(2, -2))
    np.testing.assert_array_equal(got[core], original[core].astype(np.float32))


def test_bilinear_matches_an_independent_bilinear_in_linear_power(tmp_path):
    """UTM 33N -> UTM 34N 10 m grid (a real reprojection, ~4 deg rotation). Expected values:
    pyproj maps each target pixel centre to source pixel coordinates, scipy interpolates
    10^(dB/10) bilinearly, back to dB. Tolerance: GDAL's approximate transformer may be off by
    up to 0.125 px, i.e. 0.13 x the local linear-power range, plus float32 rounding."""
    target = grid_around(S1_PATCH, 32634, 10.0, margin=-8)
    out = collocate_to_grid(S1_PATCH, target, str(tmp_path / "bilinear.tif"),
                            resampling="bilinear", linear_units=True)
    assert_on_grid(out, target)
    out_ds = gdal.Open(out)  # keep the dataset alive while its band is used
    assert out_ds.GetRasterBand(1).GetUnitType() == "dB"
    out_ds = None
    src = gdal.Open(S1_PATCH)
    sgt = src.GetGeoTransform()
    linear = 10 ** (read(S1_PATCH) / 10)
    gt = target.geotransform
    cols, rows = np.meshgrid(np.arange(target.width) + 0.5, np.arange(target.height) + 0.5)
    x, y = gt[0] + cols * gt[1], gt[3] + rows * gt[5]
    sx, sy = Transformer.from_crs(32634, 32633, always_xy=True).transform(x, y)
    u, v = (sx - sgt[0]) / sgt[1] - 0.5, (sy - sgt[3]) / sgt[5] - 0.5
    inside = (u >= 1) & (v >= 1) & (u <= linear.shape[1] - 2) & (v <= linear.shape[0] - 2)
    assert inside.mean() > 0.5
    expected_lin = map_coordinates(linear, [v[inside], u[inside]], order=1)
    from scipy.ndimage import maximum_filter, minimum_filter

    spread = maximum_filter(linear, 3) - minimum_filter(linear, 3)
    local = map_coordinates(spread, [v[inside], u[inside]], order=0)
    got_lin = 10 ** (read(out)[inside] / 10)
    assert np.all(np.abs(got_lin - expected_lin) <= 0.13 * local + 1e-6 * expected_lin)
    # and interpolating dB directly is measurably different (the reason for LINEAR_UNITS)
    out_db = collocate_to_grid(S1_PATCH, target, str(tmp_path / "in_db.tif"),
                               resampling="bilinear", linear_units=False)
    assert np.nanmean(read(out_db) - read(out)) < -0.05


def test_average_and_cubic_run_and_keep_the_grid(tmp_path):
    coarse = grid_around(S1_PATCH, 32633, 30.0, margin=0)
    for method in ("average", "cubic"):
        out = collocate_to_grid(S1_PATCH, coarse, str(tmp_path / f"{method}.tif"),
                                resampling=method, linear_units="auto")
        assert_on_grid(out, coarse)
        values = read(out)
        assert np.isfinite(values).mean() > 0.8
    # average in linear power of 3x3 blocks, where the 30 m grid is aligned with the source
    src = gdal.Open(S1_PATCH).GetGeoTransform()
    aligned = Grid(wkt(32633), (src[0], 30.0, 0.0, src[3], 0.0, -30.0), 40, 40)
    out = collocate_to_grid(S1_PATCH, aligned, str(tmp_path / "avg.tif"), resampling="average",
                            linear_units=True)
    linear = 10 ** (read(S1_PATCH) / 10)
    expected = 10 * np.log10(linear.reshape(40, 3, 40, 3).mean(axis=(1, 3)))
    np.testing.assert_allclose(read(out), expected, atol=1e-4)


def make_gcp_only(source, path, step=20):
    """Copy of ``source`` without geotransform, with a lattice of lon/lat GCPs from its real
    georeference (as in S1 GRD measurement TIFFs)."""
    ds = gdal.Open(source)
    gt = ds.GetGeoTransform()
    to_lonlat = Transformer.from_crs(ds.GetProjection(), 4326, always_xy=True)
    gcps = []
    for line in range(0, ds.RasterYSize + 1, step):
        for pixel in range(0, ds.RasterXSize + 1, step):
            lon, lat = to_lonlat.transform(gt[0] + pixel * gt[1], gt[3] + line * gt[5])
            gcps.append(gdal.GCP(lon, lat, 0.0, float(pixel), float(line)))
    out = gdal.GetDriverByName("GTiff").Create(path, ds.RasterXSize, ds.RasterYSize, 1,
                                               gdal.GDT_Float32)
    out.GetRasterBand(1).WriteArray(ds.GetRasterBand(1).ReadAsArray())
    out.SetGCPs(gcps, osr.SRS_WKT_WGS84_LAT_LONG)
    out = None
    assert gdal.Open(path).GetGeoTransform(can_return_null=True) is None
    return path


@pytest.mark.parametrize("method", ["tps", "polynomial"])
def test_gcp_only_input_lands_within_one_pixel(tmp_path, method):
    gcp_only = make_gcp_only(S1_PATCH, str(tmp_path / "gcps.tif"))
    grid = Grid.of_path(S1_PATCH)
    out = collocate_to_grid(gcp_only, grid, str(tmp_path / "on_grid.tif"), resampling="nearest",
                            gcp_transform=method)
    assert_on_grid(out, grid)
    original, got = read(S1_PATCH)[5:-5, 5:-5], read(out)
    scores = {}
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            shifted = got[5 + dy:got.shape[0] - 5 + dy, 5 + dx:got.shape[1] - 5 + dx]
            scores[(dy, dx)] = np.mean(shifted == original.astype(np.float32))
    assert max(scores, key=scores.get) == (0, 0)
    assert scores[(0, 0)] > 0.95


def test_nodata_values_and_zero_are_honoured(tmp_path):
    data = np.full((60, 60), 0.2, dtype=np.float32)
    data[10:20, 10:20] = -9999.0
    data[40:50, 40:50] = 0.0
    path = write(str(tmp_path / "lin.tif"), data, nodata=-9999.0)
    grid = Grid(wkt(32633), (500005.0, 10.0, 0.0, 5000000.0, 0.0, -10.0), 60, 60)  # half pixel
    source = BandSource(path, 1, "VV", zero_is_nodata=True)
    out = collocate_to_grid(source, grid, str(tmp_path / "out.tif"), resampling="bilinear")
    got = read(out)
    valid = got[np.isfinite(got)]
    np.testing.assert_allclose(valid, 0.2, rtol=1e-6)  # NoData never blended into values
    assert np.isnan(got[12:18, 9:18]).all() and np.isnan(got[42:48, 39:48]).all()
    assert np.isnan(got[:, -1]).all()  # beyond the source: NaN
    out_ds = gdal.Open(out)
    assert out_ds.GetRasterBand(1).GetNoDataValue() is not None


def test_categorical_raster_forced_to_nearest_with_warning(tmp_path):
    scl = np.random.default_rng(0).choice([4, 5, 8, 9], size=(40, 40)).astype(np.uint8)
    path = write(str(tmp_path / "T33_SCL.tif"), scl, dtype="uint8")
    grid = Grid(wkt(32633), (500003.0, 10.0, 0.0, 4999996.0, 0.0, -10.0), 39, 39)
    warnings = []
    out = collocate_to_grid(path, grid, str(tmp_path / "scl.tif"), resampling="bilinear",
                            warn=warnings.append)
    assert len(warnings) == 1 and "nearest" in warnings[0]
    values = read(out)
    assert set(np.unique(values[np.isfinite(values)])) <= {4.0, 5.0, 8.0, 9.0}
    assert gdal.Open(out).GetMetadataItem("resampling") == "nearest"


def test_no_overlap_is_a_clear_error_and_writes_nothing(tmp_path):
    far = Grid(wkt(32633), (200000.0, 10.0, 0.0, 7000000.0, 0.0, -10.0), 50, 50)
    with pytest.raises(S1S2Error, match="does not overlap"):
        collocate_to_grid(S1_PATCH, far, str(tmp_path / "none.tif"))
    with pytest.raises(S1S2Error, match="does not overlap"):
        collocated_vrt(S1_PATCH, far)
    assert os.listdir(tmp_path) == []


def test_cancel_leaves_no_output_and_keeps_existing_file(tmp_path):
    out = str(tmp_path / "out.tif")
    with open(out, "w") as handle:
        handle.write("previous")
    grid = grid_around(S1_PATCH, 32634, 5.0)
    with pytest.raises(Cancelled):
        collocate_to_grid(S1_PATCH, grid, out, cancel=lambda: True)
    with pytest.raises(Cancelled):
        collocate_to_grid(S1_PATCH, grid, out, linear_units=True, cancel=lambda: True)
    assert open(out).read() == "previous" and sorted(os.listdir(tmp_path)) == ["out.tif"]


def test_collocated_vrt_streams_linear_power_on_the_exact_grid(tmp_path):
    grid = grid_around(S1_CHIP, 32630, 10.0)
    vrt = collocated_vrt(S1_CHIP, grid, "bilinear", db_input=True)
    assert Grid.of_path(vrt).geotransform == grid.geotransform
    ds = gdal.Open(vrt)
    assert ds.RasterCount == 2 and ds.GetRasterBand(1).GetDescription() == "VV"
    linear = ds.GetRasterBand(1).ReadAsArray()
    out = collocate_to_grid(S1_CHIP, grid, str(tmp_path / "db.tif"), bands=[1],
                            linear_units=True)
    np.testing.assert_allclose(10 * np.log10(linear), read(out), atol=1e-4)


def test_plugin_collocate_processing_run(s1s2_provider, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    target = write(str(tmp_path / "s2_grid.tif"), np.zeros((40, 40), dtype=np.uint16),
                   geotransform=grid_around(S1_PATCH, 32634, 10.0, margin=-10).geotransform,
                   epsg=32634, dtype="uint16")
    out = str(tmp_path / "s1_on_s2.tif")
    result = processing.run("s1s2:collocate", {
        "INPUT": S1_PATCH, "BAND": 0, "TARGET": target, "RESAMPLING": 1,
        "LINEAR_UNITS": True, "OUTPUT": out})
    assert result["OUTPUT"] == out
    assert_on_grid(out, Grid.of_path(target))
    core = collocate_to_grid(S1_PATCH, Grid.of_path(target), str(tmp_path / "core.tif"),
                             linear_units=True)
    np.testing.assert_array_equal(read(out), read(core))
    assert os.path.exists(str(tmp_path / "s1_on_s2.qml"))
    far = write(str(tmp_path / "far.tif"), np.zeros((10, 10), dtype=np.uint16),
                geotransform=(100000.0, 10.0, 0.0, 1000000.0, 0.0, -10.0), epsg=32634,
                dtype="uint16")
    with pytest.raises(QgsProcessingException, match="does not overlap"):
        processing.run("s1s2:collocate", {"INPUT": S1_PATCH, "TARGET": far,
                                          "OUTPUT": str(tmp_path / "x.tif")})
    assert not os.path.exists(str(tmp_path / "x.tif"))


def test_qgis_process_collocate_band_two_of_sen1floods11(qgis_process, tmp_path):
    target = write(str(tmp_path / "utm.tif"), np.zeros((50, 60), dtype=np.uint16),
                   geotransform=grid_around(S1_CHIP, 32630, 10.0, margin=-20).geotransform,
                   epsg=32630, dtype="uint16")
    out = str(tmp_path / "vh.tif")
    result = qgis_process.run("s1s2:collocate", INPUT=S1_CHIP, BAND=2, TARGET=target,
                              RESAMPLING=0, OUTPUT=out)
    assert result["results"]["OUTPUT"] == out
    ds = gdal.Open(out)
    assert ds.RasterCount == 1 and ds.GetRasterBand(1).GetDescription() == "VH"
    expected = collocate_to_grid(S1_CHIP, Grid.of_path(target), str(tmp_path / "c.tif"),
                                 resampling="nearest", bands=[2])
    np.testing.assert_array_equal(read(out), read(expected))
