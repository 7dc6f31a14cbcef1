"""Collocation against an independent reference, so that a change of GDAL's warper shows up.

The other collocation tests compare with GDAL itself (or allow GDAL's approximations), so a
warper that changes between releases passes them on every release. Here s1s2:collocate's core
output is compared with a plain numpy/scipy bilinear interpolation in linear power on the same
target grid: pyproj maps each target pixel centre into the source, scipy interpolates
10^(dB/10) from the 4 neighbouring source pixels, back to dB. The case is the demo's: the
Sen1Floods11 S1 chip (EPSG:4326, 8.98e-5 deg pixels: 7.9 m x 10 m at 38 N) onto a UTM 30N 10 m
grid, a mild downsampling along x where GDAL 3.6-3.12 widened the bilinear kernel and 3.13 does
not (a median 0.07 dB apart, up to 7 dB).

Measured on GDAL 3.6.2 (Debian 12): median 0.001 dB, 99th percentile 0.008 dB, max 0.07 dB
(the rest is the warper's approximate transformer, 0.005 px). GDAL's default kernel: median
0.07, 99th percentile 0.9 dB; its default 0.125 px transformer approximation: median 0.017,
99th percentile 0.13 dB. Both fail the tolerances below.
"""
import numpy as np
import pytest
from osgeo import gdal, osr
from pyproj import Transformer
from scipy.ndimage import map_coordinates

from s1s2_toolkit.core import Grid
from s1s2_toolkit.core.collocate import _kernel_options, _Prepared, collocate_to_grid
from s1s2_toolkit.core.raster import BandSource
from testkit import S1_CHIP, read

MEDIAN_DB, P99_DB, MAX_DB = 0.005, 0.03, 0.3
EDGE = 2  # source pixels kept clear of the chip's border


def utm30n_grid(pixel=10.0, width=400, height=450):
    """The demo's S2-like target: UTM 30N, inside the chip's footprint."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32630)
    return Grid(srs.ExportToWkt(), (694510.0, pixel, 0.0, 4221900.0, 0.0, -pixel), width, height)


def reference_bilinear_db(source, band, grid, shift=0.0):
    """(dB on the grid from the 4 nearest source pixels in linear power, mask of target pixels
    whose 4 source pixels are valid and at least EDGE pixels inside the source)."""
    ds = gdal.Open(source)
    sgt = ds.GetGeoTransform()
    linear = 10 ** (read(source, band) / 10)
    gt = grid.geotransform
    cols, rows = np.meshgrid(np.arange(grid.width) + 0.5, np.arange(grid.height) + 0.5)
    x, y = gt[0] + cols * gt[1], gt[3] + rows * gt[5]
    lon, lat = Transformer.from_crs(grid.crs_wkt, ds.GetProjection(), always_xy=True) \
        .transform(x, y)
    u = (lon - sgt[0]) / sgt[1] - 0.5 + shift  # source pixel coordinates of the centres
    v = (lat - sgt[3]) / sgt[5] - 0.5
    invalid = ~np.isfinite(linear) | (linear <= 0)
    h, w = linear.shape
    usable = (u >= EDGE) & (v >= EDGE) & (u <= w - 1 - EDGE) & (v <= h - 1 - EDGE)
    usable &= map_coordinates(invalid.astype(np.float64), [v, u], order=1, mode="nearest") == 0
    value = map_coordinates(np.where(invalid, 1.0, linear), [v, u], order=1, mode="nearest")
    return 10 * np.log10(value), usable


def residual_db(got, expected, usable):
    d = np.abs(got - expected)[usable]
    return float(np.median(d)), float(np.percentile(d, 99)), float(d.max())


@pytest.fixture(scope="module")
def collocated(tmp_path_factory):
    grid = utm30n_grid()
    out = collocate_to_grid(S1_CHIP, grid, str(tmp_path_factory.mktemp("ref") / "s1.tif"),
                            resampling="bilinear", linear_units=True)
    return grid, out


@pytest.mark.parametrize("band", [1, 2])  # VV, VH
def test_bilinear_in_linear_power_equals_an_independent_reference(collocated, band):
    grid, out = collocated
    expected, usable = reference_bilinear_db(S1_CHIP, band, grid)
    assert usable.mean() > 0.9  # the comparison covers the grid, not a corner of it
    got = read(out, band)
    assert np.isfinite(got[usable]).all()
    median, p99, worst = residual_db(got, expected, usable)
    print(f"GDAL {gdal.__version__} band {band}: |s1s2 - reference| median {median:.2g} dB, "
          f"99th percentile {p99:.2g} dB, max {worst:.2g} dB")
    assert median <= MEDIAN_DB and p99 <= P99_DB and worst <= MAX_DB, (
        f"GDAL {gdal.__version__}: collocation moved away from plain bilinear in linear power "
        f"(median {median:.3g}, p99 {p99:.3g}, max {worst:.3g} dB): has the warper changed?")


def test_the_tolerance_sees_a_tenth_of_a_pixel(collocated):
    """The same comparison against a reference shifted by 0.1 source pixel fails: the
    tolerances are tight enough to see a warper that samples a little elsewhere."""
    grid, out = collocated
    expected, usable = reference_bilinear_db(S1_CHIP, 1, grid, shift=0.1)
    median, p99, worst = residual_db(read(out), expected, usable)
    assert median > MEDIAN_DB and p99 > P99_DB and worst > MAX_DB


def test_the_plain_kernel_is_pinned_only_up_to_2x_downsampling():
    """Onto 10 m (1.27 source pixels per target pixel along x) the 4-sample kernel is pinned;
    onto 30 m (3.8) GDAL's anti-aliased kernel is kept; nearest and average are GDAL's own."""
    prepared = _Prepared([BandSource(S1_CHIP, 1)], True)
    try:
        assert _kernel_options(prepared, utm30n_grid(), "bilinear", {}) == ["XSCALE=1",
                                                                            "YSCALE=1"]
        assert _kernel_options(prepared, utm30n_grid(), "cubic", {}) == ["XSCALE=1",
                                                                         "YSCALE=1"]
        assert _kernel_options(prepared, utm30n_grid(30.0, 130, 150), "bilinear", {}) == []
        assert _kernel_options(prepared, utm30n_grid(), "average", {}) == []
        assert _kernel_options(prepared, utm30n_grid(), "nearest", {}) == []
    finally:
        prepared.close()
