"""Sentinel-2 Scene Classification (SCL) cloud masks.

SCL classes (ESA L2A): 0 no data, 1 saturated/defective, 2 dark area/topographic
shadow, 3 cloud shadow, 4 vegetation, 5 not vegetated, 6 water, 7 unclassified,
8 cloud medium probability, 9 cloud high probability, 10 thin cirrus, 11 snow/ice.

SCL is categorical: it is brought onto the 10 m band grid with nearest-neighbour
resampling only (``core.raster.warped_to_grid(scl, grid, "near")``). The cloud
buffer is a distance buffer: a pixel is masked when its centre lies within
``buffer_px`` pixels (Euclidean, centre to centre) of a cloud pixel's centre.
It is computed block by block with a halo of ``buffer_px`` pixels, which makes
the result independent of the block size.
"""
import math
import re
from typing import Iterable, Tuple

import numpy as np
from osgeo import osr

from .errors import S1S2Error
from .raster import Grid

DEFAULT_CLOUD_CLASSES = (3, 8, 9, 10)       # cloud shadow, cloud medium/high, cirrus
SENTINEL_HUB_CLOUD_CLASSES = (7, 8, 9, 10)  # the Sentinel Hub data-fusion recipe
OPENEO_CLOUD_CLASSES = (8, 9)               # the openEO NDVI notebook
SCL_CLASSES = range(0, 12)
_EARTH_RADIUS_M = 6378137.0


def _class_number(value) -> str:
    """One class of a list as text; anything but a whole number is an S1S2Error."""
    if isinstance(value, str) and value.strip().isdigit():
        return value.strip()
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
            and math.isfinite(value) and float(value).is_integer():
        return str(int(value))
    raise S1S2Error(f"CLOUD_CLASSES: {value!r} is not an SCL class number; give whole numbers "
                    "0-11, e.g. 3,8,9,10.")


def parse_classes(text) -> Tuple[int, ...]:
    """SCL class numbers from text such as ``"3,8,9,10"``, ``"3 8-10"`` or ``"8;9"``.

    Separators: comma, semicolon, whitespace; ``a-b`` is an inclusive range.
    Empty text -> ``()`` (mask nothing). Anything else, or a class outside
    0..11, raises S1S2Error saying what was wrong.
    """
    if text is None:
        return ()
    if not isinstance(text, str):
        try:
            values = list(text)
        except TypeError:
            values = [text]
        text = ",".join(_class_number(v) for v in values)
    classes = []
    for token in re.split(r"[,;\s]+", text.strip()):
        if not token:
            continue
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", token)
        if match is None:
            raise S1S2Error(f"CLOUD_CLASSES: {token!r} is not an SCL class number; "
                            "give whole numbers 0-11 separated by commas, e.g. 3,8,9,10.")
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) else low
        if high < low:
            raise S1S2Error(f"CLOUD_CLASSES: the range {token!r} is reversed.")
        for value in range(low, high + 1):
            if value not in SCL_CLASSES:
                raise S1S2Error(f"CLOUD_CLASSES: {value} is not an SCL class (0-11).")
            if value not in classes:
                classes.append(value)
    return tuple(sorted(classes))


def pixel_size_m(grid: Grid) -> float:
    """Mean of the x and y pixel sizes in metres (geographic grids: at the grid centre)."""
    px, py = grid.pixel_size
    if grid.crs_wkt:
        srs = osr.SpatialReference()
        srs.ImportFromWkt(grid.crs_wkt)
        if srs.IsGeographic():
            xmin, ymin, xmax, ymax = grid.bounds
            lat = math.radians((ymin + ymax) / 2.0)
            metres_per_degree = math.pi / 180.0 * _EARTH_RADIUS_M
            return 0.5 * (px * metres_per_degree * math.cos(lat) + py * metres_per_degree)
        return 0.5 * (px * srs.GetLinearUnits() + py * srs.GetLinearUnits())
    return 0.5 * (px + py)


MAX_BUFFER_PIXELS = 1000  # 10 km on the 10 m grid


def buffer_pixels(buffer_m: float, grid: Grid) -> int:
    """A buffer in metres as a whole number of pixels of ``grid`` (rounded to nearest).

    E.g. 20 m on the 10 m grid -> 2 px, 25 m -> 3 px (half up), 4 m -> 0.
    """
    if buffer_m is None or buffer_m == 0:
        return 0
    if isinstance(buffer_m, bool) or not isinstance(buffer_m, (int, float, np.integer,
                                                               np.floating)):
        raise S1S2Error(f"CLOUD_BUFFER must be a number of metres, got {buffer_m!r}.")
    if buffer_m < 0 or not math.isfinite(buffer_m):
        raise S1S2Error(f"CLOUD_BUFFER must be >= 0 metres, got {buffer_m!r}.")
    pixels = int(math.floor(buffer_m / pixel_size_m(grid) + 0.5))
    # Refused before any block is padded with it: a buffer wider than the raster would mask
    # everything near a cloud and need blocks of absurd size.
    if pixels > MAX_BUFFER_PIXELS or pixels > max(grid.width, grid.height):
        raise S1S2Error(f"CLOUD_BUFFER: {buffer_m:g} m is {pixels} pixels; at most "
                        f"{min(MAX_BUFFER_PIXELS, max(grid.width, grid.height))} pixels "
                        "(the raster's size and the toolkit's limit) are accepted.")
    return pixels


def cloud_mask(scl_block: np.ndarray, classes: Iterable[int], buffer_px: int = 0) -> np.ndarray:
    """True where the SCL class is in ``classes`` or within ``buffer_px`` pixels of one.

    ``scl_block`` holds SCL class values (float with NaN NoData, as streamed);
    NaN is not cloud (the caller decides about NoData). Call it through the
    streaming layer with ``halo=buffer_px`` so blocks agree at their edges.
    """
    scl_block = np.asarray(scl_block)
    check_scl_values(scl_block)
    classes = np.asarray(tuple(classes), dtype=scl_block.dtype if scl_block.dtype.kind == "f"
                         else np.float64)
    cloud = np.isin(scl_block, classes)
    buffer_px = int(buffer_px)
    if buffer_px <= 0 or not cloud.any():
        return cloud
    from scipy import ndimage  # here, not at import: NDVI without SCL starts faster

    # Distance of every pixel to the nearest cloud pixel (exact Euclidean, O(n)).
    distance = ndimage.distance_transform_edt(~cloud)
    return distance <= buffer_px


def check_scl_values(values: np.ndarray, name: str = "SCL") -> None:
    """S1S2Error unless every valid value is an SCL class (a whole number 0-11): a
    reflectance band or an S1 layer given as SCL would otherwise mask nothing, silently."""
    values = np.asarray(values)
    with np.errstate(invalid="ignore"):
        bad = np.isfinite(values) & ((values < 0) | (values > 11) | (values != np.round(values)))
    if bad.any():
        example = values[bad].flat[0]
        raise S1S2Error(f"{name}: value {example:g} is not a Scene Classification class (whole "
                        "numbers 0-11); is this the SCL band of an L2A product?")


def check_scl_band(source) -> None:
    """The check of :func:`check_scl_values` on a sample of the band, before a run."""
    from .raster import sample_values
    check_scl_values(sample_values(source), source.name)
