"""Bad input values that used to give plausible-looking nonsense (issue 12, "Silent wrong
results"): reflectance <= 0 in NDVI, swapped or wrong layers, complex bands, infinities,
non-integer band / window values, incidence angles in radians.

Core cases need no QGIS; plugin cases run through processing.run with tiny rasters.
"""
import math
import os

import numpy as np
import pytest

from s1s2_toolkit.core import indices
from s1s2_toolkit.core.errors import S1S2Error
from s1s2_toolkit.core.raster import BandSource
from testkit import read, write

SHAPE = (10, 12)


class RecordingFeedback:
    """A QgsProcessingFeedback that keeps what the algorithm logged (info and warnings)."""

    def __new__(cls):
        from qgis.core import QgsProcessingFeedback

        class Recorder(QgsProcessingFeedback):
            def __init__(self):
                super().__init__()
                self.infos, self.warnings = [], []

            def pushInfo(self, info):  # noqa: N802 - QGIS API
                self.infos.append(info)
                super().pushInfo(info)

            def pushWarning(self, warning):  # noqa: N802 - QGIS API
                self.warnings.append(warning)
                super().pushWarning(warning)

            def reportError(self, error, fatalError=False):  # noqa: N802,N803 - QGIS API
                self.warnings.append(error)
                super().reportError(error, fatalError)

        return Recorder()


# -- NDVI with reflectance <= 0 -------------------------------------------------------------
# DN with BOA_ADD_OFFSET -1000: RED 900 -> reflectance -0.01, NIR 3000 -> 0.2.
RED_NEG, NIR = 900.0, 3000.0


def test_ndvi_negative_reflectance_modes():
    red = np.array([RED_NEG, 1500.0, 1000.0, 800.0])
    nir = np.array([NIR, NIR, NIR, 950.0])
    keep = indices.ndvi(red, nir, -1000, negative_reflectance="keep")
    # raw arithmetic: (2000 - (-100)) / (2000 + (-100)) = 1.105 (outside [-1, 1])
    assert keep[0] == pytest.approx(2100 / 1900, rel=1e-6)
    assert keep[3] == pytest.approx((-50 + 200) / (-50 - 200), rel=1e-6)  # -0.6, both negative
    masked = indices.ndvi(red, nir, -1000)  # the default
    assert np.isnan(masked[0]) and np.isnan(masked[2]) and np.isnan(masked[3])
    assert masked[1] == pytest.approx((2000 - 500) / 2500, rel=1e-6)
    clamped = indices.ndvi(red, nir, -1000, negative_reflectance="clamp")
    assert clamped[0] == 1.0 and clamped[2] == 1.0  # RED 0: (NIR - 0) / NIR
    assert np.isnan(clamped[3])  # both clamped to 0: 0 / 0 -> NoData
    for out in (masked, clamped):
        finite = out[np.isfinite(out)]
        assert np.all((finite >= -1) & (finite <= 1))
    with pytest.raises(S1S2Error, match="NEGATIVE_REFLECTANCE"):
        indices.ndvi(red, nir, -1000, negative_reflectance="drop")


def test_ndvi_negative_reflectance_counts_and_warning():
    counts = indices.ReflectanceCounts("mask")
    red = np.full(1000, 1500.0)
    red[:5] = RED_NEG  # 0.5 %: counted, no warning
    indices.ndvi(red, np.full(1000, NIR), -1000, counts=counts)
    assert (counts.valid, counts.non_positive) == (1000, 5)
    info, warning = counts.messages()
    assert "5 of 1000" in info and warning is None
    red[:20] = RED_NEG  # another block: 25 of 2000 = 1.25 %
    indices.ndvi(red, np.full(1000, NIR), -1000, counts=counts)
    info, warning = counts.messages()
    assert "25 of 2000" in info and "BOA_ADD_OFFSET" in warning


def test_ndvi_file_negative_reflectance_logged(tmp_path):
    red = np.full(SHAPE, 1500, np.uint16)
    red[0, :3] = 900
    red_path = write(str(tmp_path / "red.tif"), red, nodata=0)
    nir_path = write(str(tmp_path / "nir.tif"), np.full(SHAPE, 3000, np.uint16), nodata=0)
    logged, warned = [], []
    out = indices.ndvi_file(BandSource(red_path), BandSource(nir_path), str(tmp_path / "o.tif"),
                            boa_add_offset=-1000, log=logged.append, warn=warned.append)
    got = read(out)
    assert np.isnan(got[0, :3]).all() and np.isfinite(got).sum() == got.size - 3
    assert "3 of 120" in logged[-1] and "2.5 %" in warned[-1]


def test_plugin_ndvi_negative_reflectance(s1s2_provider, tmp_path):
    import processing

    red = np.full(SHAPE, 1500, np.uint16)
    red[0, :3] = 900
    params = {"RED": write(str(tmp_path / "red.tif"), red, nodata=0),
              "NIR": write(str(tmp_path / "nir.tif"), np.full(SHAPE, 3000, np.uint16), nodata=0),
              "BOA_ADD_OFFSET": -1000}
    expected = {0: math.nan, 1: 1.0, 2: 2100 / 1900}
    for mode, value in expected.items():
        feedback = RecordingFeedback()
        out = str(tmp_path / f"ndvi{mode}.tif")
        processing.run("s1s2:ndvi", dict(params, NEGATIVE_REFLECTANCE=mode, OUTPUT=out),
                       feedback=feedback)
        got = read(out)
        np.testing.assert_allclose(got[0, :3], value, rtol=1e-6)
        assert got[1, 0] == pytest.approx(1500 / 2500, rel=1e-6)
        assert any("3 of 120" in m for m in feedback.infos), feedback.infos
        assert any("BOA_ADD_OFFSET right" in m for m in feedback.warnings), feedback.warnings


# -- band and window values that are not whole numbers ----------------------------------------
def _linear_input(folder):
    values = np.random.default_rng(3).uniform(0.01, 0.3, SHAPE).astype(np.float32)
    return write(os.path.join(folder, "in.tif"), np.stack([values, values * 2]))


def _expect_error(alg, params, *fragments):
    from qgis.core import QgsProcessingException
    import processing

    with pytest.raises(QgsProcessingException) as raised:
        processing.run(alg, params)
    message = str(raised.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.mark.parametrize("value,fragment", [(0, "band 0 does not exist"), ("0", "band 0"),
                                            (-1, "band -1"), ("abc", "'abc' is not a whole"),
                                            (2.5, "2.5 is not a whole"),
                                            ("2.5", "2.5 is not a whole")])
def test_band_that_is_not_a_band_number_is_an_error(s1s2_provider, tmp_path, value, fragment):
    params = {"INPUT": _linear_input(str(tmp_path)), "DIRECTION": 0,
              "OUTPUT": str(tmp_path / "out.tif")}
    _expect_error("s1s2:dbconvert", dict(params, BAND=value), "BAND", fragment)
    assert not os.path.exists(params["OUTPUT"])
    import processing
    processing.run("s1s2:dbconvert", dict(params, BAND="2"))  # a whole number as text is fine
    np.testing.assert_allclose(read(params["OUTPUT"]),
                               10 * np.log10(read(params["INPUT"], 2)), rtol=1e-5)


def test_band_zero_still_means_all_bands_where_documented(s1s2_provider, tmp_path):
    import processing

    source = _linear_input(str(tmp_path))
    out = str(tmp_path / "out.tif")
    processing.run("s1s2:collocate", {"INPUT": source, "BAND": 0, "TARGET": source,
                                      "RESAMPLING": 0, "OUTPUT": out})
    from osgeo import gdal
    assert gdal.Open(out).RasterCount == 2


@pytest.mark.parametrize("alg,param,value", [("s1s2:leefilter", "WINDOW", 7.5),
                                             ("s1s2:leefilter", "WINDOW", "7.5"),
                                             ("s1s2:stackstatistics", "BAND", 1.5),
                                             ("s1s2:stackstatistics", "MIN_VALID", "1.5")])
def test_window_or_count_that_is_not_whole_is_an_error(s1s2_provider, tmp_path, alg, param,
                                                       value):
    source = _linear_input(str(tmp_path))
    if alg == "s1s2:leefilter":
        params = {"INPUT": source, "WINDOW": 7, "OUTPUT": str(tmp_path / "out.tif")}
    else:
        params = {"INPUTS": [source, source], "BAND": 1, "STATISTICS": [2],
                  "OUTPUT_MEAN": str(tmp_path / "out.tif")}
    params[param] = value
    _expect_error(alg, params, param, "not a whole number")
    assert not os.path.exists(str(tmp_path / "out.tif"))


# -- non-finite values: NoData out, counted, no numpy warning ---------------------------------
def _dbconvert_watched(folder, values, direction):
    """Run s1s2:dbconvert on ``values``: (output, recorded feedback, RuntimeWarnings seen)."""
    import warnings

    import processing

    source = write(os.path.join(folder, "in.tif"), values)
    out = os.path.join(folder, "out.tif")
    feedback = RecordingFeedback()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        processing.run("s1s2:dbconvert", {"INPUT": source, "DIRECTION": direction,
                                          "OUTPUT": out}, feedback=feedback)
    return read(out), feedback, [w for w in caught if issubclass(w.category, RuntimeWarning)]


def test_infinite_input_is_nodata_and_counted(s1s2_provider, tmp_path):
    values = np.random.default_rng(4).uniform(0.01, 0.3, SHAPE).astype(np.float32)
    values[0, 0], values[0, 1], values[5, 5] = np.inf, -np.inf, np.inf
    got, feedback, numpy_warnings = _dbconvert_watched(str(tmp_path), values, 0)
    assert np.isnan(got[0, :2]).all() and np.isnan(got[5, 5])
    assert np.isfinite(got).sum() == got.size - 3
    assert any("3 pixel(s) were +-inf" in w for w in feedback.warnings), feedback.warnings
    assert not numpy_warnings


def test_overflow_to_infinity_is_nodata_and_counted(s1s2_provider, tmp_path):
    """dB -> linear of 400 dB overflows float32: NoData and a note, no RuntimeWarning."""
    values = np.full(SHAPE, -12.0, np.float32)
    values[1, :4] = 400.0
    got, feedback, numpy_warnings = _dbconvert_watched(str(tmp_path), values, 1)
    assert np.isnan(got[1, :4]).all()
    np.testing.assert_allclose(got[0], 10 ** -1.2, rtol=1e-6)
    assert any("4 pixel(s) computed as +-inf" in w for w in feedback.warnings), \
        feedback.warnings
    assert not numpy_warnings


@pytest.mark.parametrize("alg", ["s1s2:rvi4s1", "s1s2:ndvi"])
def test_infinite_input_in_two_band_indices(s1s2_provider, tmp_path, alg):
    import processing

    a = np.round(np.random.default_rng(5).uniform(1000, 3000, SHAPE)).astype(np.float32)
    b = np.round(np.random.default_rng(6).uniform(1000, 3000, SHAPE)).astype(np.float32)
    a[2, 3] = np.inf
    b[4, 4] = -np.inf
    names = ("VV", "VH") if alg == "s1s2:rvi4s1" else ("NIR", "RED")
    params = {names[0]: write(str(tmp_path / "a.tif"), a),
              names[1]: write(str(tmp_path / "b.tif"), b), "OUTPUT": str(tmp_path / "o.tif")}
    if alg == "s1s2:ndvi":
        params["BOA_ADD_OFFSET"] = 0
    processing.run(alg, params)
    got = read(params["OUTPUT"])
    assert np.isnan(got[2, 3]) and np.isnan(got[4, 4])
    assert np.isfinite(got).sum() == got.size - 2


def test_ndvi_negative_reflectance_counted_once_with_a_cloud_buffer(tmp_path):
    """Blocks padded with the cloud buffer's halo overlap: each pixel is counted once."""
    red = np.full((300, 280), 1500, np.uint16)
    red[::7, ::5] = 900  # reflectance -0.01 with the -1000 offset
    red_path = write(str(tmp_path / "red.tif"), red, nodata=0)
    nir_path = write(str(tmp_path / "nir.tif"), np.full(red.shape, 3000, np.uint16), nodata=0)
    scl_path = write(str(tmp_path / "scl.tif"), np.full(red.shape, 4, np.uint8))
    logged = []
    indices.ndvi_file(BandSource(red_path), BandSource(nir_path), str(tmp_path / "o.tif"),
                      scl=BandSource(scl_path), cloud_buffer_m=50.0, boa_add_offset=-1000,
                      log=logged.append, warn=logged.append, block_pixels=64 * 64)
    expected = int((red == 900).sum())
    assert f"{expected} of {red.size} valid" in logged[0], logged


# -- incidence angles in radians ----------------------------------------------------------------
@pytest.mark.parametrize("how", ["range", "unit"])
@pytest.mark.parametrize("alg", ["s1s2:anglemask", "s1s2:vvvhratio"])
def test_angles_in_radians_are_converted(s1s2_provider, tmp_path, alg, how):
    """Angles 0.5-0.9 rad (28.6-51.6 degrees) used to mask everything; now converted."""
    import processing
    from osgeo import gdal

    degrees = np.linspace(28.0, 50.0, SHAPE[1])[None, :].repeat(SHAPE[0], 0).astype(np.float32)
    angle = write(str(tmp_path / "angle.tif"), np.radians(degrees).astype(np.float32))
    if how == "unit":  # radians declared: converted whatever the values
        dataset = gdal.Open(angle, gdal.GA_Update)
        dataset.GetRasterBand(1).SetUnitType("rad")
        dataset = None
    values = np.random.default_rng(8).uniform(0.05, 0.3, SHAPE).astype(np.float32)
    params = {"ANGLE": angle, "OUTPUT": str(tmp_path / "out.tif")}
    if alg == "s1s2:anglemask":
        params["INPUT"] = write(str(tmp_path / "in.tif"), values)
    else:
        params.update(VV=write(str(tmp_path / "vv.tif"), values),
                      VH=write(str(tmp_path / "vh.tif"), values / 4), INPUT_UNITS=0, MODE=1)
    feedback = RecordingFeedback()
    processing.run(alg, params, feedback=feedback)
    got = read(params["OUTPUT"])
    inside = (degrees > 30.64 + 1e-3) & (degrees < 45.54 - 1e-3)
    outside = (degrees < 30.64 - 1e-3) | (degrees > 45.54 + 1e-3)
    assert np.isfinite(got[inside]).all() and np.isnan(got[outside]).all()
    assert inside.sum() > 50
    assert any("radians" in w for w in feedback.warnings), feedback.warnings


def test_angles_in_degrees_are_not_converted(tmp_path):
    logged = []
    handler = __import__("logging").Handler()
    handler.emit = lambda record: logged.append(record.getMessage())
    logger = __import__("logging").getLogger("s1s2")
    logger.addHandler(handler)
    try:
        angle = write(str(tmp_path / "a.tif"), np.full(SHAPE, 38.0, np.float32))
        assert indices.angle_degrees_per_unit(BandSource(angle, 1, "ANGLE")) == 1.0
        radians = write(str(tmp_path / "r.tif"), np.full(SHAPE, 0.66, np.float32))
        assert indices.angle_degrees_per_unit(BandSource(radians, 1, "ANGLE")) == \
            pytest.approx(180 / math.pi)
    finally:
        logger.removeHandler(handler)
    assert len(logged) == 1 and logged[0].startswith("ANGLE: every angle lies in 0.66")


# -- complex bands ------------------------------------------------------------------------------
def write_complex(path, z, gdal_type_name="CFloat32"):
    from osgeo import gdal, osr

    gdal_type = gdal.GetDataTypeByName(gdal_type_name)
    dataset = gdal.GetDriverByName("GTiff").Create(path, z.shape[1], z.shape[0], 1, gdal_type)
    dataset.SetGeoTransform((500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    dataset.SetProjection(srs.ExportToWkt())
    dataset.GetRasterBand(1).WriteArray(z)
    dataset = None
    return path


def _slc(seed):
    rng = np.random.default_rng(seed)
    return (rng.integers(-300, 300, SHAPE) + 1j * rng.integers(-300, 300, SHAPE)).astype(
        np.complex64)


def test_complex_band_is_read_as_intensity(tmp_path):
    from s1s2_toolkit.core.streaming import BlockReader, Window

    z = _slc(1)
    z[0, 0] = 0
    path = write_complex(str(tmp_path / "slc.tif"), z, "CInt16")
    block = BlockReader([BandSource(path, 1, "VV", zero_is_nodata=True)]).read(
        Window(0, 0, SHAPE[1], SHAPE[0]))[0]
    expected = (z.real.astype(np.float64) ** 2 + z.imag.astype(np.float64) ** 2)
    assert np.isnan(block[0, 0])
    np.testing.assert_allclose(block.ravel()[1:], expected.ravel()[1:], rtol=1e-6)


@pytest.mark.parametrize("alg", ["s1s2:dbconvert", "s1s2:rvi4s1", "s1s2:refinedlee"])
def test_sar_algorithms_use_intensity_of_complex_bands(s1s2_provider, tmp_path, alg):
    import processing

    vv, vh = _slc(2), _slc(3) / 3
    intensity = {n: (z.real.astype(np.float64) ** 2 + z.imag.astype(np.float64) ** 2)
                 for n, z in (("VV", vv), ("VH", vh))}
    complex_out = str(tmp_path / "complex.tif")
    real_out = str(tmp_path / "real.tif")
    if alg == "s1s2:rvi4s1":
        params = {"INPUT_UNITS": 0}
        inputs = {"VV": vv, "VH": vh}
    else:
        params = {"DIRECTION": 0} if alg == "s1s2:dbconvert" else {}
        inputs = {"INPUT": vv}
    feedback = RecordingFeedback()
    processing.run(alg, dict(params, OUTPUT=complex_out, **{
        name: write_complex(str(tmp_path / f"{name}.tif"), z) for name, z in inputs.items()}),
        feedback=feedback)
    processing.run(alg, dict(params, OUTPUT=real_out, **{
        name: write(str(tmp_path / f"{name}_intensity.tif"),
                    intensity["VH" if name == "VH" else "VV"].astype(np.float32))
        for name in inputs}))
    np.testing.assert_allclose(read(complex_out), read(real_out), rtol=1e-5, equal_nan=True)
    assert np.isfinite(read(complex_out)).mean() > 0.9
    assert any("intensity |z|^2" in m for m in feedback.infos), feedback.infos
    algorithm = s1s2_provider.algorithm(alg.split(":")[1])
    assert "intensity |z|^2" in algorithm.shortHelpString()


@pytest.mark.parametrize("alg,param", [("s1s2:ndvi", "RED"), ("s1s2:collocate", "INPUT"),
                                       ("s1s2:anglemask", "ANGLE")])
def test_other_algorithms_refuse_complex_bands(s1s2_provider, tmp_path, alg, param):
    from qgis.core import QgsProcessingException
    import processing

    real = write(str(tmp_path / "real.tif"), np.full(SHAPE, 38.0, np.float32))
    params = {"ndvi": {"RED": real, "NIR": real, "BOA_ADD_OFFSET": 0},
              "collocate": {"INPUT": real, "TARGET": real},
              "anglemask": {"INPUT": real, "ANGLE": real}}[alg.split(":")[1]]
    params = dict(params, OUTPUT=str(tmp_path / "out.tif"))
    params[param] = write_complex(str(tmp_path / "slc.tif"), _slc(4))
    with pytest.raises(QgsProcessingException) as raised:
        processing.run(alg, params)
    message = str(raised.value)
    assert message.startswith(f"{param}: band 1") and "complex (CFloat32)" in message, message
    assert not os.path.exists(params["OUTPUT"])


# -- swapped or wrong layers --------------------------------------------------------------------
def _s2(folder, name, low=1000, high=4000, seed=9, dtype=np.uint16):
    values = np.random.default_rng(seed).integers(low, high, SHAPE).astype(dtype)
    return write(os.path.join(folder, name), values, nodata=0), values


@pytest.mark.parametrize("alg,pair", [("s1s2:ndvi", ("RED", "NIR")),
                                      ("s1s2:rvi4s1", ("VV", "VH")),
                                      ("s1s2:vvvhratio", ("VV", "VH")),
                                      ("s1s2:fusendvi", ("RED", "NIR")),
                                      ("s1s2:fusendvi", ("VV", "VH"))])
def test_same_band_twice_is_refused(s1s2_provider, tmp_path, alg, pair):
    stack = np.stack([np.random.default_rng(i).uniform(0.01, 0.3, SHAPE) for i in (1, 2)])
    both = write(str(tmp_path / "stack.tif"), (stack * 10000).astype(np.uint16)
                 if pair[0] == "RED" else stack.astype(np.float32))
    other = write(str(tmp_path / "other.tif"), (stack * 10000).astype(np.uint16)
                  if pair[0] != "RED" else stack.astype(np.float32))
    params = {pair[0]: both, pair[1]: both, f"{pair[0]}_BAND": 1, f"{pair[1]}_BAND": 1,
              "OUTPUT": str(tmp_path / "out.tif")}
    if alg == "s1s2:fusendvi":
        scl = write(str(tmp_path / "scl.tif"), np.full(SHAPE, 4, np.uint8))
        params.update(SCL=scl, OUTPUT_SOURCE=str(tmp_path / "source.tif"), MODEL=2,
                      COEFFICIENTS="0.5, 0.01, 0.01, 0.1", BOA_ADD_OFFSET=0)
        for name in ("RED", "NIR", "VV", "VH"):
            params.setdefault(name, other)
        untested = ("VV", "VH") if pair[0] == "RED" else ("RED", "NIR")
        params[f"{untested[0]}_BAND"], params[f"{untested[1]}_BAND"] = 1, 2
    if alg == "s1s2:ndvi":
        params["BOA_ADD_OFFSET"] = 0
    _expect_error(alg, params, f"{pair[0]} and {pair[1]} are the same band")
    assert not os.path.exists(params["OUTPUT"])
    # two bands of one stack are two different bands
    import processing
    if alg != "s1s2:fusendvi":
        processing.run(alg, dict(params, **{f"{pair[1]}_BAND": 2}))
        assert np.isfinite(read(params["OUTPUT"])).any()


def test_s1_db_layer_as_red_is_refused(s1s2_provider, tmp_path):
    db = np.random.default_rng(3).uniform(-25, -5, SHAPE).astype(np.float32)
    params = {"RED": write(str(tmp_path / "vv_db.tif"), db),
              "NIR": _s2(str(tmp_path), "nir.tif")[0], "BOA_ADD_OFFSET": 0,
              "OUTPUT": str(tmp_path / "out.tif")}
    _expect_error("s1s2:ndvi", params, "(RED)", "negative values", "dB")
    float_dn = np.random.default_rng(3).uniform(100, 4000, SHAPE).astype(np.float32)
    params["RED"] = write(str(tmp_path / "fraction.tif"), float_dn)
    _expect_error("s1s2:ndvi", params, "(RED)", "non-integer values")
    assert not os.path.exists(params["OUTPUT"])


def test_float_reflectance_is_accepted_and_said(s1s2_provider, tmp_path):
    import processing

    red = np.random.default_rng(4).uniform(0.02, 0.1, SHAPE).astype(np.float32)
    nir = np.random.default_rng(5).uniform(0.2, 0.5, SHAPE).astype(np.float32)
    params = {"RED": write(str(tmp_path / "red.tif"), red),
              "NIR": write(str(tmp_path / "nir.tif"), nir), "OUTPUT": str(tmp_path / "o.tif")}
    feedback = RecordingFeedback()
    processing.run("s1s2:ndvi", params, feedback=feedback)
    np.testing.assert_allclose(read(params["OUTPUT"]), (nir - red) / (nir + red), rtol=1e-5)
    assert any("hold reflectance" in m for m in feedback.infos), feedback.infos
    _expect_error("s1s2:ndvi", dict(params, BOA_ADD_OFFSET=-1000), "BOA_ADD_OFFSET", "set it to 0")


@pytest.mark.parametrize("kind", ["dn", "reflectance"])
def test_reflectance_band_as_scl_is_refused(s1s2_provider, tmp_path, kind):
    wrong = (np.random.default_rng(6).integers(200, 5000, SHAPE).astype(np.uint16)
             if kind == "dn" else
             np.random.default_rng(6).uniform(0.01, 0.4, SHAPE).astype(np.float32))
    params = {"RED": _s2(str(tmp_path), "red.tif")[0],
              "NIR": _s2(str(tmp_path), "nir.tif", seed=10)[0],
              "SCL": write(str(tmp_path / "b03.tif"), wrong), "BOA_ADD_OFFSET": 0,
              "OUTPUT": str(tmp_path / "out.tif")}
    _expect_error("s1s2:ndvi", params, "(SCL)", "not a Scene Classification class")
    assert not os.path.exists(params["OUTPUT"])


def test_band_description_contradicting_the_role_warns(s1s2_provider, tmp_path):
    import processing
    from osgeo import gdal

    red_path, _ = _s2(str(tmp_path), "red.tif")
    nir_path, _ = _s2(str(tmp_path), "nir.tif", 3000, 6000, seed=11)
    for path, description in ((red_path, "B8"), (nir_path, "B04")):  # swapped
        dataset = gdal.Open(path, gdal.GA_Update)
        dataset.GetRasterBand(1).SetDescription(description)
        dataset = None
    feedback = RecordingFeedback()
    processing.run("s1s2:ndvi", {"RED": red_path, "NIR": nir_path, "BOA_ADD_OFFSET": 0,
                                 "OUTPUT": str(tmp_path / "o.tif")}, feedback=feedback)
    warnings = [w for w in feedback.warnings if "swapped" in w]
    assert any(w.startswith("RED:") and "'B8'" in w for w in warnings), feedback.warnings
    assert any(w.startswith("NIR:") and "'B04'" in w for w in warnings), feedback.warnings
    feedback = RecordingFeedback()  # descriptions that agree: no warning
    processing.run("s1s2:ndvi", {"RED": nir_path, "NIR": red_path, "BOA_ADD_OFFSET": 0,
                                 "OUTPUT": str(tmp_path / "o2.tif")}, feedback=feedback)
    assert not [w for w in feedback.warnings if "swapped" in w]


def test_seaice_green_as_reflectance_uses_the_threshold_in_reflectance(tmp_path):
    from s1s2_toolkit.core.seaice import sea_ice

    dn = np.random.default_rng(12).integers(1000, 5000, SHAPE).astype(np.uint16)
    s1 = write(str(tmp_path / "s1.tif"), np.full(SHAPE, -20.0, np.float32))
    out = {}
    for kind, values in (("dn", dn), ("reflectance", (dn / 10000).astype(np.float32))):
        green = write(str(tmp_path / f"green_{kind}.tif"), values)
        sea_ice(s1, BandSource(green, 1, "S2_GREEN", zero_is_nodata=True),
                str(tmp_path / f"s1_{kind}.tif"), str(tmp_path / f"s2_{kind}.tif"),
                fill_holes=False)
        out[kind] = read(str(tmp_path / f"s2_{kind}.tif"))
    np.testing.assert_array_equal(out["dn"], out["reflectance"])
    assert 0 < np.nanmean(out["dn"]) < 1
