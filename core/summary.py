"""Result summaries: valid pixels, NoData and min / mean / max / std of an output band.

From the statistics the writer stored in the file (:mod:`.bandstats`) when present;
otherwise (a file written by ``gdal.Warp`` or another tool) read block by block (the
output's own blocks), so a full scene needs little memory.
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np
from osgeo import gdal

from .bandstats import Statistics

gdal.UseExceptions()


@dataclass(frozen=True)
class BandSummary:
    """Counts in pixels; statistics in the band's units (None without valid pixels)."""

    width: int
    height: int
    valid: int
    nodata: int
    minimum: Optional[float]
    mean: Optional[float]
    maximum: Optional[float]
    units: str
    description: str
    std: Optional[float] = None  # population standard deviation, when known

    @property
    def total(self) -> int:
        return self.width * self.height

    @property
    def valid_percent(self) -> float:
        return 100.0 * self.valid / self.total if self.total else 0.0

    def text(self) -> str:
        """One line for the log, e.g. ``NDVI: 4096 x 4096 px, valid 15 000 000 (89.4 %),
        NoData 1 777 216; min -0.31, mean 0.52, max 0.97, std 0.2 (NDVI)``."""
        name = self.description or "band 1"
        line = (f"{name}: {self.width} x {self.height} px, valid {self.valid} "
                f"({self.valid_percent:.1f} %), NoData {self.nodata}")
        if self.valid:
            line += (f"; min {self.minimum:.4g}, mean {self.mean:.4g}, max {self.maximum:.4g}")
            if self.std is not None:
                line += f", std {self.std:.4g}"
        if self.units:
            line += f" ({self.units})"
        return line


def summarise_band(path: str, band: int = 1) -> BandSummary:
    """Valid / NoData pixel counts and min, mean, max (std when stored) of one band of a
    raster file.

    NoData: the declared NoData value, and NaN (and +-inf) for float bands.
    """
    dataset = gdal.Open(path)
    raster = dataset.GetRasterBand(band)
    width, height = dataset.RasterXSize, dataset.RasterYSize
    units = raster.GetUnitType() or ""
    description = raster.GetDescription() or ""
    stats = Statistics.from_metadata(raster.GetMetadata() or {})
    if stats is None:
        stats = _read_statistics(dataset, raster)
    dataset = None
    return BandSummary(width, height, stats.valid, width * height - stats.valid, stats.minimum,
                       stats.mean, stats.maximum, units, description, stats.std)


def _read_statistics(dataset, raster) -> Statistics:
    """Valid count, min, mean, max of a band read in strips of about 1 Mpx."""
    nodata = raster.GetNoDataValue()
    block_x, block_y = raster.GetBlockSize()
    rows = max(block_y, (1 << 20) // max(dataset.RasterXSize, 1))
    valid = 0
    total_sum = 0.0
    low, high = np.inf, -np.inf
    for y0 in range(0, dataset.RasterYSize, rows):
        height = min(rows, dataset.RasterYSize - y0)
        values = raster.ReadAsArray(0, y0, dataset.RasterXSize, height).astype(np.float64)
        good = np.isfinite(values)
        if nodata is not None and not np.isnan(nodata):
            good &= values != nodata
        picked = values[good]
        if picked.size:
            valid += picked.size
            total_sum += float(picked.sum())
            low, high = min(low, float(picked.min())), max(high, float(picked.max()))
    if not valid:
        return Statistics(0)
    return Statistics(valid, low, total_sum / valid, high)
