#!/usr/bin/env python3
"""Build models/s1s2_fusion_chain.model3, the graphical-modeler chain of the NDVI fusion.

    collocate VV, VH onto the S2 grid (bilinear, in linear power)
      -> Refined Lee on each (in linear power, back to the input units)
      -> s1s2:fusendvi (speckle filter off: already filtered; its default model)

Built with the QGIS API (QgsProcessingModelAlgorithm and friends) and saved with
``toFile()``; open it in the Processing modeler or run it with qgis_process:

    qgis_process.bin run s1s2:fusionchain --RED=B04.tif --NIR=B08.tif \
        --SCL=SCL.tif --VV=VV.tif --VH=VH.tif \
        --fusendvi:FUSED_NDVI=fused.tif --fusendvi:NDVI_SOURCE=source.tif

(the provider registers every models/*.model3; the file itself runs too). The test
tests/test_fusion_model.py checks that the shipped file equals what this script builds.

Run: QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/build_fusion_model.py
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_PATH = os.path.join(ROOT, "models", "s1s2_fusion_chain.model3")
sys.path.insert(0, os.path.join(ROOT, ".build", "plugins"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def link_plugin():
    plugins = os.path.join(ROOT, ".build", "plugins")
    os.makedirs(plugins, exist_ok=True)
    link = os.path.join(plugins, "s1s2_toolkit")
    if not os.path.islink(link):
        os.symlink(os.path.relpath(ROOT, plugins), link)


# Model inputs in the order of s1s2:fusendvi's dialog: (model input, fusendvi parameter),
# with fusendvi's ids so that switching between the two in qgis_process is easy.
# Their descriptions, options and defaults are copied from s1s2:fusendvi, so the model
# follows the algorithm (e.g. the "Auto (detect)" units default).
INPUTS = [(name, name) for name in ("RED", "NIR", "SCL", "VV", "VH", "S1_UNITS",
                                     "CLOUD_CLASSES", "CLOUD_BUFFER", "MODEL")]
# Model outputs of the fusendvi step: (model output, fusendvi output, description).
# The uncertainty is written only when a file is given (optional in s1s2:fusendvi).
OUTPUTS = [("FUSED_NDVI", "OUTPUT", "Fused NDVI"),
           ("NDVI_SOURCE", "OUTPUT_SOURCE", "NDVI source (1 Sentinel-2, 2 filled, 0 none)"),
           ("NDVI_UNCERTAINTY", "OUTPUT_UNCERTAINTY", "Fused NDVI uncertainty"),
           ("FIT_RMSE", "FIT_RMSE", "Fit RMSE on the spatial hold-out (NDVI)"),
           ("BASELINE_RMSE", "BASELINE_RMSE",
            "Baseline RMSE: clear-pixel mean on the hold-out (NDVI)"),
           ("FIT_R2", "FIT_R2", "Fit R2 on the spatial hold-out"),
           ("CLOUD_FRACTION", "CLOUD_FRACTION", "Cloud fraction (of pixels with SCL data)")]
STEP_NAMES = {"collocate_vv": "Collocate VV onto the S2 grid",
              "collocate_vh": "Collocate VH onto the S2 grid",
              "refinedlee_vv": "Refined Lee speckle filter on VV",
              "refinedlee_vh": "Refined Lee speckle filter on VH",
              "fusendvi": "Fuse NDVI: S2 NDVI filled from S1 under cloud"}
MODEL_NAME = "NDVI fusion chain (collocate, Refined Lee, fuse)"


def build_model():
    """The chain as a QgsProcessingModelAlgorithm (the s1s2 provider must be registered)."""
    from qgis.core import (
        QgsApplication,
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource as Source,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterRasterLayer,
    )
    from qgis.PyQt.QtCore import QPointF

    fusendvi = QgsApplication.processingRegistry().algorithmById("s1s2:fusendvi")
    model = QgsProcessingModelAlgorithm(MODEL_NAME, "Sentinel-1 + Sentinel-2", "fusion")
    model.setHelpContent({
        "ALG_DESC": (
            "Collocates Sentinel-1 VV and VH onto the Sentinel-2 grid (bilinear, in linear "
            "power), filters them with Refined Lee and fills the cloudy pixels of the S2 NDVI "
            "from S1 with s1s2:fusendvi (its default model, fitted on the scene's clear "
            "pixels). The fit numbers (hold-out RMSE and R2, the clear-pixel mean's RMSE, the "
            "cloud fraction) are outputs of the model and are in the log. Run it from "
            "qgis_process as s1s2:fusionchain."),
        "ALG_CREATOR": "S1S2 Toolkit",
    })

    def add_input(name, fusendvi_name, y):
        source = fusendvi.parameterDefinition(fusendvi_name)
        if source.type() == QgsProcessingParameterRasterLayer.typeName():
            # Required here: the chain collocates VV and VH (no temporal mode).
            description = source.description().split(" (optional")[0]
            definition = QgsProcessingParameterRasterLayer(name, description)
        else:
            definition = source.clone()
            definition.setName(name)
            # Expert settings stay under Advanced in the model's dialog too.
        parameter = QgsProcessingModelParameter(name)
        parameter.setPosition(QPointF(80, y))
        model.addModelParameter(definition, parameter)

    for i, (name, fusendvi_name) in enumerate(INPUTS):
        add_input(name, fusendvi_name, 60 + 60 * i)
    model.setParameterOrder([name for name, _ in INPUTS])

    def add_child(child_id, algorithm, sources, x, y, outputs=()):
        child = QgsProcessingModelChildAlgorithm(algorithm)
        child.setChildId(child_id)
        child.setDescription(STEP_NAMES[child_id])
        child.setPosition(QPointF(x, y))
        for name, source in sources.items():
            child.addParameterSources(name, [source])
        model_outputs = {}
        for output_name, child_output, description in outputs:
            output = QgsProcessingModelOutput(output_name, description)
            output.setChildId(child_id)
            output.setChildOutputName(child_output)
            model_outputs[output_name] = output
        child.setModelOutputs(model_outputs)
        model.addChildAlgorithm(child)

    for pol, y in (("vv", 200), ("vh", 320)):
        add_child(f"collocate_{pol}", "s1s2:collocate", {
            "INPUT": Source.fromModelParameter(pol.upper()),
            "BAND": Source.fromStaticValue(1),
            "TARGET": Source.fromModelParameter("RED"),
            "RESAMPLING": Source.fromStaticValue(1),       # bilinear
            "LINEAR_UNITS": Source.fromStaticValue(True),  # interpolate dB in linear power
            "OUTPUT": Source.fromStaticValue("TEMPORARY_OUTPUT"),
        }, 320, y)
        add_child(f"refinedlee_{pol}", "s1s2:refinedlee", {
            "INPUT": Source.fromChildOutput(f"collocate_{pol}", "OUTPUT"),
            "BAND": Source.fromStaticValue(1),
            "INPUT_UNITS": Source.fromModelParameter("S1_UNITS"),
            "NODATA_ZERO": Source.fromStaticValue(False),
            "OUTPUT": Source.fromStaticValue("TEMPORARY_OUTPUT"),
        }, 560, y)
    outputs = [o for o in OUTPUTS if fusendvi.parameterDefinition(o[1]) is not None
               or fusendvi.outputDefinition(o[1]) is not None]
    add_child("fusendvi", "s1s2:fusendvi", {
        "RED": Source.fromModelParameter("RED"), "RED_BAND": Source.fromStaticValue(1),
        "NIR": Source.fromModelParameter("NIR"), "NIR_BAND": Source.fromStaticValue(1),
        "SCL": Source.fromModelParameter("SCL"), "SCL_BAND": Source.fromStaticValue(1),
        "VV": Source.fromChildOutput("refinedlee_vv", "OUTPUT"),
        "VV_BAND": Source.fromStaticValue(1),
        "VH": Source.fromChildOutput("refinedlee_vh", "OUTPUT"),
        "VH_BAND": Source.fromStaticValue(1),
        "S1_UNITS": Source.fromModelParameter("S1_UNITS"),
        "CLOUD_CLASSES": Source.fromModelParameter("CLOUD_CLASSES"),
        "CLOUD_BUFFER": Source.fromModelParameter("CLOUD_BUFFER"),
        "MODEL": Source.fromModelParameter("MODEL"),
        "SPECKLE_FILTER": Source.fromStaticValue(0),   # filtered by the Refined Lee children
    }, 800, 260, outputs=outputs)
    model.updateDestinationParameters()
    return model


def write_model(model, path):
    """Save ``model`` as ``.model3`` with its XML attributes in a fixed order (Qt writes
    them in a random order per run), so that a rebuild gives the same bytes."""
    from xml.etree import ElementTree

    if not model.toFile(path):
        raise OSError(f"Could not write {path}")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    root = ElementTree.fromstring(
        ElementTree.canonicalize(text[text.index("<Option"):], strip_text=True))
    ElementTree.indent(root, "  ")
    body = ElementTree.tostring(root, encoding="unicode")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("<!DOCTYPE model>\n" + body + "\n")
    return path


def main():
    link_plugin()
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    sys.path.insert(0, "/usr/share/qgis/python/plugins")
    from processing.core.Processing import Processing

    Processing.initialize()
    from s1s2_toolkit.algorithms.provider import S1S2Provider

    provider = S1S2Provider()
    QgsApplication.processingRegistry().addProvider(provider)
    model = build_model()
    os.makedirs(os.path.dirname(MODEL_PATH), exist_ok=True)
    write_model(model, MODEL_PATH)
    print(f"wrote {MODEL_PATH}: {len(model.childAlgorithms())} steps, inputs "
          f"{[p.name() for p in model.parameterDefinitions()]}")
    QgsApplication.processingRegistry().removeProvider(provider)
    app.exitQgis()


if __name__ == "__main__":
    main()
