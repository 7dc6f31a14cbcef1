"""Collocation of a georeferenced raster onto an exact target pixel grid (GDAL warp).

The output has exactly the target's CRS, geotransform, width and height: the
output dataset is created from the :class:`~.raster.Grid` itself and GDAL
warps *into* it, so no extent/resolution round trip can shift it by an ulp.

Inputs: any GDAL raster with a geotransform (any CRS), with ground control
points only (S1 GRD measurement TIFFs, SAFE products: polynomial or thin plate
spline transformer) or with GDAL geolocation arrays. Conventions (SPEC,
"Collocation S1 -> S2 grid"):

* resampling ``nearest | bilinear | cubic | average``; categorical rasters
  (SCL, masks, class rasters) are always resampled with ``nearest``, with a
  warning through the ``warn`` callback;
* backscatter in dB is interpolated in linear power: a VRT pixel function
  (``dB2pow``) converts the source on the fly, the warp interpolates linear
  power and a streamed post pass converts back with ``10*log10(x)`` (``x <= 0``
  -> NoData). ``nearest`` needs no conversion (it commutes with it);
* every source NoData value (declared, ``BandSource`` overrides, zero when
  ``zero_is_nodata``, NaN for float rasters) is honoured, destination NoData is
  NaN, output float32, tiled DEFLATE GeoTIFF written atomically (temporary file
  in the target folder, renamed on success).

Memory is bounded by GDAL's warp memory limit (``memory_mb``) and the
streaming layer; nothing reads a whole raster.
"""
import math
import os
import re
import uuid
from typing import Callable, List, Optional, Sequence, Union
from xml.sax.saxutils import escape

import numpy as np
from osgeo import gdal

from . import engine as engines
from .errors import Cancelled, S1S2Error
from .raster import BandSource, Grid, nodata_values, open_raster
from .streaming import DEFAULT_MEMORY_MB, DEFAULT_THREADS, stream
from .units import band_holds_db, to_db
from .writer import AtomicGeoTiff, OutputRaster, check_free_space, check_output_path

gdal.UseExceptions()

NEAREST, BILINEAR, CUBIC, AVERAGE = "nearest", "bilinear", "cubic", "average"
RESAMPLING_METHODS = (NEAREST, BILINEAR, CUBIC, AVERAGE)
_GDAL_RESAMPLING = {NEAREST: "near", BILINEAR: "bilinear", CUBIC: "cubic", AVERAGE: "average"}

GCP_AUTO, GCP_POLYNOMIAL, GCP_TPS = "auto", "polynomial", "tps"
# Thin plate spline follows the S1 geolocation grid (tens of tie points) exactly at
# every GCP; a global polynomial does not. Below this many GCPs TPS is not worth it.
_TPS_MIN_GCPS = 10

# Bilinear/cubic keep the plain kernel up to this many source pixels per target pixel on
# every GDAL release (see _kernel_options).
_PLAIN_KERNEL_MAX_SCALE = 2.0
# GDAL's approximate transformer (default 0.125 px) moves bilinear values by up to 1 dB on
# speckle; at 0.005 px they stay within 0.01 dB (99th percentile) of the exact transform, at no
# measurable cost (S1 chip onto UTM 10 m, tests/test_collocate_reference.py).
_ERROR_THRESHOLD = 0.005

# Names that mark a categorical raster (SCL, masks, labels, land cover classes).
_CATEGORICAL_NAME = re.compile(
    r"(^|[^a-z])(scl|mask|masks|clm|label|labels|class|classes|classification|landcover|"
    r"lulc|qa)([^a-z]|$)", re.IGNORECASE)

Progress = Optional[Callable[[float], None]]
Cancel = Optional[Callable[[], bool]]
Warn = Optional[Callable[[str], None]]
SourceLike = Union[BandSource, str, Sequence[BandSource]]


# -- inputs ---------------------------------------------------------------------------
def _as_sources(source: SourceLike, bands: Optional[Sequence[int]]) -> List[BandSource]:
    """BandSources of one raster from a BandSource, a list of them or a path (+ bands)."""
    if isinstance(source, BandSource):
        sources = [source]
    elif isinstance(source, str):
        dataset = open_raster(source, "INPUT")
        numbers = list(bands) if bands else list(range(1, dataset.RasterCount + 1))
        sources = [BandSource(source, b, "INPUT") for b in numbers]
    else:
        sources = list(source)
    if not sources:
        raise S1S2Error("INPUT: no band to collocate.")
    if len({s.path for s in sources}) != 1:
        raise S1S2Error("INPUT: all bands to collocate must come from one raster.")
    dataset = open_raster(sources[0].path, sources[0].name)
    for s in sources:
        if not 1 <= s.band <= dataset.RasterCount:
            raise S1S2Error(f"{s.name}: band {s.band} requested but '{s.path}' has "
                            f"{dataset.RasterCount} band(s).")
    return sources


def _as_grid(target_grid: Union[Grid, str]) -> Grid:
    grid = Grid.of_path(target_grid) if isinstance(target_grid, str) else target_grid
    if not grid.crs_wkt:
        raise S1S2Error("TARGET: the target raster has no coordinate reference system.")
    if grid.width <= 0 or grid.height <= 0:
        raise S1S2Error("TARGET: the target grid is empty.")
    return grid


def georeferencing(dataset: gdal.Dataset) -> str:
    """'geotransform', 'gcps', 'geolocation' or '' for a raster without georeferencing."""
    if dataset.GetGeoTransform(can_return_null=True) is not None:
        return "geotransform"
    if dataset.GetGCPCount() > 0:
        return "gcps"
    if dataset.GetMetadata("GEOLOCATION"):
        return "geolocation"
    return ""


def is_categorical(dataset: gdal.Dataset, band_number: int) -> bool:
    """A class raster: colour table, attribute table, or a class-like band/file name."""
    band = dataset.GetRasterBand(band_number)
    if band.GetColorTable() is not None or band.GetDefaultRAT() is not None:
        return True
    if band.DataType in (gdal.GDT_Float32, gdal.GDT_Float64):
        return False
    names = [band.GetDescription() or "", os.path.basename(dataset.GetDescription() or "")]
    return any(_CATEGORICAL_NAME.search(os.path.splitext(n)[0]) for n in names)


def looks_like_db(dataset: gdal.Dataset, band_number: int) -> bool:
    """Backscatter in dB: unit 'dB', or mostly negative values (linear power is never
    negative; a few negatives from thermal-noise removal do not make a band dB)."""
    try:
        return band_holds_db(dataset, dataset.GetRasterBand(band_number))
    except RuntimeError:
        return False


def _is_float(band: gdal.Band) -> bool:
    return band.DataType in (gdal.GDT_Float32, gdal.GDT_Float64)


def _band_nodata(source: BandSource, band: gdal.Band) -> List[float]:
    """All NoData values of one band; NaN is NoData in every float raster."""
    values = list(dict.fromkeys(nodata_values(source, band)))
    if _is_float(band) and not any(math.isnan(v) for v in values):
        values.append(math.nan)
    return values


# -- VRT building ---------------------------------------------------------------------
def _fmt(value: float) -> str:
    return "nan" if math.isnan(value) else repr(float(value))


def _vrt_path(tag: str) -> str:
    return f"/vsimem/s1s2_collocate_{tag}_{uuid.uuid4().hex}.vrt"


def _empty_vrt_like(dataset: gdal.Dataset, path: str) -> gdal.Dataset:
    """A band-less VRT with the georeferencing (GT, GCPs or geolocation) of ``dataset``."""
    vrt = gdal.GetDriverByName("VRT").Create(path, dataset.RasterXSize, dataset.RasterYSize, 0)
    gt = dataset.GetGeoTransform(can_return_null=True)
    if gt is not None:
        vrt.SetGeoTransform(gt)
        if dataset.GetProjection():
            vrt.SetProjection(dataset.GetProjection())
    elif dataset.GetGCPCount():
        vrt.SetGCPs(dataset.GetGCPs(), dataset.GetGCPProjection())
    geolocation = dataset.GetMetadata("GEOLOCATION")
    if geolocation:
        vrt.SetMetadata(geolocation, "GEOLOCATION")
    return vrt


def _source_xml(path: str, band: int, nodata: Optional[float]) -> str:
    kind = "ComplexSource" if nodata is not None else "SimpleSource"
    nodata_xml = f"<NODATA>{_fmt(nodata)}</NODATA>" if nodata is not None else ""
    return (f"<{kind}><SourceFilename relativeToVRT=\"0\">{escape(path)}</SourceFilename>"
            f"<SourceBand>{band}</SourceBand>{nodata_xml}</{kind}>")


def _add_vrt_band(vrt: gdal.Dataset, path: str, band: int, data_type: int,
                  skip_value: Optional[float], nodata: Optional[float],
                  pixel_function: Optional[str] = None) -> None:
    """One VRT band reading ``path`` band ``band``; pixels equal to ``skip_value`` become
    ``nodata`` (GDAL fills pixels a ComplexSource skips with the band's NoData)."""
    options = []
    if pixel_function:
        options = ["subClass=VRTDerivedRasterBand", f"PixelFunctionType={pixel_function}",
                   "SourceTransferType=Float64"]
    vrt.AddBand(data_type, options)
    out = vrt.GetRasterBand(vrt.RasterCount)
    if nodata is not None:
        out.SetNoDataValue(nodata)
    out.SetMetadataItem("source_0", _source_xml(path, band, skip_value), "new_vrt_sources")


class _Prepared:
    """The raster GDAL warps: the source itself, or VRTs that unify NoData / undo dB."""

    def __init__(self, sources: List[BandSource], db_to_linear: bool):
        self.vsimem: List[str] = []
        first = sources[0]
        dataset = open_raster(first.path, first.name)
        self.kind = georeferencing(dataset)
        if not self.kind:
            raise S1S2Error(f"{first.name}: '{first.path}' has no georeferencing (no "
                            "geotransform, ground control points or geolocation arrays).")
        bands = [dataset.GetRasterBand(s.band) for s in sources]
        chains = [_band_nodata(s, b) for s, b in zip(sources, bands)]
        self.band_numbers = [s.band for s in sources]
        self.path = self.source_path = first.path
        self.dataset = dataset
        self.nodata = [c[0] if c else None for c in chains]
        all_bands = self.band_numbers == list(range(1, dataset.RasterCount + 1))
        if not db_to_linear and all_bands and all(len(c) <= 1 for c in chains):
            return
        # Level k maps the k-th extra NoData value of each band onto its first one
        # (level 0 only selects the bands: GDAL 3.6's warp has no band selection).
        numbers = list(self.band_numbers)
        path = first.path
        types = [b.DataType for b in bands]
        levels = max(len(c) for c in chains)
        first_level = 0 if not all_bands and levels <= 1 and not db_to_linear else 1
        for level in range(first_level, levels):
            vrt_path = _vrt_path("nodata")
            vrt = _empty_vrt_like(dataset, vrt_path)
            for i, chain in enumerate(chains):
                skip = chain[level] if 0 < level < len(chain) else None
                _add_vrt_band(vrt, path, numbers[i], types[i], skip, chain[0])
            vrt = None  # noqa: F841 - flush
            self.vsimem.append(vrt_path)
            path, numbers = vrt_path, list(range(1, len(chains) + 1))
        if db_to_linear:
            vrt_path = _vrt_path("linear")
            vrt = _empty_vrt_like(dataset, vrt_path)
            for i, chain in enumerate(chains):
                skip = chain[0] if chain and not math.isnan(chain[0]) else None
                _add_vrt_band(vrt, path, numbers[i], gdal.GDT_Float32, skip, math.nan, "dB2pow")
            vrt = None  # noqa: F841
            self.vsimem.append(vrt_path)
            path, numbers = vrt_path, list(range(1, len(chains) + 1))
            self.nodata = [math.nan] * len(chains)
        self.path, self.band_numbers = path, numbers
        self.dataset = gdal.Open(path)

    def close(self) -> None:
        self.dataset = None
        for path in self.vsimem:
            gdal.Unlink(path)
        self.vsimem = []


def _transformer_options(kind: str, dataset: gdal.Dataset, gcp_transform: str,
                         polynomial_order: Optional[int]) -> dict:
    """gdal.WarpOptions keywords choosing the source transformer."""
    if kind == "gcps":
        method = gcp_transform
        if method == GCP_AUTO:
            method = GCP_TPS if dataset.GetGCPCount() >= _TPS_MIN_GCPS else GCP_POLYNOMIAL
        if method == GCP_TPS:
            return {"tps": True}
        if method != GCP_POLYNOMIAL:
            raise S1S2Error(f"Unknown GCP transformer {gcp_transform!r}: use "
                            f"{GCP_AUTO!r}, {GCP_POLYNOMIAL!r} or {GCP_TPS!r}.")
        return {"polynomialOrder": polynomial_order} if polynomial_order else {}
    if kind == "geolocation":
        return {"geoloc": True}
    return {}


def _transformer_list(kind: str, options: dict) -> List[str]:
    if options.get("tps"):
        return ["METHOD=GCP_TPS"]
    if options.get("geoloc"):
        return ["METHOD=GEOLOC_ARRAY"]
    if kind == "gcps":
        order = options.get("polynomialOrder")
        return ["METHOD=GCP_POLYNOMIAL"] + ([f"MAX_GCP_ORDER={order}"] if order else [])
    return []


def _check_overlap(prepared: _Prepared, grid: Grid, transformer_options: List[str],
                   label: str, target_label: Optional[str] = None) -> None:
    """S1S2Error when the source footprint misses the target grid (checked before writing).

    Source pixels on a dense border and interior lattice are transformed into target
    pixel coordinates; their bounding box must meet the target. Conservative: a
    footprint whose box touches the target passes (the warp then gives NoData).
    """
    target = gdal.GetDriverByName("MEM").Create("", grid.width, grid.height, 0)
    target.SetGeoTransform(grid.geotransform)
    target.SetProjection(grid.crs_wkt)
    try:
        transformer = gdal.Transformer(prepared.dataset, target, transformer_options)
    except RuntimeError as exc:
        raise S1S2Error(f"{label}: cannot relate its georeferencing to the target CRS "
                        f"({exc}).") from None
    w, h = prepared.dataset.RasterXSize, prepared.dataset.RasterYSize
    n = 33
    xs, ys = np.meshgrid(np.linspace(0, w, n), np.linspace(0, h, n))
    points = np.column_stack([xs.ravel(), ys.ravel()])
    out, ok = transformer.TransformPoints(0, points.tolist())
    out = np.asarray(out, dtype=np.float64)[:, :2]
    good = np.asarray(ok, dtype=bool) & np.isfinite(out).all(axis=1)
    if good.any():
        x0, y0 = out[good].min(axis=0)
        x1, y1 = out[good].max(axis=0)
        if x1 >= 0 and y1 >= 0 and x0 <= grid.width and y0 <= grid.height:
            return
    if target_label is None:
        raise S1S2Error(f"{label} does not overlap the target grid: nothing to collocate. "
                        f"Check that {label} covers the area of the target grid.")
    raise S1S2Error(f"{label} does not overlap the grid of {target_label}: nothing to "
                    f"collocate. Check that {label} and {target_label} cover the same area.")


def _source_pixels_per_target_pixel(prepared: _Prepared, grid: Grid, transformer: dict):
    """(along target x, along target y) at the target's centre; None if it cannot be told."""
    target = gdal.GetDriverByName("MEM").Create("", grid.width, grid.height, 0)
    target.SetGeoTransform(grid.geotransform)
    target.SetProjection(grid.crs_wkt)
    try:
        to_source = gdal.Transformer(prepared.dataset, target,
                                     _transformer_list(prepared.kind, transformer))
    except RuntimeError:
        return None
    x, y = grid.width / 2, grid.height / 2
    points, ok = to_source.TransformPoints(1, [(x, y), (x + 1, y), (x, y + 1)])
    if not all(ok):
        return None
    (u, v), (ux, vx), (uy, vy) = [point[:2] for point in points]
    scale = (math.hypot(ux - u, vx - v), math.hypot(uy - u, vy - v))
    return scale if all(math.isfinite(s) for s in scale) else None


def _kernel_options(prepared: _Prepared, grid: Grid, resampling: str, transformer: dict):
    """Warp options that make bilinear and cubic the same on every GDAL release.

    GDAL widens these kernels when it estimates the target to be coarser than the source, and
    both the estimate and the threshold changed across releases (3.13 keeps the 4-sample
    kernel up to 2x downsampling, 3.6-3.12 widened it from 1.05x): the same S1 chip onto a
    10 m UTM grid differed by a median 0.08 dB between GDAL 3.6 and 3.13. Up to
    ``_PLAIN_KERNEL_MAX_SCALE`` source pixels per target pixel the plain kernel is pinned
    (XSCALE=YSCALE=1); beyond, GDAL's anti-aliased kernel is kept.
    """
    if resampling not in (BILINEAR, CUBIC):
        return []
    scale = _source_pixels_per_target_pixel(prepared, grid, transformer)
    if scale is None or max(scale) > _PLAIN_KERNEL_MAX_SCALE:
        return []
    return ["XSCALE=1", "YSCALE=1"]


def _warp_options(prepared: _Prepared, grid: Grid, resampling: str, transformer: dict,
                  memory_mb: float, threads: int, callback=None, multithread=False,
                  **extra) -> gdal.WarpOptions:
    nodata = prepared.nodata
    src_nodata = None
    if any(v is not None for v in nodata):
        # One value per band; a band without NoData gets an impossible-to-hit NaN.
        src_nodata = " ".join(_fmt(v if v is not None else math.nan) for v in nodata)
    return gdal.WarpOptions(
        resampleAlg=_GDAL_RESAMPLING[resampling], srcNodata=src_nodata, dstNodata=math.nan,
        # -multi (I/O on a second thread) only where the caller checks GDALWarp's return
        # code: GDAL 3.6 does not raise errors of that thread (a damaged input block), it
        # only returns failure (see _warp_to_file).
        workingType=gdal.GDT_Float32, multithread=multithread,
        warpMemoryLimit=memory_mb, errorThreshold=_ERROR_THRESHOLD,
        warpOptions=[f"NUM_THREADS={max(1, threads)}", "INIT_DEST=NO_DATA",
                     "UNIFIED_SRC_NODATA=NO"] + _kernel_options(prepared, grid, resampling,
                                                                transformer),
        callback=callback, **transformer, **extra)


def _resolve_resampling(sources: List[BandSource], dataset: gdal.Dataset, resampling: str,
                        categorical: Optional[bool], warn: Warn) -> str:
    resampling = (resampling or BILINEAR).lower()
    if resampling == "near":
        resampling = NEAREST
    if resampling not in RESAMPLING_METHODS:
        raise S1S2Error(f"Unknown resampling {resampling!r}: use one of "
                        f"{', '.join(RESAMPLING_METHODS)}.")
    if categorical is None:
        categorical = any(is_categorical(dataset, s.band) for s in sources)
    if categorical and resampling != NEAREST:
        if warn:
            warn(f"{sources[0].name} is categorical (classes or mask): resampled with nearest "
                 f"neighbour instead of {resampling}, so no invented class values appear.")
        resampling = NEAREST
    return resampling


def _resolve_db(sources: List[BandSource], dataset: gdal.Dataset, resampling: str,
                linear_units, categorical: bool) -> bool:
    """Whether to interpolate in linear power (dB source, interpolating method)."""
    if resampling == NEAREST or categorical or linear_units is False or linear_units is None:
        return False
    if linear_units == "auto":
        return all(looks_like_db(dataset, s.band) for s in sources)
    return bool(linear_units)


def _band_names(sources: List[BandSource], dataset: gdal.Dataset) -> List[str]:
    stem = os.path.splitext(os.path.basename(sources[0].path))[0] or "band"
    names = []
    for s in sources:
        description = dataset.GetRasterBand(s.band).GetDescription()
        names.append(description or (stem if len(sources) == 1 else f"{stem}_band{s.band}"))
    return names


# -- public API -----------------------------------------------------------------------
def collocated_vrt(source: SourceLike, target_grid: Union[Grid, str],
                   resampling: str = BILINEAR, db_input: bool = False,
                   bands: Optional[Sequence[int]] = None, categorical: Optional[bool] = None,
                   gcp_transform: str = GCP_AUTO, polynomial_order: Optional[int] = None,
                   warn: Warn = None, memory_mb: float = DEFAULT_MEMORY_MB,
                   threads: int = DEFAULT_THREADS, target_label: Optional[str] = None) -> str:
    """A virtual raster (VRT in ``/vsimem``) of ``source`` warped onto ``target_grid``.

    ``collocated_vrt(source, target_grid, resampling="bilinear", db_input=False)
    -> str``: a GDAL dataset name (open it with GDAL or stream it with
    ``BandSource(path, band)``), computed on read, nothing written to disk. Its
    grid equals ``target_grid`` exactly (CRS, geotransform to the last digit,
    width, height); band i is the i-th requested band, float32, NoData NaN.

    ``source``: a :class:`BandSource`, a list of BandSources of one raster, or a
    path (``bands``: 1-based band numbers, default all). ``db_input=True``: the
    source is backscatter in dB, interpolated in linear power; **the VRT then
    holds linear power** (convert blocks with :func:`core.units.to_db` if dB is
    needed). Categorical sources get ``nearest`` (warning through ``warn``).
    The caller may ``gdal.Unlink`` the path when done; it is small either way.
    Raises S1S2Error when the source does not overlap the target (``target_label``: the
    parameter whose grid the target is, for that message).
    """
    sources = _as_sources(source, bands)
    grid = _as_grid(target_grid)
    dataset = open_raster(sources[0].path, sources[0].name)
    if categorical is None:
        categorical = any(is_categorical(dataset, s.band) for s in sources)
    resampling = _resolve_resampling(sources, dataset, resampling, categorical, warn)
    db = bool(db_input) and resampling != NEAREST and not categorical
    prepared = _Prepared(sources, db)
    transformer = _transformer_options(prepared.kind, prepared.dataset, gcp_transform,
                                       polynomial_order)
    _check_overlap(prepared, grid, _transformer_list(prepared.kind, transformer),
                   sources[0].name, target_label)
    return _warped_vrt(prepared, grid, resampling, transformer, memory_mb, threads,
                       _band_names(sources, dataset), "linear power" if db else "")


def _warped_vrt(prepared: _Prepared, grid: Grid, resampling: str, transformer: dict,
                memory_mb: float, threads: int, names: List[str], units: str) -> str:
    """gdal.Warp to a VRT, then pin the VRT's grid to ``grid`` bit for bit."""
    path = _vrt_path("warped")
    gt = grid.geotransform
    xmin, ymin, xmax, ymax = grid.bounds
    options = _warp_options(prepared, grid, resampling, transformer, memory_mb, threads,
                            format="VRT", outputType=gdal.GDT_Float32, dstSRS=grid.crs_wkt,
                            outputBounds=(xmin, ymin, xmax, ymax), width=grid.width,
                            height=grid.height)
    try:
        gdal.Warp(path, prepared.dataset, options=options)
    except RuntimeError as exc:
        raise S1S2Error(f"Cannot warp onto the target grid ({exc}).") from None
    # The warped VRT derives its geotransform from bounds / size (rounding may move
    # the last digit) and is north-up: write the target's own geotransform into the
    # dataset and into the warp transformer (GDAL reads both from the XML).
    text = gdal.VSIFOpenL(path, "rb")
    size = gdal.VSIStatL(path).size
    xml = gdal.VSIFReadL(1, size, text).decode("utf-8")
    gdal.VSIFCloseL(text)
    inverse = gdal.InvGeoTransform(gt)
    if inverse is None:
        raise S1S2Error("TARGET: its geotransform is not invertible.")
    gt_text = ", ".join(repr(float(v)) for v in gt)
    inv_text = ", ".join(repr(float(v)) for v in inverse)
    xml = re.sub(r"<GeoTransform>[^<]*</GeoTransform>", f"<GeoTransform>{gt_text}</GeoTransform>",
                 xml, count=1)
    xml = re.sub(r"<DstGeoTransform>[^<]*</DstGeoTransform>",
                 f"<DstGeoTransform>{gt_text}</DstGeoTransform>", xml)
    xml = re.sub(r"<DstInvGeoTransform>[^<]*</DstInvGeoTransform>",
                 f"<DstInvGeoTransform>{inv_text}</DstInvGeoTransform>", xml)
    # Warp strips as wide as the streaming layer reads them (256-row multiples): fewer,
    # larger warp chunks keep the warper's threads busy.
    xml = re.sub(r"<BlockXSize>\d+</BlockXSize>",
                 f"<BlockXSize>{min(grid.width, 4096)}</BlockXSize>", xml, count=1)
    xml = re.sub(r"<BlockYSize>\d+</BlockYSize>", "<BlockYSize>256</BlockYSize>", xml, count=1)
    gdal.FileFromMemBuffer(path, xml.encode("utf-8"))
    dataset = gdal.Open(path, gdal.GA_Update)
    for i, name in enumerate(names, start=1):
        band = dataset.GetRasterBand(i)
        band.SetDescription(name)
        if units:
            band.SetUnitType(units)
    dataset = None
    check = Grid.of_path(path)
    if check.geotransform != tuple(gt) or (check.width, check.height) != (grid.width,
                                                                          grid.height):
        raise S1S2Error("Internal error: the warped VRT is not on the target grid.")
    return path


def collocate_to_grid(source: SourceLike, target_grid: Union[Grid, str], output_path: str,
                      resampling: str = BILINEAR, linear_units=False, progress: Progress = None,
                      cancel: Cancel = None, bands: Optional[Sequence[int]] = None,
                      categorical: Optional[bool] = None, warn: Warn = None,
                      gcp_transform: str = GCP_AUTO, polynomial_order: Optional[int] = None,
                      memory_mb: float = DEFAULT_MEMORY_MB, threads: int = DEFAULT_THREADS) -> str:
    """Warp ``source`` onto ``target_grid`` and write a float32 GeoTIFF; returns ``output_path``.

    ``collocate_to_grid(source, target_grid, output_path, resampling="bilinear",
    linear_units=False, progress=None, cancel=None, bands=None, categorical=None,
    warn=None, gcp_transform="auto", polynomial_order=None, memory_mb=256,
    threads=2) -> str``

    * ``source``: :class:`BandSource` (its NoData overrides are honoured), a list
      of BandSources of one raster, or a path with ``bands`` (1-based, default all).
    * ``target_grid``: :class:`Grid` (e.g. ``Grid.of_path(s2_band)``) or a raster path.
      The output's CRS, geotransform, width and height are exactly the target's.
    * ``resampling``: ``nearest | bilinear | cubic | average``.
    * ``linear_units``: the source is backscatter in dB and is interpolated in
      linear power (back to dB after); ``"auto"``: only when the source looks like
      dB (unit 'dB' or negative values). Ignored for ``nearest``.
    * ``categorical``: None = detect (colour table, attribute table, names like
      SCL/mask/label): forces ``nearest`` and calls ``warn(message)``.
    * ``gcp_transform`` for GCP-only inputs: ``auto`` (thin plate spline with >= 10
      GCPs, else polynomial), ``polynomial`` (``polynomial_order`` or GDAL's
      choice) or ``tps``.
    * ``progress(0..100)``, ``cancel() -> bool``: a cancelled run raises
      :class:`Cancelled` and leaves no output. No overlap -> S1S2Error, no output.
    """
    sources = _as_sources(source, bands)
    grid = _as_grid(target_grid)
    check_output_path(output_path, [sources[0].path])
    dataset = open_raster(sources[0].path, sources[0].name)
    if categorical is None:
        categorical = any(is_categorical(dataset, s.band) for s in sources)
    resampling = _resolve_resampling(sources, dataset, resampling, categorical, warn)
    db = _resolve_db(sources, dataset, resampling, linear_units, categorical)
    names = _band_names(sources, dataset)
    metadata = {"algorithm": "s1s2:collocate", "resampling": resampling,
                "interpolated_in": "linear power" if db else "input units",
                "source": f"{sources[0].path} band(s) {','.join(str(s.band) for s in sources)}"}
    prepared = _Prepared(sources, db)
    try:
        transformer = _transformer_options(prepared.kind, prepared.dataset, gcp_transform,
                                           polynomial_order)
        if prepared.kind == "gcps":
            metadata["gcp_transform"] = "tps" if transformer.get("tps") else "polynomial"
        _check_overlap(prepared, grid, _transformer_list(prepared.kind, transformer),
                       sources[0].name, "TARGET")
        if db:
            output = OutputRaster(output_path, bands=names, units="dB", metadata=metadata)
            return _warp_by_blocks(sources, grid, output, resampling, transformer, memory_mb,
                                   threads, names, True, progress, cancel)
        unit = dataset.GetRasterBand(sources[0].band).GetUnitType() or ""
        output = OutputRaster(output_path, bands=names, units=unit, metadata=metadata)
        if engines.current_engine() is not engines.LOCAL:
            # on a cluster the warp is a block pass: each task reads its window of the warped
            # VRT (the warper runs on the worker); the pixels equal the local warp's
            return _warp_by_blocks(sources, grid, output, resampling, transformer, memory_mb,
                                   threads, names, False, progress, cancel)
        return _warp_to_file(prepared, grid, output, resampling, transformer, memory_mb,
                             threads, progress, cancel)
    finally:
        prepared.close()


def _stack_db(planes):
    return np.stack([to_db(p) for p in planes])


def _stack(planes):
    return np.stack(planes)


def _warp_by_blocks(sources: List[BandSource], grid: Grid, output: OutputRaster, resampling: str,
                    transformer: dict, memory_mb: float, threads: int, names: List[str],
                    db: bool, progress: Progress, cancel: Cancel) -> str:
    """The warp as a :func:`stream` pass over one warped VRT per band (the engine's blocks):
    dB input is warped in linear power and converted back per block (``db``).

    One VRT per band: the streaming reader opens each band on its own, and a multi-band
    warped VRT would warp every band once per opened band.
    """
    per_band = [_Prepared([s], db) for s in sources]
    vrt_unit = "linear power" if db else output.units
    vrts = []
    try:
        for one, name in zip(per_band, names):
            vrts.append(_warped_vrt(one, grid, resampling, transformer, memory_mb, threads,
                                    [name], vrt_unit))
        stack = _stack_db if db else _stack
        return stream(lambda *planes: stack(planes),
                      [BandSource(vrt, 1, sources[0].name) for vrt in vrts], [output],
                      grid=grid, memory_mb=memory_mb, threads=threads, progress=progress,
                      cancel=cancel, scratch=1.0)[0]
    finally:
        for vrt in vrts:
            gdal.Unlink(vrt)
        for one in per_band:
            one.close()


def _warp_to_file(prepared: _Prepared, grid: Grid, output: OutputRaster, resampling: str,
                  transformer: dict, memory_mb: float, threads: int, progress: Progress,
                  cancel: Cancel) -> str:
    """Warp straight into an atomic GeoTIFF created with the target's exact grid."""
    def callback(complete, _message, _data):
        if cancel is not None and cancel():
            return 0
        if progress is not None:
            progress(100.0 * complete)
        return 1

    check_free_space([output], grid)
    writer = AtomicGeoTiff(output, grid)
    try:
        options = _warp_options(prepared, grid, resampling, transformer, memory_mb, threads,
                                callback=callback, multithread=threads > 1, copyMetadata=False)
        try:
            # into an open dataset gdal.Warp returns GDALWarp's status (1 = success)
            done = gdal.Warp(writer.dataset, prepared.dataset, options=options)
        except RuntimeError as exc:
            if cancel is not None and cancel():
                raise Cancelled() from None
            raise S1S2Error(f"Cannot warp onto the target grid ({exc}).") from None
        if cancel is not None and cancel():
            raise Cancelled()
        if not done:  # an error on GDAL's I/O thread: raised nowhere, only this status
            raise S1S2Error(f"Cannot warp '{prepared.source_path}' onto the target "
                            "grid: GDAL failed to read or write a block (a damaged or "
                            "truncated file?). Nothing was written.")
    except BaseException:
        writer.abort()
        raise
    return writer.commit()
