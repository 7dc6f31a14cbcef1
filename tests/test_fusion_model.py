"""models/s1s2_fusion_chain.model3: loads, matches its builder script, runs through qgis_process."""
import importlib.util
import os

import numpy as np

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


def test_model_loads_and_equals_what_the_builder_script_makes(s1s2_provider):
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
    assert children["collocate_vh"][1]["TARGET"] == "<red>"
    for child in model.childAlgorithms().values():
        assert child.algorithm() is not None, child.algorithmId()  # all ids resolve
    rebuilt = load_builder().build_model()
    assert chain(rebuilt) == children
    assert interface(rebuilt) == interface(model)


def test_model_runs_through_qgis_process(qgis_process, tmp_path):
    paths, scl = synthetic_scene(tmp_path, s1_nodata_block=False)
    # S1 in dB on another grid (one column wider, 10 m further west): collocated by the chain.
    for band in ("vv", "vh"):
        db = 10 * np.log10(read(paths[band]))
        wider = np.concatenate([db[:, :1], db], axis=1).astype(np.float32)
        paths[band] = write(str(tmp_path / f"{band}_wide.tif"), wider,
                            (GT[0] - 10.0,) + GT[1:], 32633)
    fused, source = str(tmp_path / "fused.tif"), str(tmp_path / "source.tif")
    run = qgis_process.run(MODEL, red=paths["red"], nir=paths["nir"], scl=paths["scl"],
                           vv=paths["vv"], vh=paths["vh"], s1_units=1,
                           **{"fusendvi:fused_ndvi": fused, "fusendvi:ndvi_source": source})
    assert run["results"]["fusendvi:fused_ndvi"] == fused
    # The same chain in one algorithm (collocation and Refined Lee inside s1s2:fusendvi).
    direct = qgis_process.run(
        "s1s2:fusendvi", RED=paths["red"], RED_BAND=1, NIR=paths["nir"], NIR_BAND=1,
        SCL=paths["scl"], SCL_BAND=1, VV=paths["vv"], VV_BAND=1, VH=paths["vh"], VH_BAND=1,
        S1_UNITS=1, SPECKLE_FILTER=1, MODEL=0, OUTPUT=str(tmp_path / "direct.tif"),
        OUTPUT_SOURCE=str(tmp_path / "direct_source.tif"))["results"]
    np.testing.assert_array_equal(read_raw(source), read_raw(direct["OUTPUT_SOURCE"]))
    np.testing.assert_allclose(read(fused), read(direct["OUTPUT"]), rtol=0, atol=2e-4)
    expected = np.where(np.isin(scl, [8, 9, 10]), 2, 1)
    expected[5, 7] = 2  # S2 DN 0 on a clear pixel: filled from S1
    np.testing.assert_array_equal(read_raw(source), expected)
