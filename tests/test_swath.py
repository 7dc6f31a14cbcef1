"""Swath -> grid collocation: identical to pyresample resample_nearest, radius, files, errors.

Geometry is real: the geolocation tie-point grid of a Sentinel-1B IW GRD annotation
(tests/data/swath/, see tests/data/README.md), bilinearly interpolated to a 600 x 600
sub-swath at 20 m spacing (rotated by the orbit's heading against UTM north). The
values on it are a synthetic gamma-distributed field (with NoData holes): a value
field on real geometry, as the issue allows.
"""
import glob
import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from osgeo import gdal, osr
from pyproj import Transformer
from scipy.interpolate import RegularGridInterpolator

from s1s2_toolkit.core import Grid, S1S2Error
from s1s2_toolkit.core.swath import (EARTH_RADIUS, SwathFile, collocate_swath,
                                     lonlat_to_cartesian, swath_to_grid)
from testkit import DATA_DIR, read

ANNOTATION = glob.glob(os.path.join(DATA_DIR, "swath", "*-geolocation.xml"))[0]


def tie_points(path):
    """(lines, pixels, lat, lon) of an S1 annotation's geolocation grid (regular in line/pixel)."""
    points = ET.parse(path).getroot().findall(
        "geolocationGrid/geolocationGridPointList/geolocationGridPoint")
    line = np.array([int(p.findtext("line")) for p in points])
    pixel = np.array([int(p.findtext("pixel")) for p in points])
    lat = np.array([float(p.findtext("latitude")) for p in points])
    lon = np.array([float(p.findtext("longitude")) for p in points])
    lines, pixels = np.unique(line), np.unique(pixel)
    order = np.lexsort((pixel, line))
    shape = (lines.size, pixels.size)
    assert lines.size * pixels.size == len(points)  # a full grid
    return lines, pixels, lat[order].reshape(shape), lon[order].reshape(shape)


def swath_geometry(line0=6000, pixel0=10000, n=600, step=2):
    lines, pixels, lat, lon = tie_points(ANNOTATION)
    ll, pp = np.meshgrid(line0 + step * np.arange(n), pixel0 + step * np.arange(n), indexing="ij")
    where = np.column_stack([ll.ravel(), pp.ravel()]).astype(np.float64)
    grid = (lines.astype(np.float64), pixels.astype(np.float64))
    interp = lambda a: RegularGridInterpolator(grid, a)(where).reshape(ll.shape)  # noqa: E731
    return interp(lon), interp(lat)


def utm_grid(lon, lat, width, height, dx=3000.0, dy=-2000.0, pixel=10.0, epsg=32632):
    x, y = Transformer.from_crs(4326, epsg, always_xy=True).transform(lon, lat)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    x0 = np.floor(x.min() / pixel) * pixel + dx
    y0 = np.ceil(y.max() / pixel) * pixel + dy
    return Grid(srs.ExportToWkt(), (x0, pixel, 0.0, y0, 0.0, -pixel), width, height)


@pytest.fixture(scope="module")
def swath():
    lon, lat = swath_geometry()
    rng = np.random.default_rng(7)
    values = rng.gamma(2.0, 0.05, lon.shape)
    values[::37, ::41] = np.nan  # NoData in the swath stays NoData
    return lon, lat, values


def pyresample_nearest(lon, lat, values, grid, radius):
    from pyresample import geometry, kd_tree

    gt = grid.geotransform
    extent = (gt[0], gt[3] + gt[5] * grid.height, gt[0] + gt[1] * grid.width, gt[3])
    area = geometry.AreaDefinition("target", "target", "target", grid.crs_wkt, grid.width,
                                   grid.height, extent)
    return kd_tree.resample_nearest(geometry.SwathDefinition(lons=lon, lats=lat), values, area,
                                    radius, fill_value=np.nan)


def test_tie_point_grid_is_real_s1_geometry():
    lines, pixels, lat, lon = tie_points(ANNOTATION)
    assert lat.shape == (10, 21)
    assert 45.5 < lat.min() < lat.max() < 47.6 and 8.7 < lon.min() < lon.max() < 12.5
    lon2, lat2 = swath_geometry()
    # 20 m along both axes of the sub-swath (GRD pixels are 10 m).
    xyz = lonlat_to_cartesian(lon2, lat2).reshape(lon2.shape + (3,))
    along = np.linalg.norm(np.diff(xyz, axis=0), axis=-1)
    across = np.linalg.norm(np.diff(xyz, axis=1), axis=-1)
    assert 15 < np.median(along) < 25 and 15 < np.median(across) < 25


@pytest.mark.parametrize("radius", [50.0, 12.0])
def test_identical_to_pyresample_resample_nearest(swath, radius):
    """600 x 600 real-geometry swath onto a 1100 x 1300 UTM grid that extends beyond it."""
    lon, lat, values = swath
    grid = utm_grid(lon, lat, 1100, 1300)
    ours = swath_to_grid(lon, lat, values, grid, radius)
    reference = pyresample_nearest(lon, lat, values, grid, radius)
    assert ours.shape == reference.shape == (1300, 1100)
    np.testing.assert_array_equal(ours, reference)  # same values, NaN in the same places
    beyond = np.isnan(ours).mean()
    assert 0.05 < beyond < 0.95  # the grid really covers swath and empty space


def crs_grid(lon, lat, epsg, pixel, width, height):
    """A north-up grid in ``epsg`` whose top-left corner is inside the swath's bounding box."""
    x, y = Transformer.from_crs(4326, epsg, always_xy=True).transform(lon, lat)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    x0 = x.min() + 0.1 * (x.max() - x.min())
    y0 = y.max() - 0.1 * (y.max() - y.min())
    return Grid(srs.ExportToWkt(), (x0, pixel, 0.0, y0, 0.0, -pixel), width, height)


@pytest.mark.parametrize("epsg, pixel", [(4326, 0.0002), (3413, 10.0)])
def test_identical_to_pyresample_geographic_and_polar_targets(swath, epsg, pixel):
    """Same swath onto a lon/lat grid (anisotropic degrees) and a polar stereographic grid."""
    lon, lat, values = swath
    grid = crs_grid(lon, lat, epsg, pixel, 900, 900)
    ours = swath_to_grid(lon, lat, values, grid, 50.0)
    np.testing.assert_array_equal(ours, pyresample_nearest(lon, lat, values, grid, 50.0))
    assert 0.05 < np.isnan(ours).mean() < 0.95


def test_beyond_radius_is_nan_by_brute_force(swath):
    """Independent check: for sample pixels, the minimum chord distance over all points."""
    lon, lat, values = swath
    grid = utm_grid(lon, lat, 1100, 1300)
    ours = swath_to_grid(lon, lat, values, grid, 50.0)
    points = lonlat_to_cartesian(lon, lat)
    rng = np.random.default_rng(3)
    rows, cols = rng.integers(0, 1300, 300), rng.integers(0, 1100, 300)
    gt = grid.geotransform
    x, y = gt[0] + (cols + 0.5) * gt[1], gt[3] + (rows + 0.5) * gt[5]
    plon, plat = Transformer.from_crs(grid.crs_wkt, 4326, always_xy=True).transform(x, y)
    targets = lonlat_to_cartesian(plon, plat)
    flat = values.ravel()
    for target, r, c in zip(targets, rows, cols):
        d = np.sqrt(((points - target) ** 2).sum(axis=1))
        nearest = int(np.argmin(d))
        if d[nearest] >= 50.0:
            assert np.isnan(ours[r, c])
        elif np.isnan(flat[nearest]):
            assert np.isnan(ours[r, c])
        else:
            assert ours[r, c] == flat[nearest]
    assert EARTH_RADIUS == 6370997.0


def write_netcdf(path, lon, lat, values, fill=-999.0):
    from scipy.io import netcdf_file

    with netcdf_file(path, "w") as nc:
        nc.createDimension("y", lon.shape[0])
        nc.createDimension("x", lon.shape[1])
        for name, data, units in (("lon", lon, "degrees_east"), ("lat", lat, "degrees_north")):
            var = nc.createVariable(name, "d", ("y", "x"))
            var[:] = data
            var.units = units
        var = nc.createVariable("sigmaNought_HV", "f", ("y", "x"))
        var[:] = np.where(np.isnan(values), fill, values).astype(np.float32)
        var._FillValue = np.float32(fill)
        var.coordinates = "lat lon"
    return path


def test_netcdf_file_to_geotiff(swath, tmp_path):
    lon, lat, values = swath
    lon, lat, values = lon[:, :520], lat[:, :520], values[:, :520]
    nc = write_netcdf(str(tmp_path / "s1_swath.nc"), lon, lat, values)
    grid = utm_grid(lon, lat, 700, 650)
    out = str(tmp_path / "on_grid.tif")
    assert collocate_swath(nc, "sigmaNought_HV", grid, out, memory_mb=4) == out
    ds = gdal.Open(out)
    assert Grid.of(ds).geotransform == grid.geotransform  # to the last digit
    assert (ds.RasterXSize, ds.RasterYSize) == (700, 650) and Grid.of(ds).same_crs(grid)
    assert ds.GetRasterBand(1).DataType == gdal.GDT_Float32
    assert ds.GetRasterBand(1).GetDescription() == "sigmaNought_HV"
    expected = pyresample_nearest(lon, lat, values.astype(np.float32).astype(np.float64), grid,
                                  50.0)
    np.testing.assert_array_equal(read(out), expected.astype(np.float32))
    assert [f for f in os.listdir(tmp_path) if ".part" in f] == []


def test_file_path_is_the_fast_path_block_by_block(swath, tmp_path, monkeypatch):
    """collocate_swath == swath_to_grid == pyresample, through several output blocks."""
    from s1s2_toolkit.core import swath as swath_module

    lon, lat, values = swath
    nc = write_netcdf(str(tmp_path / "s1_swath.nc"), lon, lat, values)
    values32 = values.astype(np.float32).astype(np.float64)  # as stored in the file
    grid = utm_grid(lon, lat, 900, 800, dx=-1500.0, dy=1000.0)
    windows = []
    sample = swath_module._FastSwath.sample
    monkeypatch.setattr(swath_module._FastSwath, "sample",
                        lambda self, window: windows.append(window) or sample(self, window))
    small = collocate_swath(nc, "sigmaNought_HV", grid, str(tmp_path / "small.tif"),
                            memory_mb=1.0)
    assert len(windows) > 4  # the fast path, over several blocks
    n_small = len(windows)
    large = collocate_swath(nc, "sigmaNought_HV", grid, str(tmp_path / "large.tif"),
                            memory_mb=512.0)
    assert len(windows) - n_small < n_small
    expected = pyresample_nearest(lon, lat, values32, grid, 50.0)
    assert np.isfinite(expected).mean() > 0.3 and np.isnan(expected).any()
    in_memory = swath_to_grid(lon, lat, values32, grid)
    np.testing.assert_array_equal(in_memory, expected)
    np.testing.assert_array_equal(read(small), expected.astype(np.float32))
    np.testing.assert_array_equal(read(large), expected.astype(np.float32))


def test_file_path_falls_back_to_the_kd_tree_on_invalid_lonlat(swath, tmp_path, monkeypatch):
    from s1s2_toolkit.core import swath as swath_module

    lon, lat, values = (a[:200, :200].copy() for a in swath)
    lon[50:53, 60:90] = np.nan  # no lattice: the kd-tree path
    values32 = values.astype(np.float32).astype(np.float64)
    nc = write_netcdf(str(tmp_path / "holes.nc"), lon, lat, values)
    grid = utm_grid(lon[:, :1], lat[:, :1], 400, 400, dx=-1000.0, dy=1000.0)
    monkeypatch.setattr(swath_module._FastSwath, "sample", None)  # must not be used
    out = collocate_swath(nc, "sigmaNought_HV", grid, str(tmp_path / "o.tif"), memory_mb=1.0)
    expected = pyresample_nearest(lon, lat, values32, grid, 50.0)
    assert np.isfinite(expected).any()
    np.testing.assert_array_equal(read(out), expected.astype(np.float32))


def test_gdal_geolocation_arrays(swath, tmp_path):
    lon, lat, values = swath
    lon, lat, values = lon[:300, :300], lat[:300, :300], values[:300, :300]
    paths = {}
    for name, data in (("lon", lon), ("lat", lat), ("data", values)):
        paths[name] = str(tmp_path / f"{name}.tif")
        ds = gdal.GetDriverByName("GTiff").Create(paths[name], 300, 300, 1, gdal.GDT_Float64)
        ds.GetRasterBand(1).WriteArray(data)
        ds = None
    ds = gdal.Open(paths["data"], gdal.GA_Update)
    ds.SetMetadata({"X_DATASET": paths["lon"], "Y_DATASET": paths["lat"], "X_BAND": "1",
                    "Y_BAND": "1", "PIXEL_OFFSET": "0", "LINE_OFFSET": "0", "PIXEL_STEP": "1",
                    "LINE_STEP": "1", "SRS": osr.SRS_WKT_WGS84_LAT_LONG}, "GEOLOCATION")
    ds = None
    swath_file = SwathFile(paths["data"], "")
    assert swath_file.shape == (300, 300)
    grid = utm_grid(lon, lat, 500, 500, dx=-500.0, dy=500.0)
    out = collocate_swath(paths["data"], "", grid, str(tmp_path / "out.tif"))
    np.testing.assert_array_equal(read(out), swath_to_grid(lon, lat, values, grid).astype(
        np.float32))


def test_no_overlap_is_a_clear_error_and_writes_nothing(swath, tmp_path):
    lon, lat, values = swath
    nc = write_netcdf(str(tmp_path / "s.nc"), lon[:50, :50], lat[:50, :50], values[:50, :50])
    far = utm_grid(lon, lat, 100, 100, dx=200000.0)
    out = str(tmp_path / "none.tif")
    with pytest.raises(S1S2Error, match="does not overlap"):
        collocate_swath(nc, "sigmaNought_HV", far, out)
    assert sorted(os.listdir(tmp_path)) == ["s.nc"]
    with pytest.raises(S1S2Error, match="does not overlap"):
        swath_to_grid(lon, lat, values, far)


def test_bad_variables_are_clear_errors(swath, tmp_path):
    lon, lat, values = swath
    nc = write_netcdf(str(tmp_path / "s.nc"), lon[:20, :20], lat[:20, :20], values[:20, :20])
    grid = utm_grid(lon[:20, :20], lat[:20, :20], 50, 50, dx=0.0, dy=0.0)
    with pytest.raises(S1S2Error, match="longitude|lon"):
        collocate_swath(nc, "sigmaNought_HV", grid, str(tmp_path / "o.tif"),
                        lon_variable="longitude", lat_variable="latitude")
    with pytest.raises(S1S2Error, match="VARIABLE.*sigmaNought_HV"):
        collocate_swath(nc, "", grid, str(tmp_path / "o.tif"))
    with pytest.raises(S1S2Error, match="RADIUS"):
        swath_to_grid(lon, lat, values, grid, radius=0.0)
    assert not os.path.exists(str(tmp_path / "o.tif"))


def test_plugin_collocateswath_processing_run(s1s2_provider, swath, tmp_path):
    import processing

    lon, lat, values = swath
    lon, lat, values = lon[:200, :200], lat[:200, :200], values[:200, :200]
    nc = write_netcdf(str(tmp_path / "s.nc"), lon, lat, values)
    grid = utm_grid(lon, lat, 300, 300, dx=-200.0, dy=200.0)
    target = str(tmp_path / "target.tif")
    ds = gdal.GetDriverByName("GTiff").Create(target, grid.width, grid.height, 1, gdal.GDT_UInt16)
    ds.SetGeoTransform(grid.geotransform)
    ds.SetProjection(grid.crs_wkt)
    ds = None
    out = str(tmp_path / "out.tif")
    result = processing.run("s1s2:collocateswath", {
        "INPUT": nc, "VARIABLE": "sigmaNought_HV", "LON_VARIABLE": "lon", "LAT_VARIABLE": "lat",
        "TARGET": target, "RADIUS": 50.0, "OUTPUT": out})
    assert result["OUTPUT"] == out
    expected = pyresample_nearest(lon, lat, values.astype(np.float32).astype(np.float64), grid,
                                  50.0)
    np.testing.assert_array_equal(read(out), expected.astype(np.float32))
    assert os.path.exists(str(tmp_path / "out.qml"))


# -- the fast path's internals: projection, batching, bands -----------------------------------
@pytest.mark.parametrize("epsg, pixel", [(32632, 10.0), (4326, 0.0002), (3413, 10.0)])
def test_interpolated_projection_is_within_its_bound(swath, epsg, pixel):
    """The swath's plane coordinates (pyproj on a lon/lat lattice, interpolated) differ from
    exact pyproj by no more than the error bound the certificate widens its margins by."""
    from s1s2_toolkit.core import swath as swath_module

    lon, lat, _ = swath
    grid = crs_grid(lon, lat, epsg, pixel, 900, 900)
    plane = swath_module._Plane(swath_module.GridGeometry(grid), margin=300.0)
    qx, qy, error = swath_module._project_swath(lon, lat, plane, threads=2)
    x, y = Transformer.from_crs(plane.geometry.crs.geodetic_crs, plane.geometry.crs,
                                always_xy=True).transform(lon, lat)
    ex, ey = plane.whiten(x, y)
    assert 0 < error <= swath_module.PROJECT_ERROR  # the interpolated path was taken
    assert np.hypot(qx - ex, qy - ey).max() <= error


def test_projection_falls_back_to_exact_pyproj(swath, monkeypatch):
    from s1s2_toolkit.core import swath as swath_module

    lon, lat, values = swath
    grid = utm_grid(lon, lat, 500, 500)
    plane = swath_module._Plane(swath_module.GridGeometry(grid), margin=300.0)
    monkeypatch.setattr(swath_module, "PROJECT_ERROR", 0.0)  # no interpolation error accepted
    qx, qy, error = swath_module._project_swath(lon, lat, plane, threads=2)
    assert error == 0.0
    x, y = Transformer.from_crs(4326, 32632, always_xy=True).transform(lon, lat)
    ex, ey = plane.whiten(x, y)
    np.testing.assert_allclose(qx, ex, rtol=0, atol=1e-9)
    np.testing.assert_allclose(qy, ey, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(swath_to_grid(lon, lat, values, grid),
                                  pyresample_nearest(lon, lat, values, grid, 50.0))


def test_single_points_project_like_arrays_without_numpy_2_warnings(swath):
    """pyproj converts a 1-element array to a scalar (deprecated in numpy 2): the plane set-up
    (Jacobian at the grid centre) and single-pixel lookups pass scalars, with the same result."""
    import warnings

    from s1s2_toolkit.core import swath as swath_module

    lon, lat, _ = swath
    grid = utm_grid(lon, lat, 50, 50)
    transformer = Transformer.from_crs(4326, 32632, always_xy=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        geometry = swath_module.GridGeometry(grid)
        swath_module._Plane(geometry, margin=300.0)
        one = geometry.lonlat(np.array([7.0]), np.array([3.0]))
        scalar = geometry.lonlat(np.float64(7.0), np.float64(3.0))
        x, y = swath_module.transform_points(transformer, np.array([[lon[0, 0]]]),
                                             np.array([[lat[0, 0]]]))
    many = geometry.lonlat(np.array([7.0, 8.0]), np.array([3.0, 4.0]))
    assert one[0].shape == (1,) and scalar[0].shape == () and x.shape == (1, 1)
    assert (one[0][0], one[1][0]) == (many[0][0], many[1][0]) == (scalar[0], scalar[1])
    assert (x[0, 0], y[0, 0]) == transformer.transform(lon[0, 0], lat[0, 0])


def test_batches_bands_and_threads_do_not_change_pixels(swath, monkeypatch):
    """Tiny batches and bands (runs split over many batches, bands of 7 rows) and one or two
    threads give pyresample's pixels; so does sampling odd windows one by one."""
    from s1s2_toolkit.core import swath as swath_module
    from s1s2_toolkit.core.streaming import Window

    lon, lat, values = (a[:300, :300] for a in swath)
    grid = utm_grid(lon, lat, 520, 470, dx=-700.0, dy=600.0)
    expected = pyresample_nearest(lon, lat, values, grid, 50.0)
    assert 0.05 < np.isnan(expected).mean() < 0.95
    np.testing.assert_array_equal(swath_to_grid(lon, lat, values, grid, threads=1), expected)
    monkeypatch.setattr(swath_module, "CHUNK", 300)
    monkeypatch.setattr(swath_module, "BAND", 7)
    np.testing.assert_array_equal(swath_to_grid(lon, lat, values, grid, threads=2), expected)
    fast = swath_module._FastSwath(lon, lat, values.ravel(), grid, 50.0, 2)
    assert fast.ok
    out = np.full(expected.shape, -1.0)
    for y0, y1 in ((0, 1), (1, 200), (200, 201), (201, 470)):
        for x0, x1 in ((0, 333), (333, 334), (334, 520)):
            block, _ = fast.sample(Window(x0, y0, x1 - x0, y1 - y0))
            out[y0:y1, x0:x1] = block
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("step, n, pixel, radius, size, offset", [
    (40, 60, 10.0, 300.0, (700, 650), 1000.0), (2, 400, 150.0, 50.0, (70, 65), -600.0)])
def test_coarse_swath_on_fine_pixels_and_fine_swath_on_coarse_pixels(step, n, pixel, radius,
                                                                       size, offset):
    """Footprints of ~10^5 pixels per tile (one tile over many batches) and of a few pixels
    (runs of one or two pixels), both identical to pyresample."""
    from s1s2_toolkit.core import swath as swath_module

    lon, lat = swath_geometry(line0=3000, pixel0=4000, n=n, step=step)
    values = np.random.default_rng(5).gamma(2.0, 0.05, lon.shape)
    grid = utm_grid(lon, lat, *size, dx=offset, dy=-offset, pixel=pixel)
    assert swath_module._FastSwath(lon, lat, values.ravel(), grid, radius, 2).ok
    ours = swath_to_grid(lon, lat, values, grid, radius)
    np.testing.assert_array_equal(ours, pyresample_nearest(lon, lat, values, grid, radius))
    assert 0.05 < np.isnan(ours).mean() < 0.95


def test_swath_across_the_antimeridian(swath):
    """The real geometry moved onto 180 degrees (longitudes jump from 180 to -180) onto a UTM
    60N grid: identical to pyresample (the lon/lat box spans 360 degrees: exact projection)."""
    lon, lat, values = (a[:300, :300] for a in swath)
    lon = (lon - lon.mean() + 180.0 + 180.0) % 360.0 - 180.0
    assert lon.min() < -179.9 and lon.max() > 179.9
    grid = utm_grid(lon, lat, 600, 600, dx=-500.0, dy=500.0, epsg=32660)
    ours = swath_to_grid(lon, lat, values, grid)
    np.testing.assert_array_equal(ours, pyresample_nearest(lon, lat, values, grid, 50.0))
    assert 0.05 < np.isnan(ours).mean() < 0.95


def test_nan_lonlat_in_memory_falls_back_to_the_kd_tree(swath):
    lon, lat, values = (a[:200, :200].copy() for a in swath)
    lat[120:122, 10:40] = np.nan
    grid = utm_grid(lon[:, :1], lat[:, :1], 400, 400, dx=-1000.0, dy=1000.0)
    np.testing.assert_array_equal(swath_to_grid(lon, lat, values, grid),
                                  pyresample_nearest(lon, lat, values, grid, 50.0))


def test_tile_colours_are_disjoint_boxes():
    from s1s2_toolkit.core.swath import _colour_boxes

    rng = np.random.default_rng(11)
    r0, c0 = rng.integers(0, 900, 400), rng.integers(0, 900, 400)
    boxes = np.stack([r0, r0 + rng.integers(1, 120, 400), c0, c0 + rng.integers(1, 120, 400)],
                     axis=1)
    boxes[::50] = 0  # empty boxes (footprints off the grid) are allowed
    colour = _colour_boxes(boxes)
    for k in np.unique(colour):
        b = boxes[(colour == k) & (boxes[:, 1] > boxes[:, 0])]
        overlap = ((b[:, None, 0] < b[None, :, 1]) & (b[None, :, 0] < b[:, None, 1])
                   & (b[:, None, 2] < b[None, :, 3]) & (b[None, :, 2] < b[:, None, 3]))
        assert overlap.sum() == len(b)  # each box meets itself only
    assert colour.max() < 40
    same = np.tile([[10, 20, 30, 40]], (80, 1))  # more than 64 boxes on one spot
    assert sorted(_colour_boxes(same)) == list(range(80))
