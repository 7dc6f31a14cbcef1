"""s1s2:refinedlee, s1s2:leefilter, s1s2:focalmedian through processing.run and qgis_process."""
import os

import numpy as np
import pytest

from s1s2_toolkit.core import speckle
from testkit import S1_CHIP, read, write

ALGORITHMS = ("s1s2:refinedlee", "s1s2:leefilter", "s1s2:focalmedian")


@pytest.fixture
def linear_raster(tmp_path):
    rng = np.random.default_rng(2)
    data = (0.1 * rng.gamma(4.4, 1 / 4.4, size=(57, 66))).astype(np.float32)
    data[5:9, 30:40] = -1.0                 # declared NoData
    data[20, 20] = 0.0                      # a zero: data unless NODATA_ZERO
    path = write(str(tmp_path / "sigma0.tif"), data, nodata=-1.0)
    linear = data.copy()
    linear[linear == -1.0] = np.nan
    return path, linear


def test_provider_lists_speckle_algorithms(s1s2_provider):
    algs = {alg.id(): alg for alg in s1s2_provider.algorithms()}
    expected = {
        "s1s2:refinedlee": {"INPUT", "BAND", "INPUT_UNITS", "NODATA_ZERO", "OUTPUT"},
        "s1s2:leefilter": {"INPUT", "BAND", "INPUT_UNITS", "NODATA_ZERO", "WINDOW", "LOOKS",
                           "OUTPUT"},
        "s1s2:focalmedian": {"INPUT", "BAND", "INPUT_UNITS", "NODATA_ZERO", "RADIUS", "OUTPUT"},
    }
    for alg_id, params in expected.items():
        alg = algs[alg_id]
        assert {p.name() for p in alg.parameterDefinitions()} == params
        assert "Lee" in alg.shortHelpString() or "median" in alg.shortHelpString()
    assert algs["s1s2:leefilter"].parameterDefinition("WINDOW").defaultValue() == 7
    assert algs["s1s2:leefilter"].parameterDefinition("LOOKS").defaultValue() == 4.4
    assert algs["s1s2:focalmedian"].parameterDefinition("RADIUS").defaultValue() == 100.0
    assert "1/LOOKS" in algs["s1s2:leefilter"].shortHelpString()


def test_refined_lee_processing_run(s1s2_provider, linear_raster, tmp_path):
    import processing

    path, linear = linear_raster
    out = str(tmp_path / "rl.tif")
    result = processing.run("s1s2:refinedlee", {"INPUT": path, "BAND": 1, "INPUT_UNITS": 0,
                                                "NODATA_ZERO": False, "OUTPUT": out})
    assert result["OUTPUT"] == out
    np.testing.assert_array_equal(read(out), speckle.refined_lee(linear).astype(np.float64))
    assert np.isnan(read(out)[5:9, 30:40]).all()
    assert os.path.exists(str(tmp_path / "rl.qml"))
    assert 'value="0.3"' in open(str(tmp_path / "rl.qml")).read()   # LINEAR_RAMP


def test_nodata_zero_makes_zero_nodata(s1s2_provider, linear_raster, tmp_path):
    import processing

    path, linear = linear_raster
    out = str(tmp_path / "rl0.tif")
    processing.run("s1s2:refinedlee", {"INPUT": path, "BAND": 1, "NODATA_ZERO": True,
                                       "OUTPUT": out})
    zero_as_nodata = linear.copy()
    zero_as_nodata[20, 20] = np.nan
    got = read(out)
    assert np.isnan(got[20, 20])
    np.testing.assert_array_equal(got, speckle.refined_lee(zero_as_nodata).astype(np.float64))


def test_lee_and_focal_median_processing_run(s1s2_provider, linear_raster, tmp_path):
    import processing

    path, linear = linear_raster
    out = str(tmp_path / "lee.tif")
    processing.run("s1s2:leefilter", {"INPUT": path, "BAND": 1, "WINDOW": 5, "LOOKS": 3.0,
                                      "OUTPUT": out})
    np.testing.assert_array_equal(read(out), speckle.lee(linear, 5, 3.0).astype(np.float64))
    out = str(tmp_path / "med.tif")
    processing.run("s1s2:focalmedian", {"INPUT": path, "BAND": 1, "RADIUS": 30.0,
                                        "OUTPUT": out})
    footprint = speckle.disk_footprint(3.0, 3.0)   # 30 m on 10 m pixels
    np.testing.assert_array_equal(read(out),
                                  speckle.focal_median(linear, footprint).astype(np.float64))


def test_even_window_is_a_clear_error_and_writes_nothing(s1s2_provider, linear_raster,
                                                         tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    path, _ = linear_raster
    out = str(tmp_path / "bad.tif")
    with pytest.raises(QgsProcessingException, match="odd"):
        processing.run("s1s2:leefilter", {"INPUT": path, "BAND": 1, "WINDOW": 6,
                                          "OUTPUT": out})
    assert not os.path.exists(out)


def test_refined_lee_qgis_process_db_chip(qgis_process, tmp_path):
    """The real Sen1Floods11 VV chip (dB): filtered in linear, returned in dB, DB_RAMP style."""
    out = str(tmp_path / "vv_rl_db.tif")
    result = qgis_process.run("s1s2:refinedlee", INPUT=S1_CHIP, BAND=1, INPUT_UNITS=1,
                              OUTPUT=out)
    assert result["results"]["OUTPUT"] == out
    linear = 10 ** (read(S1_CHIP, 1) / 10)
    expected = 10 * np.log10(speckle.refined_lee(linear).astype(np.float64))
    np.testing.assert_allclose(read(out), expected, atol=1e-4)
    assert 'value="-25.0"' in open(str(tmp_path / "vv_rl_db.qml")).read()   # DB_RAMP
