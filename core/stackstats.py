"""Per-pixel statistics over a stack of co-registered rasters (dates).

NoData (NaN) is ignored per pixel; pixels with fewer than ``min_valid`` valid
dates get NoData in every statistic (the valid count itself is always written).
The standard deviation is the population one (``ddof=0``, as ``numpy.nanstd``
by default); pass ``ddof=1`` for the sample standard deviation.

Blockwise across all dates: every block reads the same window of every date,
so memory is bounded by block size x number of dates, never by the raster size.
"""
import os
from typing import Dict, Sequence

import numpy as np

from .errors import S1S2Error
from .raster import BandSource, common_grid
from .streaming import DEFAULT_MEMORY_MB, stream
from .styles import COUNT_COLOURS, Ramp
from .writer import OutputRaster

MEDIAN, STD, MEAN, MIN, MAX, COUNT = "median", "std", "mean", "min", "max", "count"
STATISTICS = (MEDIAN, STD, MEAN, MIN, MAX, COUNT)
COUNT_NODATA = 65535


def nan_median(stack: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Median over axis 0 ignoring NaN, equal to ``numpy.nanmedian`` but vectorised.

    NaN is sorted last (as +inf), so the median of a pixel with ``c`` valid
    values is the mean of sorted positions ``(c-1)//2`` and ``c//2``.
    """
    ordered = np.where(np.isnan(stack), np.inf, stack)
    ordered.sort(axis=0)
    c = np.maximum(count, 1).astype(np.intp)[np.newaxis]
    low = np.take_along_axis(ordered, (c - 1) // 2, axis=0)[0]
    high = np.take_along_axis(ordered, c // 2, axis=0)[0]
    median = (low + high) / 2
    median[count == 0] = np.nan
    return median


def stack_statistics(stack: np.ndarray, statistics: Sequence[str] = (MEDIAN, STD),
                     min_valid: int = 1, ddof: int = 0) -> Dict[str, np.ndarray]:
    """Statistics over axis 0 of a (dates, rows, cols) array with NaN NoData.

    Returns ``{name: array}``: float64 values (NaN where the valid count is
    below ``min_valid``; std also NaN where count <= ddof) and the int count.
    """
    unknown = [s for s in statistics if s not in STATISTICS]
    if unknown:
        raise S1S2Error(f"Unknown statistic(s) {unknown}: use {', '.join(STATISTICS)}.")
    if min_valid < 1:
        raise S1S2Error(f"MIN_VALID must be at least 1, got {min_valid}.")
    stack = np.asarray(stack, dtype=np.float64)
    count = np.count_nonzero(~np.isnan(stack), axis=0)
    too_few = count < max(min_valid, 1)
    results = {}
    valid = ~np.isnan(stack)
    # Plain reductions, no nan-functions: their warnings (all-NaN slices) would need
    # warnings.catch_warnings, which is not thread-safe in the streaming pool.
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.where(valid, stack, 0.0).sum(axis=0)
        mean = total / count
        for name in statistics:
            if name == COUNT:
                results[name] = count
                continue
            if name == MEDIAN:
                value = nan_median(stack, count)
            elif name == STD:
                deviation = np.where(valid, stack - mean, 0.0)
                deviation *= deviation
                value = np.sqrt(deviation.sum(axis=0) / (count - ddof))
                value[count <= ddof] = np.nan
            elif name == MEAN:
                value = mean.copy()
            elif name == MIN:
                value = np.fmin.reduce(stack, axis=0)
            else:
                value = np.fmax.reduce(stack, axis=0)
            value[too_few] = np.nan
            results[name] = value
    return results


def stack_statistics_file(sources: Sequence[BandSource], outputs: Dict[str, str],
                          min_valid: int = 1, ddof: int = 0, progress=None, cancel=None,
                          memory_mb: float = DEFAULT_MEMORY_MB, **stream_options) -> Dict[str, str]:
    """Write one raster per statistic (``outputs = {statistic: path}``) over ``sources``.

    All sources must be on one grid (S1S2Error names the first that is not).
    Statistic rasters are float32 with NaN NoData; ``count`` is uint16.
    """
    if not sources:
        raise S1S2Error("INPUTS: give at least one raster.")
    if not outputs:
        raise S1S2Error("STATISTICS: choose at least one statistic.")
    if len(sources) >= COUNT_NODATA:
        raise S1S2Error(f"Too many inputs ({len(sources)}).")
    if min_valid > len(sources):
        raise S1S2Error(f"MIN_VALID ({min_valid}) is larger than the number of inputs "
                        f"({len(sources)}): every pixel would be NoData.")
    names = [name for name in STATISTICS if name in outputs]
    unknown = set(outputs) - set(STATISTICS)
    if unknown:
        raise S1S2Error(f"Unknown statistic(s) {sorted(unknown)}: use {', '.join(STATISTICS)}.")
    seen = {}
    for name in names:  # two statistics on one file: one of them would be lost silently
        target = os.path.realpath(outputs[name])
        if target in seen:
            raise S1S2Error(f"The {seen[target]} and {name} outputs must be different files "
                            f"(both are '{outputs[name]}').")
        seen[target] = name
    grid = common_grid(sources)
    described = "; ".join(f"{s.path} band {s.band}" for s in sources)
    specs = []
    for name in names:
        meta = {"algorithm": "s1s2:stackstatistics", "statistic": name,
                "inputs": described[:4000], "n_inputs": str(len(sources)),
                "min_valid": str(min_valid)}
        if name == STD:
            meta["ddof"] = str(ddof)
        if name == COUNT:
            specs.append(OutputRaster(outputs[name], bands=["Valid dates (count)"], dtype="uint16",
                                      nodata=COUNT_NODATA, metadata=meta, label="OUTPUT_COUNT"))
        else:
            specs.append(OutputRaster(outputs[name], bands=[name], metadata=meta,
                                      label=f"OUTPUT_{name.upper()}"))

    def block(*arrays):
        result = stack_statistics(np.stack(arrays), names, min_valid, ddof)
        return tuple(result[name] for name in names)

    # Per pixel: the float32 inputs, a float64 copy, a sorted copy and the outputs.
    scratch = 3.0 + 2.0 * len(names) / max(len(sources), 1)
    written = stream(block, sources, specs, grid=grid, progress=progress, cancel=cancel,
                     memory_mb=memory_mb, scratch=scratch, **stream_options)
    return dict(zip(names, written))


def value_range(path: str, band: int = 1):
    """(min, max) of a written raster from GDAL's approximate statistics, or None if empty."""
    from osgeo import gdal

    dataset = gdal.Open(path)
    try:
        stats = dataset.GetRasterBand(band).ComputeStatistics(True)
    except RuntimeError:
        return None
    finally:
        dataset = None  # noqa: F841
    aux = path + ".aux.xml"  # ComputeStatistics may leave a sidecar; keep outputs self-contained
    if os.path.exists(aux):
        os.remove(aux)
    low, high = stats[0], stats[1]
    if not (np.isfinite(low) and np.isfinite(high)):
        return None
    return (low, high) if high > low else (low, low + 1.0)


def grey_ramp(name: str, path: str):
    """A black-to-white Ramp over the value range of ``path`` (styles of arbitrary data)."""
    low, high = value_range(path) or (0.0, 1.0)
    return Ramp(name, ((low, "#000000", f"{low:.4g}"), (high, "#ffffff", f"{high:.4g}")))


def count_ramp(n_dates: int):
    """The valid-count style: 0 .. n_dates through COUNT_COLOURS."""
    values = np.linspace(0, max(n_dates, 1), len(COUNT_COLOURS))
    stops = tuple((float(v), c, f"{v:g}") for v, c in zip(values, COUNT_COLOURS))
    return Ramp("valid_count", stops)
