"""The plugin: provider loads, s1s2:dbconvert runs via processing.run and qgis_process."""
import os

import numpy as np
import pytest

from testkit import S1_CHIP, read, write


@pytest.fixture
def linear_raster(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.gamma(1.0, 0.05, size=(61, 83)).astype(np.float32)
    data[0, :5] = [0.0, -1.0, 1.0, 10.0, 0.001]
    return write(str(tmp_path / "sigma0.tif"), data), data.astype(np.float64)


def expected_db(x):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, 10 * np.log10(x), np.nan)


def test_provider_lists_algorithms(s1s2_provider):
    ids = {alg.id() for alg in s1s2_provider.algorithms()}
    assert "s1s2:dbconvert" in ids
    assert s1s2_provider.name() == "S1S2 Toolkit"
    for alg in s1s2_provider.algorithms():
        assert alg.shortHelpString(), alg.id()
        for param in alg.parameterDefinitions():
            name = param.name().split(":")[-1]  # a model's outputs: <step>:<OUTPUT>
            assert name == name.upper(), (alg.id(), param.name())


def test_plugin_class_factory_registers_and_unloads_provider(qgis_iface):
    from qgis.core import QgsApplication

    import s1s2_toolkit

    plugin = s1s2_toolkit.classFactory(qgis_iface)
    registry = QgsApplication.processingRegistry()
    if registry.providerById("s1s2") is not None:
        registry.removeProvider("s1s2")  # by id: the fixture's provider may be registered
    plugin.initProcessing()
    assert registry.providerById("s1s2") is not None
    plugin.unload()
    assert registry.providerById("s1s2") is None


def test_dbconvert_processing_run(s1s2_provider, linear_raster, tmp_path):
    import processing

    path, data = linear_raster
    out = str(tmp_path / "db.tif")
    result = processing.run("s1s2:dbconvert", {"INPUT": path, "BAND": 1, "DIRECTION": 0,
                                               "OUTPUT": out})
    assert result["OUTPUT"] == out
    got = read(out)
    np.testing.assert_allclose(got, expected_db(data), rtol=0, atol=2e-5)
    assert np.isnan(got[0, 0]) and np.isnan(got[0, 1])  # 0 and negative -> NoData, not -inf
    assert got[0, 3] == pytest.approx(10.0)


def test_dbconvert_qgis_process_round_trip(qgis_process, tmp_path):
    db = str(tmp_path / "vv_lin.tif")
    result = qgis_process.run("s1s2:dbconvert", INPUT=S1_CHIP, BAND=1, DIRECTION=1, OUTPUT=db)
    assert result["results"]["OUTPUT"] == db
    source_db = read(S1_CHIP, 1)
    np.testing.assert_allclose(read(db), 10 ** (source_db / 10), rtol=1e-5)
    back = str(tmp_path / "vv_db.tif")
    qgis_process.run("s1s2:dbconvert", INPUT=db, BAND=1, DIRECTION=0, OUTPUT=back)
    np.testing.assert_allclose(read(back), 10 * np.log10(read(db)), atol=1e-4)
    np.testing.assert_allclose(read(back), source_db, atol=1e-4)


def test_style_sidecar_is_a_valid_qgis_style(s1s2_provider, linear_raster, tmp_path):
    """QGIS picks up <output>.qml as the default style: a pseudocolour ramp from -25 to 0 dB."""
    import processing
    from qgis.core import QgsRasterLayer

    path, _ = linear_raster
    out = str(tmp_path / "styled.tif")
    processing.run("s1s2:dbconvert", {"INPUT": path, "BAND": 1, "DIRECTION": 0, "OUTPUT": out})
    assert os.path.exists(str(tmp_path / "styled.qml"))
    layer = QgsRasterLayer(out, "styled")
    assert layer.isValid()
    message, ok = layer.loadDefaultStyle()
    assert ok, message
    renderer = layer.renderer()
    assert renderer.type() == "singlebandpseudocolor"
    shader = renderer.shader().rasterShaderFunction()
    items = shader.colorRampItemList()
    assert [i.value for i in items] == [-25.0, 0.0]
    assert items[0].color.name() == "#000000" and items[-1].color.name() == "#ffffff"


def test_missing_band_is_a_clear_processing_error(s1s2_provider, linear_raster, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    path, _ = linear_raster
    with pytest.raises(QgsProcessingException, match="band 3"):
        processing.run("s1s2:dbconvert", {"INPUT": path, "BAND": 3, "DIRECTION": 0,
                                          "OUTPUT": str(tmp_path / "x.tif")})
    assert not os.path.exists(str(tmp_path / "x.tif"))


def test_qgis_process_uses_the_default_band_when_unset(qgis_process, tmp_path):
    """QGIS 3.22's qgis_process ignores a band parameter's default; the base applies it."""
    out = str(tmp_path / "vh_default_band.tif")
    qgis_process.run("s1s2:dbconvert", INPUT=S1_CHIP, DIRECTION=1, OUTPUT=out)
    np.testing.assert_allclose(read(out), 10 ** (read(S1_CHIP, 1) / 10), rtol=1e-5)
