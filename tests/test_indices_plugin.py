"""The index algorithms through processing.run (pytest-qgis) and the real qgis_process."""
import os

import numpy as np
import pytest

from testkit import S1_CHIP, S2_CHIP, bigearthnet_pairs, patch_band, read, write

S2 = bigearthnet_pairs()[0][0]
B04, B08 = patch_band(S2, "B04"), patch_band(S2, "B08")


def ndvi64(red, nir, offset=0.0):
    """Reference NDVI; reflectance <= 0 in either band is NoData (NEGATIVE_REFLECTANCE mask)."""
    red, nir = red + offset, nir + offset
    out = (nir - red) / (nir + red)
    out[(red <= 0) | (nir <= 0)] = np.nan
    return out


def test_algorithms_listed_with_contract_parameter_ids(s1s2_provider):
    algs = {alg.id(): alg for alg in s1s2_provider.algorithms()}
    expected = {
        "s1s2:ndvi": ["RED", "RED_BAND", "NIR", "NIR_BAND", "SCL", "SCL_BAND", "CLOUD_CLASSES",
                      "CLOUD_BUFFER", "BOA_ADD_OFFSET", "QUANTIFICATION_VALUE", "NEGATIVE_REFLECTANCE",
                      "OUTPUT"],
        "s1s2:rvi4s1": ["VV", "VV_BAND", "VH", "VH_BAND", "INPUT_UNITS", "OUTPUT"],
        "s1s2:vvvhratio": ["VV", "VV_BAND", "VH", "VH_BAND", "INPUT_UNITS", "MODE", "ANGLE",
                           "ANGLE_BAND", "MIN_ANGLE", "MAX_ANGLE", "OUTPUT"],
        "s1s2:anglemask": ["INPUT", "BAND", "ANGLE", "ANGLE_BAND", "MIN_ANGLE", "MAX_ANGLE",
                           "OUTPUT"],
        "s1s2:stackstatistics": ["INPUTS", "BAND", "STATISTICS", "MIN_VALID", "OUTPUT_MEDIAN",
                                 "OUTPUT_STD", "OUTPUT_MEAN", "OUTPUT_MIN", "OUTPUT_MAX",
                                 "OUTPUT_COUNT"],
    }
    for alg_id, ids in expected.items():
        assert alg_id in algs
        assert [p.name() for p in algs[alg_id].parameterDefinitions()] == ids
    assert "(NIR - RED) / (NIR + RED)" in algs["s1s2:ndvi"].shortHelpString()
    assert "q (q + 3) / (q + 1)^2" in algs["s1s2:rvi4s1"].shortHelpString()
    assert "ddof = 0" in algs["s1s2:stackstatistics"].shortHelpString()
    defaults = {p.name(): p.defaultValue() for p in algs["s1s2:ndvi"].parameterDefinitions()}
    assert defaults["CLOUD_CLASSES"] == "3,8,9,10" and defaults["BOA_ADD_OFFSET"] is None
    assert defaults["QUANTIFICATION_VALUE"] == 10000 and defaults["CLOUD_BUFFER"] == 0


def test_ndvi_processing_run_offset_unset_vs_set_and_style(s1s2_provider, tmp_path):
    import processing
    from qgis.core import QgsRasterLayer

    out = str(tmp_path / "ndvi.tif")
    processing.run("s1s2:ndvi", {"RED": B04, "RED_BAND": 1, "NIR": B08, "NIR_BAND": 1,
                                 "OUTPUT": out})
    np.testing.assert_allclose(read(out), ndvi64(read(B04), read(B08)), atol=1e-6)
    shifted = str(tmp_path / "ndvi_offset.tif")
    processing.run("s1s2:ndvi", {"RED": B04, "RED_BAND": 1, "NIR": B08, "NIR_BAND": 1,
                                 "BOA_ADD_OFFSET": -1000, "OUTPUT": shifted})
    np.testing.assert_allclose(read(shifted), ndvi64(read(B04), read(B08), -1000.0),
                               rtol=2e-6, atol=1e-6)
    layer = QgsRasterLayer(out, "ndvi")
    message, ok = layer.loadDefaultStyle()
    assert ok, message
    items = layer.renderer().shader().rasterShaderFunction().colorRampItemList()
    colours = {round(item.value, 4): item.color.name() for item in items}
    # The recipe's 11 stops 0..1 are kept; negatives and values outside [-1, 1] are added.
    assert (colours[0.0], colours[1.0]) == ("#a50026", "#006837")
    assert len([v for v in colours if 0 <= v <= 1]) == 11
    assert colours[-1.0] == "#08306b" and colours[1.5] == "#ff00ff"


def test_ndvi_bad_cloud_classes_is_a_clear_error(s1s2_provider, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    scl = write(str(tmp_path / "scl.tif"), np.full((60, 60), 4, np.uint8),
                geotransform=_grid_of(B04, 20.0))
    with pytest.raises(QgsProcessingException, match="CLOUD_CLASSES"):
        processing.run("s1s2:ndvi", {"RED": B04, "RED_BAND": 1, "NIR": B08, "NIR_BAND": 1,
                                     "SCL": scl, "SCL_BAND": 1, "CLOUD_CLASSES": "8,nine",
                                     "OUTPUT": str(tmp_path / "x.tif")})
    assert not os.path.exists(str(tmp_path / "x.tif"))


def _grid_of(path, pixel):
    from osgeo import gdal
    gt = gdal.Open(path).GetGeoTransform()
    return (gt[0], pixel, 0.0, gt[3], 0.0, -pixel)


def test_ndvi_qgis_process_with_20m_scl_and_buffer(qgis_process, tmp_path):
    classes = np.full((60, 60), 4, np.uint8)
    classes[30, 30] = 9
    scl = write(str(tmp_path / "scl.tif"), classes, geotransform=_grid_of(B04, 20.0), epsg=32633)
    out = str(tmp_path / "ndvi.tif")
    result = qgis_process.run("s1s2:ndvi", RED=B04, RED_BAND=1, NIR=B08, NIR_BAND=1, SCL=scl,
                              SCL_BAND=1, CLOUD_CLASSES="8,9", CLOUD_BUFFER=10, OUTPUT=out)
    assert result["results"]["OUTPUT"] == out
    got = read(out)
    # The 20 m cloud pixel covers 10 m pixels 60-61; the 10 m buffer adds a plus-shaped ring.
    masked = np.zeros(got.shape, bool)
    masked[59:63, 60:62] = True
    masked[60:62, 59:63] = True
    np.testing.assert_array_equal(np.isnan(got), masked)
    expected = ndvi64(read(B04), read(B08))
    np.testing.assert_allclose(got[~masked], expected[~masked], atol=1e-6)


def test_rvi4s1_and_vvvhratio_qgis_process(qgis_process, tmp_path):
    rvi = str(tmp_path / "rvi.tif")
    qgis_process.run("s1s2:rvi4s1", VV=S1_CHIP, VV_BAND=1, VH=S1_CHIP, VH_BAND=2,
                     INPUT_UNITS=1, OUTPUT=rvi)
    q = 10 ** ((read(S1_CHIP, 2) - read(S1_CHIP, 1)) / 10)
    np.testing.assert_allclose(read(rvi), q * (q + 3) / (q + 1) ** 2, rtol=1e-5, atol=1e-6)
    assert os.path.exists(str(tmp_path / "rvi.qml"))
    ratio = str(tmp_path / "ratio.tif")
    qgis_process.run("s1s2:vvvhratio", VV=S1_CHIP, VV_BAND=1, VH=S1_CHIP, VH_BAND=2,
                     INPUT_UNITS=1, MODE=0, OUTPUT=ratio)
    np.testing.assert_allclose(read(ratio), read(S1_CHIP, 1) - read(S1_CHIP, 2), atol=1e-4)


def test_anglemask_and_vvvhratio_with_angle_qgis_process(qgis_process, tmp_path):
    rng = np.random.default_rng(2)
    values = rng.normal(-12, 3, size=(40, 50)).astype(np.float32)
    angle = np.linspace(29, 47, 50, dtype=np.float32)[np.newaxis].repeat(40, axis=0)
    pv, pa = write(str(tmp_path / "v.tif"), values), write(str(tmp_path / "a.tif"), angle)
    out = str(tmp_path / "masked.tif")
    qgis_process.run("s1s2:anglemask", INPUT=pv, BAND=1, ANGLE=pa, ANGLE_BAND=1, OUTPUT=out)
    keep = (angle > 30.64) & (angle < 45.54)
    got = read(out)
    np.testing.assert_array_equal(got[keep], values[keep])
    assert np.isnan(got[~keep]).all()
    ratio = str(tmp_path / "vvdvh.tif")
    ph = write(str(tmp_path / "h.tif"), values)  # equal values in another file (the same
    # band twice is refused as swapped layers): the ratio of dB values is 1 where kept
    qgis_process.run("s1s2:vvvhratio", VV=pv, VV_BAND=1, VH=ph, VH_BAND=1, INPUT_UNITS=1,
                     MODE=2, ANGLE=pa, ANGLE_BAND=1, MIN_ANGLE=35, MAX_ANGLE=40, OUTPUT=ratio)
    keep = (angle > 35) & (angle < 40)
    got = read(ratio)
    np.testing.assert_allclose(got[keep], 1.0)
    assert np.isnan(got[~keep]).all()


def test_stackstatistics_qgis_process_only_chosen_outputs(qgis_process, tmp_path):
    rng = np.random.default_rng(4)
    dates = rng.normal(size=(5, 30, 40)).astype(np.float32)
    dates[rng.random(dates.shape) < 0.25] = np.nan
    paths = [write(str(tmp_path / f"d{i}.tif"), d) for i, d in enumerate(dates)]
    outs = {k: str(tmp_path / f"{k}.tif") for k in ("median", "std", "count")}
    result = qgis_process.run("s1s2:stackstatistics", INPUTS=paths, BAND=1, STATISTICS="0,5",
                              MIN_VALID=2, OUTPUT_MEDIAN=outs["median"],
                              OUTPUT_STD=outs["std"], OUTPUT_COUNT=outs["count"])
    assert set(result["results"]) == {"OUTPUT_MEDIAN", "OUTPUT_COUNT"}
    assert not os.path.exists(outs["std"])  # not chosen: not written
    d = dates.astype(np.float64)
    count = np.sum(~np.isnan(d), axis=0)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        median = np.where(count >= 2, np.nanmedian(d, axis=0), np.nan)
    np.testing.assert_allclose(read(outs["median"]), median, rtol=1e-6)
    np.testing.assert_array_equal(read(outs["count"]), count)


def test_ndvi_on_multiband_stack_processing_run(s1s2_provider, tmp_path):
    import processing

    out = str(tmp_path / "ndvi.tif")
    processing.run("s1s2:ndvi", {"RED": S2_CHIP, "RED_BAND": 4, "NIR": S2_CHIP, "NIR_BAND": 8,
                                 "OUTPUT": out})
    np.testing.assert_allclose(read(out), ndvi64(read(S2_CHIP, 4), read(S2_CHIP, 8)), atol=1e-6)


def test_ndvi_boa_add_offset_unset_reads_the_safe_product(s1s2_provider, tmp_path):
    import processing

    from test_indices_safe import MTD_L2A, boa_offsets, make_safe

    _, paths = make_safe(str(tmp_path), "S2A_MSIL2A_20220613T101031_N0400.SAFE", "MTD_MSIL2A.xml",
                         MTD_L2A.format(baseline="04.00", offsets=boa_offsets([-1000] * 13)),
                         {"B04": B04, "B08": B08})
    out = str(tmp_path / "ndvi.tif")
    processing.run("s1s2:ndvi", {"RED": paths["B04"], "RED_BAND": 1, "NIR": paths["B08"],
                                 "NIR_BAND": 1, "BOA_ADD_OFFSET": None, "OUTPUT": out})
    np.testing.assert_allclose(read(out), ndvi64(read(B04), read(B08), -1000.0),
                               rtol=2e-6, atol=1e-6)
    explicit = str(tmp_path / "ndvi0.tif")
    processing.run("s1s2:ndvi", {"RED": paths["B04"], "RED_BAND": 1, "NIR": paths["B08"],
                                 "NIR_BAND": 1, "BOA_ADD_OFFSET": 0, "OUTPUT": explicit})
    np.testing.assert_allclose(read(explicit), ndvi64(read(B04), read(B08)), atol=1e-6)
