#!/usr/bin/env python3
"""Build models/s1s2_fusion_chain.model3, the graphical-modeler chain of the NDVI fusion.

    collocate VV, VH onto the S2 grid (bilinear, in linear power)
      -> Refined Lee on each (in linear power, back to the input units)
      -> s1s2:fusendvi (speckle filter off: already filtered; local regression)

Built with the QGIS API (QgsProcessingModelAlgorithm and friends) and saved with
``toFile()``; open it in the Processing modeler or run it with qgis_process:

    qgis_process.bin run models/s1s2_fusion_chain.model3 --red=B04.tif --nir=B08.tif \
        --scl=SCL.tif --vv=VV.tif --vh=VH.tif --s1_units=1 \
        --fusendvi:fused_ndvi=fused.tif --fusendvi:ndvi_source=source.tif

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


def build_model():
    """The chain as a QgsProcessingModelAlgorithm (the s1s2 provider must be registered)."""
    from qgis.core import (
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource as Source,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterEnum,
        QgsProcessingParameterNumber,
        QgsProcessingParameterRasterLayer,
        QgsProcessingParameterString,
    )
    from qgis.PyQt.QtCore import QPointF

    model = QgsProcessingModelAlgorithm(
        "S1S2 cloud-masked NDVI fusion chain", "S1S2 Toolkit", "s1s2")
    model.setHelpContent({
        "ALG_DESC": (
            "Collocates Sentinel-1 VV and VH onto the Sentinel-2 grid (bilinear, in linear "
            "power), filters them with Refined Lee and fills the cloudy pixels of the S2 NDVI "
            "from S1 with s1s2:fusendvi (local least-squares model fitted on the scene's clear "
            "pixels, accuracy from a spatial hold-out reported in the log and in the fused "
            "raster's metadata)."),
        "ALG_CREATOR": "S1S2 Toolkit",
    })

    def add_input(definition, x, y):
        parameter = QgsProcessingModelParameter(definition.name())
        parameter.setPosition(QPointF(x, y))
        model.addModelParameter(definition, parameter)

    add_input(QgsProcessingParameterRasterLayer("red", "Red (S2 B04, DN)"), 80, 60)
    add_input(QgsProcessingParameterRasterLayer("nir", "Near infrared (S2 B08, DN)"), 80, 120)
    add_input(QgsProcessingParameterRasterLayer("scl", "Scene classification (S2 SCL)"), 80, 180)
    add_input(QgsProcessingParameterRasterLayer("vv", "Sentinel-1 VV"), 80, 240)
    add_input(QgsProcessingParameterRasterLayer("vh", "Sentinel-1 VH"), 80, 300)
    add_input(QgsProcessingParameterEnum("s1_units", "Sentinel-1 units",
                                         options=["Linear power", "dB"], defaultValue=0),
              80, 360)
    add_input(QgsProcessingParameterString("cloud_classes", "SCL classes treated as cloud",
                                           defaultValue="7,8,9,10"), 80, 420)
    add_input(QgsProcessingParameterNumber("cloud_buffer", "Cloud buffer (metres)",
                                           QgsProcessingParameterNumber.Type.Double,
                                           defaultValue=0.0, minValue=0.0), 80, 480)

    def add_child(child_id, algorithm, sources, x, y, outputs=None):
        child = QgsProcessingModelChildAlgorithm(algorithm)
        child.setChildId(child_id)
        child.setDescription(child_id.replace("_", " "))
        child.setPosition(QPointF(x, y))
        for name, source in sources.items():
            child.addParameterSources(name, [source])
        if outputs:
            model_outputs = {}
            for output_name, (child_output, description) in outputs.items():
                output = QgsProcessingModelOutput(output_name, description)
                output.setChildId(child_id)
                output.setChildOutputName(child_output)
                model_outputs[output_name] = output
            child.setModelOutputs(model_outputs)
        model.addChildAlgorithm(child)

    for pol, y in (("vv", 200), ("vh", 320)):
        add_child(f"collocate_{pol}", "s1s2:collocate", {
            "INPUT": Source.fromModelParameter(pol),
            "BAND": Source.fromStaticValue(1),
            "TARGET": Source.fromModelParameter("red"),
            "RESAMPLING": Source.fromStaticValue(1),       # bilinear
            "LINEAR_UNITS": Source.fromStaticValue(True),  # interpolate dB in linear power
            "OUTPUT": Source.fromStaticValue("TEMPORARY_OUTPUT"),
        }, 320, y)
        add_child(f"refinedlee_{pol}", "s1s2:refinedlee", {
            "INPUT": Source.fromChildOutput(f"collocate_{pol}", "OUTPUT"),
            "BAND": Source.fromStaticValue(1),
            "INPUT_UNITS": Source.fromModelParameter("s1_units"),
            "NODATA_ZERO": Source.fromStaticValue(False),
            "OUTPUT": Source.fromStaticValue("TEMPORARY_OUTPUT"),
        }, 560, y)
    add_child("fusendvi", "s1s2:fusendvi", {
        "RED": Source.fromModelParameter("red"), "RED_BAND": Source.fromStaticValue(1),
        "NIR": Source.fromModelParameter("nir"), "NIR_BAND": Source.fromStaticValue(1),
        "SCL": Source.fromModelParameter("scl"), "SCL_BAND": Source.fromStaticValue(1),
        "VV": Source.fromChildOutput("refinedlee_vv", "OUTPUT"),
        "VV_BAND": Source.fromStaticValue(1),
        "VH": Source.fromChildOutput("refinedlee_vh", "OUTPUT"),
        "VH_BAND": Source.fromStaticValue(1),
        "S1_UNITS": Source.fromModelParameter("s1_units"),
        "CLOUD_CLASSES": Source.fromModelParameter("cloud_classes"),
        "CLOUD_BUFFER": Source.fromModelParameter("cloud_buffer"),
        "SPECKLE_FILTER": Source.fromStaticValue(0),   # filtered by the Refined Lee children
        "MODEL": Source.fromStaticValue(0),            # local regression
    }, 800, 260, outputs={"fused_ndvi": ("OUTPUT", "Fused NDVI"),
                          "ndvi_source": ("OUTPUT_SOURCE",
                                          "Source of each pixel (1 S2, 2 S1, 0 none)")})
    model.updateDestinationParameters()
    return model


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
    if not model.toFile(MODEL_PATH):
        sys.exit(f"Could not write {MODEL_PATH}")
    print(f"wrote {MODEL_PATH}: {len(model.childAlgorithms())} steps, inputs "
          f"{[p.name() for p in model.parameterDefinitions()]}")
    QgsApplication.processingRegistry().removeProvider(provider)
    app.exitQgis()


if __name__ == "__main__":
    main()
