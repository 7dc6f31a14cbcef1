"""Core API misuse and misleading messages (issue 12, "Tracebacks and unclear messages"):
the core raises S1S2Error naming the parameter, refuses absurd sizes before allocating,
and its messages point at the right thing."""
import os

import numpy as np
import pytest

from s1s2_toolkit.core import indices, scl, seaice, streaming
from s1s2_toolkit.core.errors import S1S2Error
from s1s2_toolkit.core.raster import BandSource, Grid
from s1s2_toolkit.core.writer import OutputRaster
from testkit import write

SHAPE = (12, 10)


def _dn(folder, name, value=1500):
    return write(os.path.join(folder, name), np.full(SHAPE, value, np.uint16), nodata=0)


@pytest.mark.parametrize("classes", [[8, "a"], [8, 2.5], [None], "8,a", 3.5])
def test_parse_classes_bad_values_are_s1s2_errors(classes):
    with pytest.raises(S1S2Error, match="CLOUD_CLASSES"):
        scl.parse_classes(classes)


def test_parse_classes_whole_numbers_of_any_type():
    assert scl.parse_classes([10, np.int64(8), 9.0, "3"]) == (3, 8, 9, 10)


@pytest.mark.parametrize("argument", ["s1", "green", "output"])
def test_sea_ice_wrong_kinds_are_s1s2_errors(tmp_path, argument):
    green = BandSource(_dn(str(tmp_path), "green.tif"))
    args = {"s1": str(tmp_path / "s1.tif"), "green": green, "output": str(tmp_path / "a.tif")}
    args[argument] = None
    expected = {"s1": "S1", "green": "S2_GREEN", "output": "OUTPUT_S1_ICE"}[argument]
    with pytest.raises(S1S2Error, match=expected):
        seaice.sea_ice(args["s1"], args["green"], args["output"], str(tmp_path / "b.tif"))


def test_absurd_cloud_buffer_is_refused_before_allocating(tmp_path):
    red, nir = BandSource(_dn(str(tmp_path), "r.tif")), BandSource(_dn(str(tmp_path), "n.tif"))
    scl_path = write(str(tmp_path / "scl.tif"), np.full(SHAPE, 4, np.uint8))
    with pytest.raises(S1S2Error, match="CLOUD_BUFFER"):
        indices.ndvi_file(red, nir, str(tmp_path / "o.tif"), scl=BandSource(scl_path),
                          cloud_buffer_m=1e9)
    assert sorted(os.listdir(tmp_path)) == ["n.tif", "r.tif", "scl.tif"]


def test_stream_refuses_an_absurd_halo_before_allocating(tmp_path):
    source = BandSource(_dn(str(tmp_path), "in.tif"))
    with pytest.raises(S1S2Error, match="neighbourhood of 100000 pixels"):
        streaming.stream(lambda a: a, [source], [OutputRaster(str(tmp_path / "o.tif"))],
                         halo=100000)
    with pytest.raises(S1S2Error, match="neighbourhood"):
        streaming.scan(lambda a, window: 0, [source], halo=100000)
    assert not os.path.exists(str(tmp_path / "o.tif"))


def test_reasonable_cloud_buffer_still_works(tmp_path):
    grid = Grid("", (0, 10, 0, 0, 0, -10), 100, 100)
    assert scl.buffer_pixels(25.0, grid) == 3
    with pytest.raises(S1S2Error, match="CLOUD_BUFFER"):
        scl.buffer_pixels(1010.0, grid)  # 101 px on a 100 px raster


# -- messages that pointed at the wrong thing --------------------------------------------------
def test_fusendvi_vv_not_overlapping_names_vv_and_red(s1s2_provider, tmp_path):
    from qgis.core import QgsProcessingException
    import processing

    far = (900000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0)  # 400 km east of the S2 bands
    s1 = np.random.default_rng(1).uniform(0.01, 0.3, SHAPE).astype(np.float32)
    params = {"RED": _dn(str(tmp_path), "red.tif", 800), "NIR": _dn(str(tmp_path), "nir.tif"),
              "SCL": write(str(tmp_path / "scl.tif"), np.full(SHAPE, 4, np.uint8)),
              "VV": write(str(tmp_path / "vv.tif"), s1, geotransform=far),
              "VH": write(str(tmp_path / "vh.tif"), s1 / 5, geotransform=far),
              "BOA_ADD_OFFSET": 0, "MODEL": 2, "COEFFICIENTS": "0.5, 0.01, 0.01, 0.1",
              "OUTPUT": str(tmp_path / "fused.tif"),
              "OUTPUT_SOURCE": str(tmp_path / "source.tif")}
    with pytest.raises(QgsProcessingException) as raised:
        processing.run("s1s2:fusendvi", params)
    message = str(raised.value)
    assert "VV does not overlap the grid of RED" in message, message
    assert "INPUT" not in message and "TARGET" not in message, message


def test_malformed_calibration_xml_names_the_file(tmp_path):
    import glob

    from s1s2_toolkit.core.calibration import calibrate
    from test_calibration_product import build_product

    safe = build_product(str(tmp_path), scale=10, polarisations=("VV",))
    xml = glob.glob(os.path.join(safe, "annotation", "calibration", "calibration-*vv*.xml"))[0]
    with open(xml, "r+b") as handle:
        handle.truncate(os.path.getsize(xml) // 2)
    with pytest.raises(S1S2Error) as raised:
        calibrate(os.path.join(safe, "manifest.safe"), "VV", str(tmp_path / "out.tif"))
    message = str(raised.value)
    assert "calibration file" in message and os.path.basename(xml) in message, message
    assert "not valid XML" in message and "annotation:" not in message, message


def test_netcdf_with_one_variable_lists_it(tmp_path):
    from scipy.io import netcdf_file

    from s1s2_toolkit.core.calibration import calibrate

    path = str(tmp_path / "one.nc")
    with netcdf_file(path, "w") as nc:
        nc.createDimension("y", 6)
        nc.createDimension("x", 7)
        var = nc.createVariable("sigma0_HV", "f", ("y", "x"))
        var[:] = np.ones((6, 7), np.float32)
    with pytest.raises(S1S2Error) as raised:
        calibrate(path, "HV", str(tmp_path / "out.tif"))
    message = str(raised.value)
    assert "Amplitude_HV" in message and "variables: sigma0_HV" in message, message


def test_zero_byte_swath_blames_input(tmp_path):
    from s1s2_toolkit.core.swath import SwathFile

    empty = str(tmp_path / "swath.nc")
    open(empty, "wb").close()
    with pytest.raises(S1S2Error) as raised:
        SwathFile(empty, "sigma0")
    message = str(raised.value)
    assert message.startswith("INPUT:") and "0 bytes" in message, message
    assert "VARIABLE" not in message


def test_file_name_with_a_pipe(s1s2_provider, tmp_path):
    import processing

    from s1s2_toolkit.algorithms.base import gdal_path
    from testkit import read

    values = np.random.default_rng(2).uniform(0.01, 0.3, SHAPE).astype(np.float32)
    source = write(str(tmp_path / "pipe|name.tif"), values)
    out = str(tmp_path / "db.tif")
    processing.run("s1s2:dbconvert", {"INPUT": source, "DIRECTION": 0, "OUTPUT": out})
    np.testing.assert_allclose(read(out), 10 * np.log10(values), rtol=1e-5)
    assert gdal_path(source + "|option:x") == source
    assert gdal_path(str(tmp_path / "other.gpkg") + "|layername=a") == \
        str(tmp_path / "other.gpkg")


def test_empty_cloud_classes_masks_nothing_and_says_so(s1s2_provider, tmp_path):
    """Decided: an empty CLOUD_CLASSES masks no class (as the core's parse_classes('') = ()),
    accepted by the dialog and qgis_process, and the log says the SCL is unused."""
    import processing
    from qgis.core import QgsProcessingFeedback

    from testkit import read

    class Recorder(QgsProcessingFeedback):
        warnings = []

        def pushWarning(self, warning):  # noqa: N802 - QGIS API
            self.warnings.append(warning)
            super().pushWarning(warning)

    params = {"RED": _dn(str(tmp_path), "red.tif", 800), "NIR": _dn(str(tmp_path), "nir.tif"),
              "SCL": write(str(tmp_path / "scl.tif"), np.full(SHAPE, 9, np.uint8)),
              "BOA_ADD_OFFSET": 0, "OUTPUT": str(tmp_path / "ndvi.tif")}
    processing.run("s1s2:ndvi", params)
    assert np.isnan(read(params["OUTPUT"])).all()  # default classes: all cloud (9)
    feedback = Recorder()
    params["OUTPUT"] = str(tmp_path / "ndvi_all.tif")
    processing.run("s1s2:ndvi", dict(params, CLOUD_CLASSES=""), feedback=feedback)
    np.testing.assert_allclose(read(params["OUTPUT"]), 700 / 2300, rtol=1e-6)
    assert any("CLOUD_CLASSES is empty" in w for w in feedback.warnings), feedback.warnings


@pytest.mark.parametrize("call,name", [
    (lambda out: indices.ndvi_file(None, None, out), "RED"),
    (lambda out: indices.ndvi_file("b04.tif", "b08.tif", out), "RED"),
    (lambda out: indices.rvi4s1_file(None, None, out), "VV"),
    (lambda out: indices.angle_mask_file(None, None, out), "INPUT"),
    (lambda out: __import__("s1s2_toolkit.core.units", fromlist=["x"]).convert_db_file(
        None, out), "INPUT"),
    (lambda out: __import__("s1s2_toolkit.core.speckle", fromlist=["x"]).lee_file(None, out),
     "INPUT"),
    (lambda out: indices.ndvi(None, None), "RED"),
    (lambda out: indices.rvi4s1(None, [1.0]), "VV"),
    (lambda out: indices.vv_vh_ratio([1.0], "x", "db", "db"), "VH"),
    (lambda out: scl.buffer_pixels("10", Grid("", (0, 10, 0, 0, 0, -10), 5, 5)),
     "CLOUD_BUFFER")],
    ids=["ndvi_file-None", "ndvi_file-str", "rvi4s1_file", "angle_mask_file", "convert_db_file",
         "lee_file", "ndvi", "rvi4s1", "vv_vh_ratio", "buffer_pixels"])
def test_core_api_misuse_is_an_s1s2_error_naming_the_parameter(tmp_path, call, name):
    with pytest.raises(S1S2Error, match=name):
        call(str(tmp_path / "out.tif"))


def test_empty_cloud_classes_through_qgis_process(qgis_process, tmp_path):
    """qgis_process used to stop with QGIS's generic 'Incorrect parameter value'."""
    from testkit import read

    result = qgis_process.run(
        "s1s2:ndvi", check=False, RED=_dn(str(tmp_path), "red.tif", 800),
        NIR=_dn(str(tmp_path), "nir.tif"), CLOUD_CLASSES="", BOA_ADD_OFFSET=0,
        SCL=write(str(tmp_path / "scl.tif"), np.full(SHAPE, 9, np.uint8)),
        OUTPUT=str(tmp_path / "ndvi.tif"))
    assert result["returncode"] == 0, str(result)[-2000:]
    np.testing.assert_allclose(read(str(tmp_path / "ndvi.tif")), 700 / 2300, rtol=1e-6)
