#!/usr/bin/env python3
"""`make screenshots`: the README pictures, drawn by QGIS itself.

- the Processing toolbox with the S1S2 provider (QgsProcessingToolboxTreeView),
- the s1s2:fusendvi dialog (Processing's AlgorithmDialog, grabbed as a widget),
- the styled results of `make demo` (QGIS map rendering with the shipped .qml styles, the
  legend entries read back from each layer's renderer, so the units shown are the style's).

Runs headless (QT_QPA_PLATFORM=offscreen). Needs the demo's outputs (`make demo`, or
``--demo FOLDER``); writes PNGs to docs/img/ (``--output``).
Bundled data: tests/data (Contains modified Copernicus Sentinel data).
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGINS_DIR = os.path.join(ROOT, ".build", "plugins")
DATA = os.path.join(ROOT, "tests", "data")
S1_CHIP = os.path.join(DATA, "sen1floods11", "Spain_7370579_S1Hand.tif")
S2_CHIP = os.path.join(DATA, "sen1floods11", "Spain_7370579_S2Hand.tif")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, PLUGINS_DIR)
sys.path.insert(0, "/usr/share/qgis/python/plugins")


def link_plugin():
    os.makedirs(PLUGINS_DIR, exist_ok=True)
    link = os.path.join(PLUGINS_DIR, "s1s2_toolkit")
    if not os.path.islink(link):
        os.symlink(os.path.relpath(ROOT, PLUGINS_DIR), link)


# -- map rendering (also used by tests/test_styles_rendered.py) ------------------------------
def styled_layer(path, qml=None, name=None, opacity=None):
    """A raster layer with the style ``qml`` (default: the ``.qml`` next to the raster)."""
    from qgis.core import QgsRasterLayer

    layer = QgsRasterLayer(path, name or os.path.splitext(os.path.basename(path))[0], "gdal")
    if not layer.isValid():
        raise ValueError(f"{path}: not a readable raster")
    qml = qml or os.path.splitext(path)[0] + ".qml"
    message, ok = layer.loadNamedStyle(qml)
    if not ok:
        raise ValueError(f"{qml}: {message}")
    if opacity is not None:
        layer.renderer().setOpacity(opacity)
    return layer


def render(layers, width, height=None, extent=None, background="#ffffff"):
    """A QImage of ``layers`` (first on top) through QGIS's map renderer, on the first layer's
    CRS and extent; height follows the extent's aspect ratio unless given."""
    from qgis.core import QgsMapRendererSequentialJob, QgsMapSettings
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor

    extent = extent or layers[-1].extent()
    if height is None:
        height = max(1, round(width * extent.height() / extent.width()))
    settings = QgsMapSettings()
    settings.setLayers(list(layers))
    settings.setDestinationCrs(layers[-1].crs())
    settings.setExtent(extent)
    settings.setOutputSize(QSize(width, height))
    settings.setBackgroundColor(QColor(background))
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    return job.renderedImage()


def legend_items(layer):
    """[(label, QColor)] of a layer's style, as the QGIS legend shows them."""
    items, seen = [], set()
    for label, colour in layer.renderer().legendSymbologyItems():
        if label and label not in seen:
            seen.add(label)
            items.append((label, colour))
    return items


# -- composing pictures -----------------------------------------------------------------------
def panel(title, image, legend=(), width=None):
    """A QImage with a title above ``image`` and legend swatches below it."""
    from qgis.PyQt.QtCore import QRect, Qt
    from qgis.PyQt.QtGui import QColor, QFont, QImage, QPainter

    width = width or image.width()
    line = 18
    columns = 1 if any(len(label) > 20 for label, _ in legend) else 2
    rows = (len(legend) + columns - 1) // columns
    out = QImage(width, 26 + image.height() + 8 + rows * line + 6, QImage.Format.Format_ARGB32)
    out.fill(QColor("#ffffff"))
    painter = QPainter(out)
    font = QFont("DejaVu Sans", 10)
    font.setBold(True)
    painter.setFont(font)
    painter.drawText(QRect(0, 2, width, 22), int(Qt.AlignmentFlag.AlignHCenter), title)
    painter.drawImage((width - image.width()) // 2, 26, image)
    font.setBold(False)
    font.setPointSize(8)
    painter.setFont(font)
    for i, (label, colour) in enumerate(legend):
        x = 4 + (i % columns) * (width // 2)
        y = 26 + image.height() + 8 + (i // columns) * line
        painter.fillRect(QRect(x, y + 2, 14, 12), colour)
        painter.setPen(QColor("#555555"))
        painter.drawRect(QRect(x, y + 2, 14, 12))
        painter.setPen(QColor("#000000"))
        painter.drawText(QRect(x + 18, y, width // columns - 24, line),
                         int(Qt.AlignmentFlag.AlignVCenter), label)
    painter.end()
    return out


def side_by_side(images, gap=12):
    from qgis.PyQt.QtGui import QColor, QImage, QPainter

    width = sum(i.width() for i in images) + gap * (len(images) - 1)
    height = max(i.height() for i in images)
    out = QImage(width, height, QImage.Format.Format_ARGB32)
    out.fill(QColor("#ffffff"))
    painter = QPainter(out)
    x = 0
    for image in images:
        painter.drawImage(x, 0, image)
        x += image.width() + gap
    painter.end()
    return out


def map_panel(title, layers, width=300, legend_layer=None, legend_filter=None):
    legend = legend_items(legend_layer or layers[-1])
    if legend_filter:
        legend = [item for item in legend if legend_filter(item[0])]
    return panel(title, render(layers, width), legend, width=max(width, 300))


def _key_ndvi_entries(label):
    """The NDVI legend entries worth a line in a picture: named values and the extremes."""
    return "(" in label or "not an NDVI" in label or label in ("0 NDVI", "0.5 NDVI")


# -- the pictures -----------------------------------------------------------------------------
def toolbox_picture(path):
    """The Processing toolbox with the S1S2 provider expanded (other providers folded)."""
    from qgis.core import QgsApplication
    from qgis.gui import QgsProcessingToolboxTreeView

    view = QgsProcessingToolboxTreeView(None, QgsApplication.processingRegistry())
    view.setHeaderHidden(True)
    view.setIconSize(view.iconSize().scaled(20, 20, 0))
    view.resize(560, 600)
    model = view.model()
    for row in range(model.rowCount()):
        index = model.index(row, 0)
        if model.data(index) == "S1S2 Toolkit":
            view.expandRecursively(index)
            view.scrollTo(index, view.ScrollHint.PositionAtTop)
    view.show()
    QgsApplication.processEvents()
    view.grab().save(path)
    return path


class _Iface:
    """The few iface calls Processing's algorithm dialog makes, without a QGIS window."""

    def __init__(self, window, canvas):
        from qgis.gui import QgsMessageBar

        self.window, self.canvas, self.bar = window, canvas, QgsMessageBar(window)

    def mainWindow(self):  # noqa: N802 - QGIS API
        return self.window

    def messageBar(self):  # noqa: N802
        return self.bar

    def mapCanvas(self):  # noqa: N802
        return self.canvas

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def dialog_picture(path, demo):
    """The s1s2:fusendvi dialog filled with the demo's inputs, as a user sees it."""
    import qgis.utils
    from qgis.core import QgsApplication, QgsProject, QgsRasterLayer
    from qgis.gui import QgsMapCanvas
    from qgis.PyQt.QtWidgets import QMainWindow

    window = QMainWindow()
    qgis.utils.iface = _Iface(window, QgsMapCanvas(window))
    from processing.gui.AlgorithmDialog import AlgorithmDialog

    s2 = os.path.join(DATA, "bigearthnet", "S2B_MSIL2A_20170924T93020_69_24")
    s1 = os.path.join(DATA, "bigearthnet", "S1A_IW_GRDH_1SDV_20170925T043256_35VPK_69_24")
    inputs = {"RED": os.path.join(s2, os.path.basename(s2) + "_B04.tif"),
              "NIR": os.path.join(s2, os.path.basename(s2) + "_B08.tif"),
              "SCL": os.path.join(demo, "fusion_synthetic_scl_20m.tif"),
              "VV": os.path.join(s1, os.path.basename(s1) + "_VV.tif"),
              "VH": os.path.join(s1, os.path.basename(s1) + "_VH.tif")}
    values = {}
    for name, file in inputs.items():
        layer = QgsRasterLayer(file, os.path.splitext(os.path.basename(file))[0])
        QgsProject.instance().addMapLayer(layer)
        values[name] = layer
    algorithm = QgsApplication.processingRegistry().createAlgorithmById("s1s2:fusendvi")
    dialog = AlgorithmDialog(algorithm, False, window)
    dialog.mainWidget().setParameters(values)
    dialog.show()
    dialog.resize(1000, 980)
    QgsApplication.processEvents()
    dialog.grab().save(path)
    dialog.close()
    QgsProject.instance().removeAllMapLayers()
    return path


def result_pictures(demo, out):
    """The styled demo results: NDVI, fused NDVI with its source, Refined Lee, RVI4S1, ice."""
    import tempfile

    from s1s2_toolkit.core.styles import DB_RAMP, qml_for

    def demo_file(name):
        path = os.path.join(demo, name)
        if not os.path.exists(path):
            sys.exit(f"{path} is missing: run `make demo` first (or pass --demo FOLDER)")
        return path

    written = []

    def save(image, name):
        path = os.path.join(out, name)
        image.save(path)
        written.append(path)

    # NDVI of the Sen1Floods11 chip: water and flooded fields below 0 in blues.
    ndvi = styled_layer(demo_file("ndvi_sen1floods11.tif"))
    save(map_panel("Sentinel-2 NDVI (Sen1Floods11, Spain)", [ndvi], 400,
                   legend_filter=_key_ndvi_entries), "ndvi_sen1floods11.png")

    # Fused NDVI: the S2 NDVI with its cloud gap, the fill, and the fill's source on top.
    gap = styled_layer(demo_file("fusion_s2_ndvi_cloud_gap.tif"))
    fused = styled_layer(demo_file("fusion_ndvi_fused.tif"))
    source = styled_layer(demo_file("fusion_ndvi_source.tif"))
    fused_under = styled_layer(demo_file("fusion_ndvi_fused.tif"))
    uncertainty = styled_layer(demo_file("fusion_ndvi_uncertainty.tif"))
    save(side_by_side([
        map_panel("S2 NDVI, clouds masked", [gap], 300, legend_filter=_key_ndvi_entries),
        map_panel("Fused NDVI (filled from S1)", [fused], 300,
                  legend_filter=_key_ndvi_entries),
        map_panel("Fused NDVI + NDVI source", [source, fused_under], 300,
                  legend_layer=source),
        map_panel("Standard error of the fill", [uncertainty], 300),
    ]), "fusion_ndvi.png")

    # Refined Lee before / after (the input chip styled with the dB ramp of the output).
    before_qml = os.path.join(tempfile.mkdtemp(prefix="s1s2_shots_"), "before.qml")
    with open(before_qml, "w", encoding="utf-8") as handle:
        handle.write(qml_for(DB_RAMP, 1))
    before = styled_layer(S1_CHIP, before_qml, "VV before")
    after = styled_layer(demo_file("refinedlee_after_vv_db.tif"))
    save(side_by_side([map_panel("S1 VV (dB), before", [before], 320),
                       map_panel("Refined Lee, after", [after], 320)]),
         "refinedlee_before_after.png")

    rvi = styled_layer(demo_file("rvi4s1_sen1floods11.tif"))
    s1_ice = styled_layer(demo_file("seaice_s1.tif"))
    s2_ice = styled_layer(demo_file("seaice_s2.tif"))
    save(side_by_side([map_panel("RVI4S1 (Sen1Floods11)", [rvi], 300),
                       map_panel("Sea ice from S1 HV", [s1_ice], 240),
                       map_panel("Sea ice from S2 green", [s2_ice], 240)]),
         "rvi4s1_seaice.png")
    return written


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--demo", default=os.path.join(ROOT, "demo-output"))
    parser.add_argument("--output", default=os.path.join(ROOT, "docs", "img"))
    args = parser.parse_args()
    link_plugin()
    os.makedirs(args.output, exist_ok=True)
    from qgis.core import QgsApplication

    app = QgsApplication([], True)
    app.initQgis()
    from processing.core.Processing import Processing

    Processing.initialize()
    from s1s2_toolkit.algorithms.provider import S1S2Provider

    provider = S1S2Provider()
    QgsApplication.processingRegistry().addProvider(provider)
    written = [toolbox_picture(os.path.join(args.output, "toolbox.png")),
               dialog_picture(os.path.join(args.output, "fusendvi_dialog.png"), args.demo)]
    written += result_pictures(args.demo, args.output)
    for path in written:
        print(f"wrote {os.path.relpath(path, ROOT)}")
    QgsApplication.processingRegistry().removeProvider(provider)
    app.exitQgis()


if __name__ == "__main__":
    main()
