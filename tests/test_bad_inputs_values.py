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
def test_infinite_input_is_nodata_and_counted(s1s2_provider, tmp_path):
    import warnings

    import processing

    values = np.random.default_rng(4).uniform(0.01, 0.3, SHAPE).astype(np.float32)
    values[0, 0], values[0, 1], values[5, 5] = np.inf, -np.inf, np.inf
    source = write(str(tmp_path / "in.tif"), values)
    out = str(tmp_path / "db.tif")
    feedback = RecordingFeedback()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        processing.run("s1s2:dbconvert", {"INPUT": source, "DIRECTION": 0, "OUTPUT": out},
                       feedback=feedback)
    got = read(out)
    assert np.isnan(got[0, :2]).all() and np.isnan(got[5, 5])
    assert np.isfinite(got).sum() == got.size - 3
    assert any("3 pixel(s) were +-inf" in w for w in feedback.warnings), feedback.warnings
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]


def test_overflow_to_infinity_is_nodata_and_counted(s1s2_provider, tmp_path):
    """dB -> linear of 400 dB overflows float32: NoData and a note, no RuntimeWarning."""
    import warnings

    import processing

    values = np.full(SHAPE, -12.0, np.float32)
    values[1, :4] = 400.0
    source = write(str(tmp_path / "in_db.tif"), values)
    out = str(tmp_path / "linear.tif")
    feedback = RecordingFeedback()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        processing.run("s1s2:dbconvert", {"INPUT": source, "DIRECTION": 1, "OUTPUT": out},
                       feedback=feedback)
    got = read(out)
    assert np.isnan(got[1, :4]).all()
    np.testing.assert_allclose(got[0], 10 ** -1.2, rtol=1e-6)
    assert any("4 pixel(s) computed as +-inf" in w for w in feedback.warnings), \
        feedback.warnings
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]


@pytest.mark.parametrize("alg", ["s1s2:rvi4s1", "s1s2:ndvi"])
def test_infinite_input_in_two_band_indices(s1s2_provider, tmp_path, alg):
    import processing

    a = np.random.default_rng(5).uniform(1000, 3000, SHAPE).astype(np.float32)
    b = np.random.default_rng(6).uniform(1000, 3000, SHAPE).astype(np.float32)
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
