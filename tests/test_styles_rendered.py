"""The shipped styles as QGIS renders them (the map renderer of scripts/screenshots.py):
NDVI negatives distinct from bare soil, values outside [-1, 1] standing out, the fusion
source band not hiding the NDVI, sea ice visible on a white canvas."""
import importlib.util
import os

import numpy as np
import pytest

from testkit import write

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCALE = 4  # output pixels per raster pixel: sampled at the block centres


def screenshots():
    spec = importlib.util.spec_from_file_location(
        "screenshots", os.path.join(ROOT, "scripts", "screenshots.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def styled(tmp_path, name, values, style, dtype=np.float32, nodata=np.nan):
    from s1s2_toolkit.core.styles import qml_for

    path = write(str(tmp_path / f"{name}.tif"), np.asarray(values, dtype), nodata=nodata)
    with open(str(tmp_path / f"{name}.qml"), "w", encoding="utf-8") as handle:
        handle.write(qml_for(style))
    return screenshots().styled_layer(path)


def rendered(layers, shape):
    """RGB of each raster pixel of ``layers`` (first on top) as QGIS draws them on white."""
    image = screenshots().render(layers, shape[1] * SCALE, shape[0] * SCALE)
    rgb = np.empty(shape + (3,), int)
    for row in range(shape[0]):
        for col in range(shape[1]):
            colour = image.pixelColor(col * SCALE + SCALE // 2, row * SCALE + SCALE // 2)
            rgb[row, col] = colour.red(), colour.green(), colour.blue()
    return rgb


def rgb(hex_colour):
    return [int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]


def test_ndvi_style_renders_negatives_blue_and_invalid_values_magenta(qgis_app, tmp_path):
    from s1s2_toolkit.core.styles import NDVI_RAMP

    values = [[-1.0, -0.5, 0.0, 0.1, 0.5, 1.0, 1.3, -1.7, np.nan]]
    colours = rendered([styled(tmp_path, "ndvi", values, NDVI_RAMP)], (1, 9))[0]
    expected = ["#08306b", "#2171b5", "#a50026", "#d73027", "#ffffbf", "#006837",  # stops
                "#ff00ff", "#ff00ff",  # outside [-1, 1]: not an NDVI
                "#ffffff"]             # NoData: the white canvas shows through
    np.testing.assert_allclose(colours, [rgb(c) for c in expected], atol=2)
    # Water (negative NDVI) is blue, not the red of bare soil (0.1) as with a 0..1 ramp.
    water, soil = colours[1], colours[3]
    assert water[2] > water[0] + 100 and soil[0] > soil[2] + 100


def test_fusion_source_band_over_the_ndvi_hides_nothing_and_marks_s1_in_purple(qgis_app,
                                                                                  tmp_path):
    from s1s2_toolkit.core.styles import FUSION_SOURCE_PALETTE, NDVI_RAMP

    ndvi = styled(tmp_path, "ndvi", [[0.5, 0.5, 0.5]], NDVI_RAMP)
    source = styled(tmp_path, "source", [[1, 2, 0]], FUSION_SOURCE_PALETTE, np.uint8, 0)
    colours = rendered([source, ndvi], (1, 3))[0]
    ndvi_colour = np.array(rgb("#ffffbf"))
    np.testing.assert_allclose(colours[0], ndvi_colour, atol=2)  # S2: the NDVI itself
    np.testing.assert_allclose(colours[2], ndvi_colour, atol=2)  # no source: NDVI itself
    blended = 0.4 * np.array(rgb("#7b3294")) + 0.6 * ndvi_colour  # S1: NDVI under 40 % purple
    np.testing.assert_allclose(colours[1], blended, atol=3)
    # The S1 purple is no colour of the NDVI ramp.
    s1_colour = np.array(rgb("#7b3294"))
    for _, colour, _ in NDVI_RAMP.stops:
        assert np.abs(np.array(rgb(colour)) - s1_colour).max() > 60, colour


def test_sea_ice_classes_are_visible_on_a_white_canvas(qgis_app, tmp_path):
    from s1s2_toolkit.core.styles import ICE_PALETTE

    colours = rendered([styled(tmp_path, "ice", [[0, 1, 255]], ICE_PALETTE, np.uint8, 255)],
                       (1, 3))[0]
    for colour in colours[:2]:  # open water, ice
        assert (255 - colour).max() > 60, colour
    np.testing.assert_array_equal(colours[2], [255, 255, 255])  # NoData


@pytest.mark.parametrize("style,unit", [("DB_RAMP", "dB"), ("LINEAR_RAMP", "linear"),
                                        ("NDVI_RAMP", "NDVI"), ("RVI4S1_RAMP", "RVI4S1"),
                                        ("RATIO_DB_RAMP", "dB")])
def test_legends_carry_units(qgis_app, tmp_path, style, unit):
    from s1s2_toolkit.core import styles

    layer = styled(tmp_path, "x", [[0.0]], getattr(styles, style))
    labels = [label for label, _ in screenshots().legend_items(layer)]
    assert unit in labels[0] and unit in labels[-1], labels
