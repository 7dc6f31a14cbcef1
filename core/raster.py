"""Raster inputs and pixel grids (GDAL only, no QGIS).

A :class:`BandSource` names one band of one GDAL-readable raster plus how its
NoData is to be recognised. A :class:`Grid` is the pixel grid of a raster
(CRS, geotransform, size); two inputs can be streamed together only when their
grids are equal.
"""
import math
import os
from dataclasses import dataclass, field
from typing import Optional, Sequence, Tuple

import numpy as np
from osgeo import gdal, osr

from .errors import S1S2Error

gdal.UseExceptions()

# Geotransform terms are compared with this relative tolerance: GDAL drivers
# round-trip doubles through text (e.g. GeoTIFF ASCII tags), so bit equality is
# too strict, while a millionth of a pixel is far below any real misalignment.
_GT_RTOL = 1e-9


@dataclass(frozen=True)
class Grid:
    """A pixel grid: CRS (WKT), GDAL geotransform and size in pixels."""

    crs_wkt: str
    geotransform: Tuple[float, float, float, float, float, float]
    width: int
    height: int

    @classmethod
    def of(cls, dataset: gdal.Dataset) -> "Grid":
        return cls(dataset.GetProjection() or "", tuple(dataset.GetGeoTransform()),
                   dataset.RasterXSize, dataset.RasterYSize)

    @classmethod
    def of_path(cls, path: str) -> "Grid":
        return cls.of(open_raster(path))

    @property
    def pixel_size(self) -> Tuple[float, float]:
        """(x, y) pixel size in CRS units, both positive."""
        gt = self.geotransform
        return math.hypot(gt[1], gt[4]), math.hypot(gt[2], gt[5])

    @property
    def bounds(self) -> Tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of a north-up grid in CRS units."""
        gt = self.geotransform
        x0, x1 = gt[0], gt[0] + gt[1] * self.width
        y0, y1 = gt[3], gt[3] + gt[5] * self.height
        return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)

    def same_crs(self, other: "Grid") -> bool:
        if self.crs_wkt == other.crs_wkt:
            return True
        if not self.crs_wkt or not other.crs_wkt:
            return False
        a, b = osr.SpatialReference(), osr.SpatialReference()
        a.ImportFromWkt(self.crs_wkt)
        b.ImportFromWkt(other.crs_wkt)
        return bool(a.IsSame(b))

    def mismatch(self, other: "Grid") -> Optional[str]:
        """Why ``other`` is not the same grid as this one, or None when it is."""
        if (self.width, self.height) != (other.width, other.height):
            return (f"size {other.width} x {other.height} px, expected "
                    f"{self.width} x {self.height} px")
        scale = max(abs(v) for v in self.geotransform[1:3] + self.geotransform[4:6])
        for a, b in zip(self.geotransform, other.geotransform):
            if abs(a - b) > _GT_RTOL * max(abs(a), abs(b), 1.0) and abs(a - b) > 1e-6 * scale:
                return (f"geotransform {tuple(other.geotransform)}, expected "
                        f"{tuple(self.geotransform)}")
        if not self.same_crs(other):
            return "a different CRS"
        return None


@dataclass(frozen=True)
class BandSource:
    """One band of a GDAL raster, read as floating point with NoData as NaN.

    ``nodata`` overrides the band's declared NoData value; ``zero_is_nodata``
    additionally treats 0 as NoData (S2 DN 0, S1 GRD border zeros). ``label``
    names the input in error messages (e.g. the Processing parameter).
    """

    path: str
    band: int = 1
    label: str = ""
    nodata: Optional[float] = None
    zero_is_nodata: bool = False
    extra_nodata: Tuple[float, ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        return self.label or os.path.basename(self.path) or self.path


def open_raster(path: str, label: str = "") -> gdal.Dataset:
    """Open a raster read-only or raise an S1S2Error naming it."""
    try:
        dataset = gdal.Open(path, gdal.GA_ReadOnly)
    except RuntimeError as exc:
        raise S1S2Error(f"{label or 'Input'}: cannot open '{path}' as a raster ({exc}).") from None
    if dataset is None:
        raise S1S2Error(f"{label or 'Input'}: cannot open '{path}' as a raster.")
    return dataset


def open_band(source: BandSource) -> Tuple[gdal.Dataset, gdal.Band]:
    """Open ``source`` and check that its band exists."""
    dataset = open_raster(source.path, source.name)
    if not 1 <= source.band <= dataset.RasterCount:
        raise S1S2Error(
            f"{source.name}: band {source.band} requested but '{source.path}' has "
            f"{dataset.RasterCount} band(s).")
    return dataset, dataset.GetRasterBand(source.band)


def nodata_values(source: BandSource, band: gdal.Band) -> Tuple[float, ...]:
    """All values of ``band`` that mean NoData for ``source``."""
    values = list(source.extra_nodata)
    declared = source.nodata if source.nodata is not None else band.GetNoDataValue()
    if declared is not None and not math.isnan(declared):
        values.append(float(declared))
    if source.zero_is_nodata:
        values.append(0.0)
    return tuple(dict.fromkeys(values))  # each value once: every one costs a pass per block


def common_grid(sources: Sequence[BandSource]) -> Grid:
    """The grid shared by all ``sources``; S1S2Error naming the first that differs."""
    if not sources:
        raise S1S2Error("No input raster given.")
    first = sources[0]
    grid = Grid.of(open_band(first)[0])
    for source in sources[1:]:
        other = Grid.of(open_band(source)[0])
        why = grid.mismatch(other)
        if why:
            raise S1S2Error(
                f"{source.name} is not on the grid of {first.name}: it has {why}. "
                "Collocate it first (S1S2 Toolkit > Collocate onto a target grid).")
    return grid


def warped_to_grid(source: BandSource, grid: Grid, resampling: str = "near") -> BandSource:
    """``source`` resampled onto ``grid`` as a virtual (VRT) raster, computed on read.

    Used for categorical rasters (SCL at 20 m onto a 10 m grid: ``near`` only)
    and for inputs that are merely offset. Returns a BandSource on the VRT; the
    VRT keeps the source's NoData. The VRT lives in ``/vsimem`` and is small.
    """
    dataset, band = open_band(source)
    if Grid.of(dataset).mismatch(grid) is None:
        return source
    nodata = nodata_values(source, band)
    xmin, ymin, xmax, ymax = grid.bounds
    vrt_path = f"/vsimem/s1s2_warp_{abs(hash((source, grid)))}.vrt"
    if dataset.RasterCount != 1:
        # GDAL < 3.7 (Debian 12: 3.6) has no srcBands in Warp: select the band by a VRT.
        dataset = gdal.Translate(vrt_path[:-4] + "_band.vrt", dataset, format="VRT",
                                 bandList=[source.band])
    options = gdal.WarpOptions(
        format="VRT", outputBounds=(xmin, ymin, xmax, ymax), width=grid.width,
        height=grid.height, dstSRS=grid.crs_wkt or None, resampleAlg=resampling,
        srcNodata=nodata[0] if nodata else None,
        dstNodata=nodata[0] if nodata else None)
    try:
        out = gdal.Warp(vrt_path, dataset, options=options)
    except RuntimeError as exc:
        raise S1S2Error(f"{source.name}: cannot resample onto the target grid ({exc}).") from None
    out = None  # noqa: F841 - flush the VRT
    return BandSource(vrt_path, 1, source.name, source.nodata, source.zero_is_nodata,
                      source.extra_nodata)


def check_distinct(first: BandSource, second: BandSource) -> None:
    """S1S2Error when two inputs that must be different bands are the same band of one file
    (RED = NIR gives NDVI 0 everywhere, VV = VH a ratio of 1: plausible-looking nonsense)."""
    same_file = os.path.exists(first.path) and os.path.exists(second.path) and \
        os.path.realpath(first.path) == os.path.realpath(second.path)
    if (same_file or first.path == second.path) and first.band == second.band:
        raise S1S2Error(f"{first.name} and {second.name} are the same band (band {first.band} "
                        f"of '{first.path}'); give the two different bands.")


def sample_values(source: BandSource, size: int = 256) -> np.ndarray:
    """Valid values of a sample of a band: declared NoData, NaN and, for ``zero_is_nodata``,
    0 removed. For checks of what a band holds before a run.

    A band with overviews (JPEG 2000 resolution levels...) or no larger than
    ``size`` x ``size`` is read decimated to at most that size (nearest); a larger one as
    whole blocks of its own tiling at a lattice of up to 4 x 4 places spread over it: a
    decimated read of a file without overviews decompresses every tile (0.1 s per 16 Mpx
    band here, more than a small run's computing), these read a few tiles."""
    dataset, band = open_band(source)
    width, height = dataset.RasterXSize, dataset.RasterYSize
    block_x, block_y = band.GetBlockSize()
    lattice = _block_lattice(width, height, block_x, block_y, size)
    if band.GetOverviewCount() or lattice is None:
        data = band.ReadAsArray(0, 0, width, height, buf_xsize=min(size, width),
                                buf_ysize=min(size, height), buf_type=gdal.GDT_Float64)
    else:
        data = np.concatenate([band.ReadAsArray(x, y, w, h, buf_type=gdal.GDT_Float64).ravel()
                               for x, y, w, h in lattice])
    valid = np.isfinite(data)
    for value in nodata_values(source, band):
        valid &= data != value
    return data[valid]


def _block_lattice(width: int, height: int, block_x: int, block_y: int, size: int):
    """Windows (x, y, w, h) of up to 4 x 4 whole blocks spread over the raster, or None when
    reading blocks would not be cheaper than the decimated read (a small raster, huge
    blocks)."""
    if width * height <= size * size or block_x * block_y > size * size:
        return None
    columns, rows = -(-width // block_x), -(-height // block_y)
    picks_x = sorted({round(i * (columns - 1) / 3) for i in range(4)})
    picks_y = sorted({round(j * (rows - 1) / 3) for j in range(4)})
    return [(bx * block_x, by * block_y, min(block_x, width - bx * block_x),
             min(block_y, height - by * block_y)) for by in picks_y for bx in picks_x]


def require_band_source(value, name: str) -> BandSource:
    """``value`` if it is a BandSource, else an S1S2Error naming the parameter (the core's
    file functions take BandSource(path, band), not paths or None)."""
    if not isinstance(value, BandSource):
        raise S1S2Error(f"{name}: expected a BandSource (path and band), got {value!r}.")
    return value
