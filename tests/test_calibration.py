"""Sentinel-1 annotation parsing, LUT interpolation and calibration on real product XML."""
import math
import os
import zipfile
from xml.etree import ElementTree

import numpy as np
import pytest

from testkit import DATA_DIR, read

S1_ZIP = os.path.join(DATA_DIR, "s1_safe",
                      "S1A_IW_GRDH_1SDV_20210119T031653_20210119T031718_036201_043ED0_8255.zip")
EW_HV_ANNOTATION = os.path.join(
    DATA_DIR, "s1_safe", "s1a-ew1-slc-hv-20210403t122536-20210403t122628-037286-046484-006.xml")


def raw_xml(kind, pol="vv"):
    """The XML straight from the zip, parsed with ElementTree only (the independent side)."""
    with zipfile.ZipFile(S1_ZIP) as archive:
        name = [n for n in archive.namelist()
                if f"/{kind}-s1a-iw-grd-{pol}-" in n or
                (kind == "annotation" and n.endswith(".xml") and "/annotation/s1a-" in n
                 and f"-{pol}-" in n)][0]
        return ElementTree.fromstring(archive.read(name))


def test_product_lists_polarisations_times_and_geolocation():
    from s1s2_toolkit.core.s1annotation import SafeProduct

    product = SafeProduct(S1_ZIP)
    assert product.polarisations == ["VV", "VH"]
    ann = product.annotation("VV")
    assert (ann.width, ann.height) == (25931, 16854)
    assert ann.start_time.isoformat() == "2021-01-19T03:16:53.799379"
    assert ann.stop_time.isoformat() == "2021-01-19T03:17:18.797132"
    assert len(ann.gcps) == 210  # 10 x 21 geolocation grid
    first = raw_xml("annotation").find(
        "geolocationGrid/geolocationGridPointList/geolocationGridPoint")
    assert ann.gcps[0] == (float(first.findtext("pixel")), float(first.findtext("line")),
                           float(first.findtext("longitude")), float(first.findtext("latitude")),
                           float(first.findtext("height")))


def test_calibration_lut_is_exact_at_the_nodes():
    from s1s2_toolkit.core.s1annotation import SafeProduct

    lut = SafeProduct(S1_ZIP).calibration("VV").lut("sigma0")
    vectors = raw_xml("calibration").findall("calibrationVectorList/calibrationVector")
    assert len(vectors) == 27
    for v in (vectors[0], vectors[5], vectors[-1]):
        line = float(v.findtext("line"))
        pixels = np.array(v.findtext("pixel").split(), float)
        values = np.array(v.findtext("sigmaNought").split(), float)
        got = lut.evaluate(np.array([line]), pixels)[0]
        np.testing.assert_array_equal(got, values)


def test_calibration_lut_bilinear_between_nodes():
    """Hand-computed: between 2 x 2 nodes the LUT is (1-u)(1-v) a + u(1-v) b + (1-u) v c + u v d."""
    from s1s2_toolkit.core.s1annotation import SafeProduct

    lut = SafeProduct(S1_ZIP).calibration("VV").lut("sigma0")
    v0, v1 = raw_xml("calibration").findall("calibrationVectorList/calibrationVector")[:2]
    l0, l1 = int(v0.findtext("line")), int(v1.findtext("line"))
    assert (l0, l1) == (0, 674)
    a, b = (float(x) for x in v0.findtext("sigmaNought").split()[3:5])  # pixels 120, 160
    c, d = (float(x) for x in v1.findtext("sigmaNought").split()[3:5])
    # centre of the cell: the mean of the four corners
    centre = lut.evaluate(np.array([337.0]), np.array([140.0]))[0, 0]
    assert centre == pytest.approx((a + b + c + d) / 4, rel=1e-12)
    # a quarter of the way in both directions: u = v = 1/4
    quarter = lut.evaluate(np.array([168.5]), np.array([130.0]))[0, 0]
    want = 0.75 * 0.75 * a + 0.25 * 0.75 * b + 0.75 * 0.25 * c + 0.25 * 0.25 * d
    assert quarter == pytest.approx(want, rel=1e-12)
    # rows beyond the last vector keep the edge value (no extrapolation)
    last = lut.lines[-1]
    np.testing.assert_array_equal(lut.evaluate(np.array([last + 100.0]), np.array([0.0])),
                                  lut.evaluate(np.array([last]), np.array([0.0])))


def test_noise_range_times_azimuth_at_nodes():
    from s1s2_toolkit.core.s1annotation import SafeProduct

    noise = SafeProduct(S1_ZIP).noise("VH")
    root = raw_xml("noise", "vh")
    rv = root.findall("noiseRangeVectorList/noiseRangeVector")[3]
    line = int(rv.findtext("line"))
    pixels = np.array(rv.findtext("pixel").split(), float)
    ranged = np.array(rv.findtext("noiseRangeLut").split(), float)
    blocks = root.findall("noiseAzimuthVectorList/noiseAzimuthVector")
    assert len(blocks) == 3 and len(noise.azimuth) == 3
    # azimuth factor at this line, per swath: linear in line between azimuth nodes
    factor = np.ones_like(pixels)
    for blk in blocks:
        lines = np.array(blk.findtext("line").split(), float)
        lut = np.array(blk.findtext("noiseAzimuthLut").split(), float)
        inside = (pixels >= int(blk.findtext("firstRangeSample"))) & \
                 (pixels <= int(blk.findtext("lastRangeSample")))
        factor[inside] = np.interp(line, lines, lut)
    got = noise.evaluate(np.array([line]), pixels)[0]
    np.testing.assert_allclose(got, ranged * factor, rtol=1e-12)
    # a node of an azimuth vector (line 10 is listed in IW1): exact product of both LUTs
    blk = blocks[0]
    az_line = float(blk.findtext("line").split()[1])
    az_val = float(blk.findtext("noiseAzimuthLut").split()[1])
    range_only = noise.range.evaluate(np.array([az_line]), np.array([40.0]))[0, 0]
    assert noise.evaluate(np.array([az_line]), np.array([40.0]))[0, 0] == \
        pytest.approx(range_only * az_val, rel=1e-12)


def test_pre_ipf_2_9_noise_vector_layout():
    """Older products: noiseVectorList/noiseVector/noiseLut, range only, per-line pixels."""
    from s1s2_toolkit.core.s1annotation import parse_noise

    xml = b"""<noise><noiseVectorList count="2">
      <noiseVector><azimuthTime>x</azimuthTime><line>0</line>
        <pixel count="3">0 10 20</pixel><noiseLut count="3">100 200 400</noiseLut></noiseVector>
      <noiseVector><azimuthTime>x</azimuthTime><line>100</line>
        <pixel count="2">0 20</pixel><noiseLut count="2">300 500</noiseLut></noiseVector>
    </noiseVectorList></noise>"""
    noise = parse_noise(xml)
    assert noise.azimuth == []
    got = noise.evaluate(np.array([0.0, 50.0, 100.0]), np.array([0.0, 5.0, 10.0, 20.0]))
    np.testing.assert_allclose(got[0], [100, 150, 200, 400])
    np.testing.assert_allclose(got[2], [300, 350, 400, 500])
    # line 50: halfway; pixel 5: (150 + 350) / 2
    np.testing.assert_allclose(got[1], [200, 250, 300, 450])


def test_ew_hv_annotation_geolocation_grid():
    """Arctic EW HV annotation (xarray-sentinel test data): 18 x 21 grid, 76.6-79.8 N."""
    from s1s2_toolkit.core.s1annotation import parse_annotation

    with open(EW_HV_ANNOTATION, "rb") as handle:
        ann = parse_annotation(handle.read())
    assert ann.polarisation == "HV"
    assert len(ann.gcps) == 18 * 21
    lats = [g[3] for g in ann.gcps]
    assert 76.5 < min(lats) < 76.7 and 79.8 < max(lats) < 79.9
    assert ann.start_time.date().isoformat() == "2021-04-03"


def test_calibrate_values_policy_and_db():
    from s1s2_toolkit.core.calibration import calibrate_values

    dn = np.array([[np.nan, 10.0, 100.0, 50.0]])
    lut = np.array([[500.0, 500.0, 500.0, 0.0]])
    noise = np.array([[0.0, 1000.0, 1000.0, 0.0]])
    got = calibrate_values(dn, lut, noise)
    assert np.isnan(got[0, 0]) and np.isnan(got[0, 1]) and np.isnan(got[0, 3])
    assert got[0, 2] == pytest.approx((100.0 ** 2 - 1000.0) / 500.0 ** 2)
    floored = calibrate_values(dn, lut, noise, negative="floor", floor=1e-5, output_db=True)
    assert floored[0, 1] == pytest.approx(-50.0)
    assert floored[0, 2] == pytest.approx(10 * math.log10(9000.0 / 250000.0))


def _write_netcdf(path, amplitude, lut, noise, lon, lat):
    import netCDF4

    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("y", amplitude.shape[0])
        nc.createDimension("x", amplitude.shape[1])
        for name, data, dtype in (("Amplitude_HV", amplitude, "u2"),
                                  ("sigmaNought_HV", lut, "f4"),
                                  ("noiseCorrectionMatrix_HV", noise, "f4"),
                                  ("lon", lon, "f8"), ("lat", lat, "f8")):
            var = nc.createVariable(name, dtype, ("y", "x"))
            var[:] = data
        nc.time_coverage_start = "2021-04-03T12:25:36.000000Z"
        nc.time_coverage_end = "2021-04-03T12:26:30.000000Z"
    return path


def test_met_norway_netcdf_product(tmp_path):
    from s1s2_toolkit.core.calibration import calibrate, product_times

    rng = np.random.default_rng(7)
    shape = (37, 53)
    amplitude = rng.integers(0, 300, shape).astype(np.uint16)
    amplitude[0, :4] = 0
    y, x = np.mgrid[0:shape[0], 0:shape[1]]
    lut = (400.0 + x * 2.0 + y * 0.5).astype(np.float32)
    noise = (1500.0 + x * 3.0).astype(np.float32)
    lon, lat = -70.0 + x * 0.01, 78.0 - y * 0.01
    path = _write_netcdf(str(tmp_path / "S1A_EW_GRDM_1SDH_test.nc"), amplitude, lut, noise,
                         lon, lat)
    out = str(tmp_path / "hv.tif")
    calibrate(path, "HV", out, block_pixels=20 * 20)
    got = read(out)
    a = amplitude.astype(float)
    want = (a * a - noise.astype(float)) / lut.astype(float) ** 2
    want[(a == 0) | (want <= 0)] = np.nan
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert np.isnan(got[0, :4]).all()
    from osgeo import gdal
    ds = gdal.Open(out)
    gcps = ds.GetGCPs()
    assert len(gcps) > 100
    g = gcps[-1]
    col, row = int(g.GCPPixel - 0.5), int(g.GCPLine - 0.5)
    assert (g.GCPX, g.GCPY) == pytest.approx((lon[row, col], lat[row, col]))
    start, stop = product_times(out)
    assert (stop - start).total_seconds() == pytest.approx(54.0)


def test_cancelled_calibration_leaves_nothing(tmp_path):
    from s1s2_toolkit.core.calibration import calibrate
    from s1s2_toolkit.core.errors import Cancelled

    rng = np.random.default_rng(1)
    shape = (64, 64)
    path = _write_netcdf(str(tmp_path / "p.nc"), rng.integers(1, 300, shape).astype(np.uint16),
                         np.full(shape, 500.0, np.float32), np.zeros(shape, np.float32),
                         np.zeros(shape), np.zeros(shape))
    out = str(tmp_path / "c.tif")
    with pytest.raises(Cancelled):
        calibrate(path, "HV", out, cancel=lambda: True, block_pixels=16 * 16)
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tif")]


def test_calibrate_provider_parameters(s1s2_provider):
    alg = s1s2_provider.algorithm("calibrate")
    names = [p.name() for p in alg.parameterDefinitions()]
    assert names == ["INPUT", "POLARISATION", "COEFFICIENT", "NOISE_REMOVAL", "OUTPUT_DB",
                     "NEGATIVE", "OUTPUT"]
    assert "(DN^2 - noise) / LUT^2" in alg.shortHelpString()
