"""s1s2:fusendvi through processing.run and the real qgis_process (number outputs in --json)."""
import numpy as np
import pytest

from test_fusion import clear_pixel_arrays, read_raw, synthetic_scene, GT
from testkit import read, write

NUMBER_OUTPUTS = ("CLOUD_FRACTION", "FIT_N", "FIT_R2", "FIT_RMSE", "BASELINE_RMSE",
                  "COEF_INTERCEPT", "COEF_VH_DB", "COEF_VV_DB", "COEF_NRPB",
                  "COEF_REFERENCE_NDVI")


def parameters(paths, tmp_path, **extra):
    values = {"RED": paths["red"], "RED_BAND": 1, "NIR": paths["nir"], "NIR_BAND": 1,
              "SCL": paths["scl"], "SCL_BAND": 1, "VV": paths["vv"], "VV_BAND": 1,
              "VH": paths["vh"], "VH_BAND": 1, "SPECKLE_FILTER": 0,
              "OUTPUT": str(tmp_path / "fused.tif"),
              "OUTPUT_SOURCE": str(tmp_path / "source.tif")}
    values.update(extra)
    return values


def test_algorithm_declares_the_issue_parameters_and_outputs(s1s2_provider):
    from qgis.core import QgsProcessingParameterDefinition

    alg = s1s2_provider.algorithm("fusendvi")
    assert alg is not None and alg.id() == "s1s2:fusendvi"
    names = [p.name() for p in alg.parameterDefinitions()]
    assert names == ["RED", "RED_BAND", "NIR", "NIR_BAND", "SCL", "SCL_BAND", "VV", "VV_BAND",
                     "VH", "VH_BAND", "S1_UNITS", "BOA_ADD_OFFSET", "NEGATIVE_REFLECTANCE",
                     "CLOUD_CLASSES", "CLOUD_BUFFER", "SPECKLE_FILTER", "MODEL", "COEFFICIENTS",
                     "REFERENCE_NDVI", "OUTPUT", "OUTPUT_SOURCE", "OUTPUT_UNCERTAINTY"]
    assert alg.parameterDefinition("CLOUD_CLASSES").defaultValue() == "3,8,9,10"  # as ndvi
    assert alg.parameterDefinition("MODEL").defaultValue() == 3            # regression kriging
    assert alg.parameterDefinition("SPECKLE_FILTER").defaultValue() == 0   # no gain for it
    assert alg.MODELS[3][0] == "kriging" and alg.MODELS[0][0] == "local"   # old numbers kept
    assert alg.parameterDefinition("NEGATIVE_REFLECTANCE").defaultValue() == 0   # mask
    optional = QgsProcessingParameterDefinition.Flag.FlagOptional
    for name in ("VV", "VH", "REFERENCE_NDVI", "OUTPUT_UNCERTAINTY"):
        assert alg.parameterDefinition(name).flags() & optional, name
    outputs = {o.name(): o.type() for o in alg.outputDefinitions()}
    for name in NUMBER_OUTPUTS:
        assert outputs[name] == "outputNumber", name
    assert "toDb" in alg.shortHelpString() and "Filgueiras" in alg.shortHelpString()


def test_processing_run_matches_lstsq(s1s2_provider, tmp_path):
    import processing

    paths, scl = synthetic_scene(tmp_path)
    result = processing.run("s1s2:fusendvi", parameters(paths, tmp_path, MODEL=0))
    x, y, clear = clear_pixel_arrays(paths, scl)
    expected = np.linalg.lstsq(x[clear], y[clear], rcond=None)[0]
    got = [result[k] for k in ("COEF_INTERCEPT", "COEF_VH_DB", "COEF_VV_DB", "COEF_NRPB")]
    np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-9)
    assert result["FIT_N"] == clear.sum()
    assert result["COEF_REFERENCE_NDVI"] is None
    source = read_raw(result["OUTPUT_SOURCE"])
    assert set(np.unique(source)) == {0, 1, 2}
    assert np.all(source[np.isin(scl, [8, 9, 10]) & np.isfinite(read(result["OUTPUT"]))] == 2)
    assert (tmp_path / "fused.qml").exists() and (tmp_path / "source.qml").exists()


def test_processing_run_bad_coefficients_is_a_clear_error(s1s2_provider, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    paths, _ = synthetic_scene(tmp_path)
    with pytest.raises(QgsProcessingException, match="COEFFICIENTS"):
        processing.run("s1s2:fusendvi", parameters(paths, tmp_path, MODEL=2,
                                                   COEFFICIENTS="1, 2"))
    assert not (tmp_path / "fused.tif").exists()


def test_qgis_process_number_outputs(qgis_process, tmp_path):
    paths, scl = synthetic_scene(tmp_path)
    x, y, clear = clear_pixel_arrays(paths, scl, with_reference=True)
    for band in ("vv", "vh"):   # S1 in dB this time
        paths[band] = write(str(tmp_path / f"{band}_db.tif"),
                            (10 * np.log10(read(paths[band]))).astype(np.float32), GT, 32633)
    run = qgis_process.run("s1s2:fusendvi", **parameters(paths, tmp_path, S1_UNITS=1, MODEL=0,
                                                          REFERENCE_NDVI=paths["ref"]))
    results = run["results"]
    for name in NUMBER_OUTPUTS:
        assert isinstance(results[name], float), name
    expected = np.linalg.lstsq(x[clear], y[clear], rcond=None)[0]
    got = [results[k] for k in ("COEF_INTERCEPT", "COEF_VH_DB", "COEF_VV_DB", "COEF_NRPB",
                                "COEF_REFERENCE_NDVI")]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert results["FIT_N"] == clear.sum()
    assert results["CLOUD_FRACTION"] == pytest.approx(np.isin(scl, [8, 9, 10]).mean())
    assert results["FIT_RMSE"] < results["BASELINE_RMSE"]
    assert 0.5 < results["FIT_R2"] <= 1.0


def test_qgis_process_recipe_warns_loudly(qgis_process, tmp_path):
    paths, _ = synthetic_scene(tmp_path)
    proc = qgis_process.command(
        "run", "s1s2:fusendvi",
        *[f"--{k}={v}" for k, v in parameters(paths, tmp_path, MODEL=1).items()])
    assert proc.returncode == 0, proc.stderr
    assert "WARNING: the recipe formula predict" in proc.stdout + proc.stderr


def test_processing_run_default_kriging_with_uncertainty(s1s2_provider, tmp_path):
    import processing

    paths, scl = synthetic_scene(tmp_path)
    result = processing.run("s1s2:fusendvi", parameters(
        paths, tmp_path, OUTPUT_UNCERTAINTY=str(tmp_path / "sigma.tif")))
    source = read_raw(result["OUTPUT_SOURCE"])
    sigma = read(result["OUTPUT_UNCERTAINTY"])
    assert np.all(np.isnan(sigma[source == 1])) and np.all(sigma[source == 2] > 0)
    assert result["FIT_RMSE"] < result["BASELINE_RMSE"]
    assert result["COEF_VH_DB"] is None            # not a coefficient of this model
    assert (tmp_path / "sigma.qml").exists()


def test_processing_run_temporal_mode_without_s1(s1s2_provider, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    paths, scl = synthetic_scene(tmp_path)
    values = parameters(paths, tmp_path, REFERENCE_NDVI=paths["ref"])
    for key in ("VV", "VV_BAND", "VH", "VH_BAND"):
        values.pop(key)
    result = processing.run("s1s2:fusendvi", values)
    assert np.all(read_raw(result["OUTPUT_SOURCE"])[np.isin(scl, [8, 9, 10])] == 2)
    values.pop("REFERENCE_NDVI")
    with pytest.raises(QgsProcessingException, match="REFERENCE_NDVI"):
        processing.run("s1s2:fusendvi", dict(values, OUTPUT=str(tmp_path / "x.tif")))
    with pytest.raises(QgsProcessingException, match="OUTPUT_UNCERTAINTY"):
        processing.run("s1s2:fusendvi", parameters(paths, tmp_path, MODEL=0,
                                                   OUTPUT_UNCERTAINTY=str(tmp_path / "u.tif")))
