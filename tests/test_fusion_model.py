"""models/s1s2_fusion_chain.model3: loads, matches its builder script, runs through qgis_process."""
import importlib.util
import os

import numpy as np
import pytest

from test_fusion import GT, read_raw, synthetic_scene
from testkit import read, write

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models", "s1s2_fusion_chain.model3")
BUILDER = os.path.join(ROOT, "scripts", "build_fusion_model.py")


def load_builder():
    spec = importlib.util.spec_from_file_location("build_fusion_model", BUILDER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def chain(model):
    """{child id: (algorithm id, {parameter: source description})} of a model."""
    from s1s2_toolkit.algorithms.compat import ModelChildParameterSource as Source

    out = {}
    for child_id, child in model.childAlgorithms().items():
        sources = {}
        for name, values in child.parameterSources().items():
            source = values[0]
            if source.source() == Source.ChildOutput:
                sources[name] = f"{source.outputChildId()}.{source.outputName()}"
            elif source.source() == Source.ModelParameter:
                sources[name] = f"<{source.parameterName()}>"
            else:
                sources[name] = repr(source.staticValue())
        out[child_id] = (child.algorithmId(), sources)
    return out


def interface(model):
    """(input names, {child id: its model output names}) of a model. Not the names of the
    outputs' destination parameters: QGIS 3.22 names them "fusendvi:fused_ndvi", 3.40 names a
    new model's after the output's description (the saved file keeps its names on every
    release)."""
    inputs = sorted(p.name() for p in model.parameterDefinitions() if not p.isDestination())
    outputs = {child_id: sorted(child.modelOutputs())
               for child_id, child in model.childAlgorithms().items() if child.modelOutputs()}
    return inputs, outputs


def comparable(model):
    """A model's saved form without what the QGIS release decides: the file format version
    (3.40 writes Version2) and the destination parameters made from the outputs (3.22 names them
    "fusendvi:FUSED_NDVI", 3.40 after the output's description, without a colon: found by
    isDestination(), not by name; the outputs themselves are in the children)."""
    variant = dict(model.toVariant())
    variant.pop("internal_version", None)
    destinations = {p.name() for p in model.parameterDefinitions() if p.isDestination()}
    variant["parameterDefinitions"] = {
        name: value for name, value in variant["parameterDefinitions"].items()
        if name not in destinations}
    return variant


def test_model_loads_and_equals_what_the_builder_script_makes(s1s2_provider, tmp_path):
    from qgis.core import QgsProcessingModelAlgorithm

    model = QgsProcessingModelAlgorithm()
    assert model.fromFile(MODEL)
    children = chain(model)
    assert {k: v[0] for k, v in children.items()} == {
        "collocate_vv": "s1s2:collocate", "collocate_vh": "s1s2:collocate",
        "refinedlee_vv": "s1s2:refinedlee", "refinedlee_vh": "s1s2:refinedlee",
        "fusendvi": "s1s2:fusendvi"}
    assert children["refinedlee_vv"][1]["INPUT"] == "collocate_vv.OUTPUT"
    assert children["fusendvi"][1]["VH"] == "refinedlee_vh.OUTPUT"
    assert children["fusendvi"][1]["SPECKLE_FILTER"] == "0"
    assert children["collocate_vh"][1]["TARGET"] == "<RED>"
    assert model.childAlgorithm("collocate_vv").description() == "Collocate VV onto the S2 grid"
    for child in model.childAlgorithms().values():
        assert child.algorithm() is not None, child.algorithmId()  # all ids resolve
    # The shipped file is what the builder writes (the single source of the model): both
    # files loaded by this QGIS give the same model, to the last position and description.
    builder = load_builder()
    rebuilt_path = builder.write_model(builder.build_model(), str(tmp_path / "rebuilt.model3"))
    rebuilt = QgsProcessingModelAlgorithm()
    assert rebuilt.fromFile(rebuilt_path)
    assert chain(rebuilt) == children
    assert interface(rebuilt) == interface(model)
    assert comparable(rebuilt) == comparable(model), \
        "models/s1s2_fusion_chain.model3 is stale: run scripts/build_fusion_model.py"


def test_model_is_an_algorithm_of_the_provider_with_ordered_inputs(s1s2_provider):
    from qgis.core import (
        QgsApplication,
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
    )

    registry = QgsApplication.processingRegistry()
    model = registry.algorithmById("s1s2:fusionchain")
    assert model is not None and model.provider().id() == "s1s2"
    assert model.displayName().startswith("NDVI fusion chain")
    inputs = [d.name() for d in model.parameterDefinitions() if not d.isDestination()]
    assert inputs == ["RED", "NIR", "SCL", "VV", "VH", "S1_UNITS", "CLOUD_CLASSES",
                      "CLOUD_BUFFER", "MODEL"]
    fusendvi = registry.algorithmById("s1s2:fusendvi")
    for name in inputs[5:]:  # options and defaults follow s1s2:fusendvi's
        assert model.parameterDefinition(name).defaultValue() == \
            fusendvi.parameterDefinition(name).defaultValue(), name
    assert model.parameterDefinition("fusendvi:FUSED_NDVI").description() == "Fused NDVI"
    assert model.parameterDefinition("S1_UNITS").defaultValue() == 2  # Auto (detect)
    outputs = {o.name(): o.type() for o in model.outputDefinitions()}
    for name in ("FIT_RMSE", "BASELINE_RMSE", "FIT_R2", "CLOUD_FRACTION"):
        assert outputs[f"fusendvi:{name}"] == "outputNumber"
    # A toolbox search for "fusion" finds it: the name or a tag says so.
    assert "fusion" in model.displayName().lower()
    # Usable as a child algorithm of another model: the child resolves, with its outputs.
    parent = QgsProcessingModelAlgorithm("parent", "", "")
    child = QgsProcessingModelChildAlgorithm("s1s2:fusionchain")
    child.setChildId("chain")
    parent.addChildAlgorithm(child)
    resolved = parent.childAlgorithm("chain").algorithm()
    assert resolved is not None
    assert resolved.outputDefinition("fusendvi:FIT_RMSE") is not None


def test_model_runs_through_qgis_process(qgis_process, tmp_path):
    # qgis_process knows it by id, with its inputs in order and the fit numbers as outputs.
    help_text = qgis_process.command("help", "s1s2:fusionchain").stdout
    inputs = ["RED", "NIR", "SCL", "VV", "VH", "S1_UNITS", "CLOUD_CLASSES", "CLOUD_BUFFER",
              "MODEL"]
    positions = [help_text.index(f"\n{name}: ") for name in inputs]
    assert positions == sorted(positions)
    for name in ("FIT_RMSE", "BASELINE_RMSE", "FIT_R2", "CLOUD_FRACTION"):
        assert f"fusendvi:{name}: <outputNumber>" in help_text
    paths, scl = synthetic_scene(tmp_path, s1_nodata_block=False)
    # S1 in dB on another grid (one column wider, 10 m further west): collocated by the chain.
    for band in ("vv", "vh"):
        db = 10 * np.log10(read(paths[band]))
        wider = np.concatenate([db[:, :1], db], axis=1).astype(np.float32)
        paths[band] = write(str(tmp_path / f"{band}_wide.tif"), wider,
                            (GT[0] - 10.0,) + GT[1:], 32633)
    fused, source = str(tmp_path / "fused.tif"), str(tmp_path / "source.tif")
    # By the provider's id, all defaults (Auto units, fusendvi's default model): fit outputs.
    default = qgis_process.run("s1s2:fusionchain", RED=paths["red"], NIR=paths["nir"],
                               SCL=paths["scl"], VV=paths["vv"], VH=paths["vh"],
                               **{"fusendvi:FUSED_NDVI": str(tmp_path / "default.tif"),
                                  "fusendvi:NDVI_SOURCE": str(tmp_path / "default_s.tif")})
    assert 0 < default["results"]["fusendvi:FIT_RMSE"] < default["results"][
        "fusendvi:BASELINE_RMSE"]
    # The local least-squares model, to compare with the same chain inside s1s2:fusendvi.
    run = qgis_process.run("s1s2:fusionchain", RED=paths["red"], NIR=paths["nir"],
                           SCL=paths["scl"], VV=paths["vv"], VH=paths["vh"], MODEL=0,
                           **{"fusendvi:FUSED_NDVI": fused, "fusendvi:NDVI_SOURCE": source})
    assert run["results"]["fusendvi:FUSED_NDVI"] == fused
    fit = {name: run["results"][f"fusendvi:{name}"]
           for name in ("FIT_RMSE", "BASELINE_RMSE", "FIT_R2", "CLOUD_FRACTION")}
    # The same chain in one algorithm (collocation and Refined Lee inside s1s2:fusendvi).
    direct = qgis_process.run(
        "s1s2:fusendvi", RED=paths["red"], RED_BAND=1, NIR=paths["nir"], NIR_BAND=1,
        SCL=paths["scl"], SCL_BAND=1, VV=paths["vv"], VV_BAND=1, VH=paths["vh"], VH_BAND=1,
        S1_UNITS=1, SPECKLE_FILTER=1, MODEL=0, OUTPUT=str(tmp_path / "direct.tif"),
        OUTPUT_SOURCE=str(tmp_path / "direct_source.tif"))["results"]
    for name, value in fit.items():  # the model's fit outputs are fusendvi's numbers
        assert value == pytest.approx(direct[name], abs=2e-3), name
    np.testing.assert_array_equal(read_raw(source), read_raw(direct["OUTPUT_SOURCE"]))
    np.testing.assert_allclose(read(fused), read(direct["OUTPUT"]), rtol=0, atol=2e-4)
    expected = np.where(np.isin(scl, [8, 9, 10]), 2, 1)
    expected[5, 7] = 2  # S2 DN 0 on a clear pixel: filled from S1
    np.testing.assert_array_equal(read_raw(source), expected)
