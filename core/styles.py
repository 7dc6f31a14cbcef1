"""Colour ramps of the public recipes, as QGIS ``.qml`` styles and as RGB quicklooks.

Pure Python/numpy: the plugin writes these QML files next to its GeoTIFFs (QGIS
loads ``<name>.qml`` as the layer's default style, so the style survives
``qgis_process`` runs), and the demo renders the same ramps to PNG.
"""
import os
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple
from xml.sax.saxutils import quoteattr

import numpy as np

Stop = Tuple[float, str, str]  # value, colour #rrggbb, label


@dataclass(frozen=True)
class Ramp:
    """An interpolated colour ramp (value -> colour), as QGIS's INTERPOLATED shader."""

    name: str
    stops: Tuple[Stop, ...]

    @property
    def minimum(self) -> float:
        return self.stops[0][0]

    @property
    def maximum(self) -> float:
        return self.stops[-1][0]


@dataclass(frozen=True)
class Palette:
    """Discrete classes (uint8 masks and class rasters), as QGIS's paletted renderer."""

    name: str
    classes: Tuple[Stop, ...]


def _ramp(name, values, colours, labels=None):
    labels = labels or [f"{v:g}" for v in values]
    return Ramp(name, tuple(zip(values, colours, labels)))


# Values no valid result can take (NDVI outside [-1, 1], e.g. with NEGATIVE_REFLECTANCE=keep
# or a wrong BOA_ADD_OFFSET): a colour no ramp uses, so they stand out.
INVALID_COLOUR = "#ff00ff"
# NDVI: the Sentinel Hub NDVI / data-fusion recipe's 11 stops from 0.0 to 1.0 (RdYlGn) kept;
# negatives (water, wet soil, snow) in blues, so that they do not look like bare soil; values
# outside [-1, 1] in INVALID_COLOUR (the ramp extends its end colours beyond its stops).
_NDVI_RECIPE = [(i / 10, colour) for i, colour in enumerate(
    ["#a50026", "#d73027", "#f46d43", "#fdae61", "#fee08b", "#ffffbf",
     "#d9ef8b", "#a6d96a", "#66bd63", "#1a9850", "#006837"])]
NDVI_RAMP = Ramp("ndvi", (
    (-1.5, INVALID_COLOUR, "< -1: not an NDVI"),
    (-1.0001, INVALID_COLOUR, "< -1: not an NDVI"),
    (-1.0, "#08306b", "-1 NDVI (water)"),
    (-0.5, "#2171b5", "-0.5 NDVI"),
    (-0.05, "#c6dbef", "-0.05 NDVI"))
    + tuple((v, c, f"{v:g} NDVI" + (" (bare soil)" if v == 0.1 else
                                    " (dense vegetation)" if v == 1.0 else ""))
            for v, c in _NDVI_RECIPE)
    + ((1.0001, INVALID_COLOUR, "> 1: not an NDVI"),
       (1.5, INVALID_COLOUR, "> 1: not an NDVI")))
# Sentinel Hub RVI4S1 custom script (values above 1, VH > VV, keep the end colour).
RVI4S1_RAMP = _ramp("rvi4s1", [0.0, 0.25, 0.5, 0.75, 1.0],
                    ["#8e0152", "#de77ae", "#f7f7f7", "#7fbc41", "#276419"],
                    ["0 RVI4S1", "0.25", "0.5", "0.75", "1 RVI4S1"])
# Backscatter quicklooks: grey from dark water to bright urban / layover.
DB_RAMP = _ramp("backscatter_db", [-25.0, 0.0], ["#000000", "#ffffff"],
                ["-25 dB", "0 dB"])
LINEAR_RAMP = _ramp("backscatter_linear", [0.0, 0.3], ["#000000", "#ffffff"],
                    ["0 (linear power)", "0.3 (linear power)"])
RATIO_DB_RAMP = _ramp("vvvh_db", [0.0, 5.0, 10.0, 15.0],
                      ["#313695", "#abd9e9", "#fee090", "#a50026"],
                      ["0 dB (VV = VH)", "5 dB", "10 dB", "15 dB"])
# The same colours for the linear VV/VH ratio (1 .. 31.6 = 0 .. 15 dB) and for the Earth
# Engine recipe's ratio of dB values (VV_dB / VH_dB, typically 0.3 .. 1).
RATIO_LINEAR_RAMP = _ramp("vvvh_linear", [1.0, 3.1623, 10.0, 31.623],
                          ["#313695", "#abd9e9", "#fee090", "#a50026"],
                          ["1 (VV/VH, linear)", "3.16", "10", "31.6 (VV/VH, linear)"])
RATIO_OF_DB_RAMP = _ramp("vvvh_ratio_of_db", [0.25, 0.5, 0.75, 1.0],
                         ["#313695", "#abd9e9", "#fee090", "#a50026"])
# Valid-date counts of stack statistics (0 .. number of dates, set per run).
COUNT_COLOURS = ("#440154", "#3b528b", "#21918c", "#5ec962", "#fde725")

# The source band of the fused NDVI, loaded on top of it: Sentinel-2 pixels transparent,
# Sentinel-1-filled pixels in a 40 % opaque purple, a hue the NDVI ramp does not use.
FUSION_SOURCE_PALETTE = Palette("fusion_source", (
    (1, "#bdbdbd00", "Sentinel-2 (clear; transparent)"),
    (2, "#7b329466", "filled under cloud (model)")))
# Standard error of a fused NDVI fill (NDVI units): trusted (light) to doubtful (dark).
UNCERTAINTY_RAMP = _ramp("fusion_uncertainty", [0.0, 0.05, 0.1, 0.2, 0.3],
                         ["#ffffcc", "#a1dab4", "#41b6c4", "#2c7fb8", "#253494"],
                         ["0 (NDVI standard error)", "0.05", "0.1", "0.2",
                          "0.3 (NDVI standard error)"])
# Sea ice: both classes visible on a white canvas.
ICE_PALETTE = Palette("ice", ((0, "#08306b", "open water"), (1, "#6baed6", "ice")))

_HEADER = ("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
           '<qgis version="3.22.0" styleCategories="AllStyleCategories">\n  <pipe>\n')
_FOOTER = ('    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>\n'
           '    <huesaturation saturation="0" grayscaleMode="0" colorizeOn="0"/>\n'
           '    <rasterresampler maxOversampling="2"/>\n  </pipe>\n'
           "  <blendMode>0</blendMode>\n</qgis>\n")


def ramp_qml(ramp: Ramp, band: int = 1) -> str:
    """A QGIS single-band pseudocolour style for ``ramp``."""
    items = "\n".join(
        f'          <item alpha="255" value="{value!r}" color="{colour}" label={quoteattr(label)}/>'
        for value, colour, label in ramp.stops)
    return (_HEADER
            + f'    <rasterrenderer type="singlebandpseudocolor" band="{band}" opacity="1" '
            f'alphaBand="-1" classificationMin="{ramp.minimum!r}" '
            f'classificationMax="{ramp.maximum!r}" nodataColor="">\n'
            "      <rasterTransparency/>\n"
            "      <minMaxOrigin><limits>None</limits><extent>WholeRaster</extent>"
            "<statAccuracy>Estimated</statAccuracy><cumulativeCutLower>0.02</cumulativeCutLower>"
            "<cumulativeCutUpper>0.98</cumulativeCutUpper><stdDevFactor>2</stdDevFactor>"
            "</minMaxOrigin>\n"
            "      <rastershader>\n"
            f'        <colorrampshader colorRampType="INTERPOLATED" classificationMode="1" '
            f'clip="0" minimumValue="{ramp.minimum!r}" maximumValue="{ramp.maximum!r}" '
            'labelPrecision="4">\n'
            f"{items}\n        </colorrampshader>\n      </rastershader>\n"
            "    </rasterrenderer>\n" + _FOOTER)


def palette_qml(palette: Palette, band: int = 1) -> str:
    """A QGIS paletted (unique values) style for ``palette``."""
    entries = "\n".join(
        f'        <paletteEntry value="{int(value)}" color="{colour[:7]}" '
        f'alpha="{_alpha(colour)}" label={quoteattr(label)}/>'
        for value, colour, label in palette.classes)
    return (_HEADER
            + f'    <rasterrenderer type="paletted" band="{band}" opacity="1" alphaBand="-1" '
            'nodataColor="">\n      <rasterTransparency/>\n'
            f"      <colorPalette>\n{entries}\n      </colorPalette>\n"
            "    </rasterrenderer>\n" + _FOOTER)


def qml_for(style, band: int = 1) -> str:
    return palette_qml(style, band) if isinstance(style, Palette) else ramp_qml(style, band)


def _hex_rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.float64)


def _alpha(colour: str) -> int:
    """Opacity 0..255 of ``#rrggbb`` (opaque) or ``#rrggbbaa``."""
    return int(colour[7:9], 16) if len(colour) == 9 else 255


def colourize(values: np.ndarray, style, nodata_rgb: Sequence[int] = (0, 0, 0)) -> np.ndarray:
    """Render ``values`` through a Ramp (interpolated, clamped) or Palette to uint8 RGB (3, h, w)."""
    values = np.asarray(values, dtype=np.float64)
    rgb = np.empty((3,) + values.shape, dtype=np.float64)
    rgb[:] = np.asarray(nodata_rgb, dtype=np.float64)[:, None, None]
    valid = np.isfinite(values)
    if isinstance(style, Palette):
        for value, colour, _ in style.classes:
            hit = valid & (values == value)
            opacity = _alpha(colour) / 255.0  # over the background colour
            rgb[:, hit] = opacity * _hex_rgb(colour)[:, None] + (1 - opacity) * rgb[:, hit]
    else:
        xs = np.array([s[0] for s in style.stops])
        cols = np.stack([_hex_rgb(s[1]) for s in style.stops])
        for channel in range(3):
            rgb[channel, valid] = np.interp(values[valid], xs, cols[:, channel])
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def write_png(path: str, rgb: np.ndarray, alpha: Optional[np.ndarray] = None) -> str:
    """Write a (3, h, w) uint8 array (and optional alpha) as PNG through GDAL."""
    from osgeo import gdal

    bands = [rgb[i] for i in range(3)] + ([alpha.astype(np.uint8)] if alpha is not None else [])
    mem = gdal.GetDriverByName("MEM").Create("", rgb.shape[2], rgb.shape[1], len(bands),
                                             gdal.GDT_Byte)
    for i, plane in enumerate(bands, start=1):
        mem.GetRasterBand(i).WriteArray(plane)
    gdal.GetDriverByName("PNG").CreateCopy(path, mem)
    if os.path.exists(path + ".aux.xml"):
        os.remove(path + ".aux.xml")
    return path
