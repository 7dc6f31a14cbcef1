"""Output names (issue 12): the toolkit writes GeoTIFF only, so an output named .png, .nc,
.xyz or without an extension is refused with the supported extensions, and QGIS is told
which extensions the provider writes."""
import os

import numpy as np
import pytest

from s1s2_toolkit.core import writer
from s1s2_toolkit.core.errors import S1S2Error
from s1s2_toolkit.core.raster import BandSource
from s1s2_toolkit.core.units import convert_db_file
from testkit import read, write

BAD_NAMES = ["out.png", "out.nc", "out.xyz", "out", "out.tif.aux"]


def _input(folder):
    values = np.random.default_rng(1).uniform(0.01, 0.3, (8, 9)).astype(np.float32)
    return write(os.path.join(folder, "in.tif"), values)


def test_provider_declares_geotiff_only(s1s2_provider):
    assert s1s2_provider.supportedOutputRasterLayerExtensions() == ["tif", "tiff"]
    assert s1s2_provider.defaultRasterFileExtension() == "tif"


@pytest.mark.parametrize("name", BAD_NAMES)
def test_output_with_another_extension_is_refused(s1s2_provider, tmp_path, name):
    from qgis.core import QgsProcessingException
    import processing

    out = str(tmp_path / name)
    with pytest.raises(QgsProcessingException) as raised:
        processing.run("s1s2:dbconvert", {"INPUT": _input(str(tmp_path)), "DIRECTION": 0,
                                          "OUTPUT": out})
    message = str(raised.value)
    assert "OUTPUT" in message and ".tif or .tiff" in message, message
    assert sorted(os.listdir(tmp_path)) == ["in.tif"]


def test_stackstatistics_output_with_another_extension_is_refused(s1s2_provider, tmp_path):
    from qgis.core import QgsProcessingException
    import processing

    source = _input(str(tmp_path))
    with pytest.raises(QgsProcessingException, match="OUTPUT_MEAN: .*GeoTIFF only"):
        processing.run("s1s2:stackstatistics", {"INPUTS": [source, source], "STATISTICS": [2],
                                                "OUTPUT_MEAN": str(tmp_path / "mean.png")})
    assert sorted(os.listdir(tmp_path)) == ["in.tif"]


@pytest.mark.parametrize("name", ["out.TIF", "out.tiff"])
def test_geotiff_extensions_are_written(s1s2_provider, tmp_path, name):
    import processing
    from osgeo import gdal

    source = _input(str(tmp_path))
    out = str(tmp_path / name)
    processing.run("s1s2:dbconvert", {"INPUT": source, "DIRECTION": 0, "OUTPUT": out})
    assert gdal.Open(out).GetDriver().ShortName == "GTiff"
    np.testing.assert_allclose(read(out), 10 * np.log10(read(source)), rtol=1e-5)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_core_refuses_another_extension(tmp_path, name):
    with pytest.raises(S1S2Error, match="GeoTIFF only"):
        convert_db_file(BandSource(_input(str(tmp_path))), str(tmp_path / name),
                        "linear_to_db")
    with pytest.raises(S1S2Error, match="GeoTIFF only"):
        writer.check_output_path(str(tmp_path / name))
