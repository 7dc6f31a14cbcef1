"""Sea-ice / open-water masks from Sentinel-1 HV and Sentinel-2 green (MET Norway recipe).

SPEC "Sea-ice mask":

* S1: HV sigma0 (linear power; dB input is recognised), 5 x 5 median filter,
  dB, **open water where sigma0_dB < threshold** (recipe: rescale -30..-4 dB to
  0..255 and take ``< 1``, i.e. about -30 dB). Ice is the complement.
* S2: **open water where B03 < 2500 DN**, holes in the water mask filled
  (``scipy.ndimage.binary_fill_holes``, 4-connected background); ice is the
  complement. The recipe calls the water mask "ice sheets"; it is not.
* Masks are uint8: 1 ice, 0 open water, 255 NoData; S1 is collocated onto the
  S2 grid first (bilinear, in linear power).
* Numbers on the common grid: ice concentration per sensor (ice / valid),
  agreement (fraction of pixels valid in both where the masks agree), the
  number of connected ice features (8-connectivity) and the acquisition time
  difference in hours.

Everything is blockwise. Hole filling and feature counting need whole
connected components, so they use two passes: each block is labelled on its
own (scipy.ndimage.label); only labels on a block's perimeter get global ids,
which are joined across block seams (4- or 8-neighbour pairs along full-width
seam rows / full-height seam columns, so block corners are covered too) with
a sparse connected-components pass. Interior labels are complete components.
The result equals labelling the whole array, for any block size.
"""
import datetime as _dt
import glob
import json
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np
from osgeo import gdal
from scipy import ndimage, sparse
from scipy.sparse import csgraph

from .errors import Cancelled, S1S2Error
from .raster import BandSource, Grid, common_grid, open_band, warped_to_grid
from .indices import DEFAULT_QUANTIFICATION, REFLECTANCE, s2_band_kind
from .streaming import DEFAULT_MEMORY_MB, LOG, Window, scan, stream, sub_progress
from .units import convert_db_file, DB_TO_LINEAR, require_linear, to_db
from .writer import OutputRaster, check_free_space, check_output_path, replace_together

gdal.UseExceptions()

ICE, WATER, NODATA = 1, 0, 255
FOUR = ndimage.generate_binary_structure(2, 1)
EIGHT = ndimage.generate_binary_structure(2, 2)
DEFAULT_BLOCK_PIXELS = 2048 * 2048


# -- S1: NaN-aware median, threshold --------------------------------------------------------
def nan_median_filter(values: np.ndarray, size: int) -> np.ndarray:
    """``size`` x ``size`` median ignoring NaN (NaN beyond the array edge); NaN centre -> NaN.

    Windows without NaN use scipy's median filter; the few windows touching
    NaN are sorted (NaN last) and the median of their valid values taken.
    """
    values = np.asarray(values, dtype=np.float32)
    if size <= 1:
        return values.copy()
    radius = size // 2
    nan = np.isnan(values)
    out = ndimage.median_filter(np.where(nan, 0, values), size=size, mode="constant")
    touched = ndimage.maximum_filter(nan, size=size, mode="constant", cval=True)
    touched &= ~nan
    out[nan] = np.nan
    rows, cols = np.nonzero(touched)
    if rows.size:
        padded = np.pad(values, radius, constant_values=np.nan)
        windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size))
        for start in range(0, rows.size, 65536):
            r, c = rows[start:start + 65536], cols[start:start + 65536]
            block = np.sort(windows[r, c].reshape(r.size, -1), axis=1)  # NaN sort last
            n = np.count_nonzero(~np.isnan(block), axis=1)
            lo = np.take_along_axis(block, ((n - 1) // 2)[:, None], 1)[:, 0]
            hi = np.take_along_axis(block, (n // 2)[:, None], 1)[:, 0]
            out[r, c] = (lo + hi) / 2
    return out


def s1_ice_mask(sigma0: np.ndarray, threshold_db: float = -30.0, median_size: int = 5,
                input_db: bool = False) -> np.ndarray:
    """uint8 mask from (padded) HV backscatter: median filter, dB, water where < threshold."""
    linear = np.power(np.float32(10.0), sigma0 / np.float32(10.0)) if input_db else sigma0
    linear = np.where(linear > 0, linear, np.nan).astype(np.float32)  # <= 0 has no dB: NoData
    db = to_db(nan_median_filter(linear, median_size))
    mask = np.full(db.shape, NODATA, dtype=np.uint8)
    valid = np.isfinite(db)
    mask[valid] = np.where(db[valid] < threshold_db, WATER, ICE)
    return mask


def s2_water(green: np.ndarray, threshold: float = 2500.0):
    """(water, valid) booleans from B03 DN (NaN = NoData)."""
    valid = np.isfinite(green)
    water = np.zeros(green.shape, dtype=bool)
    water[valid] = green[valid] < threshold
    return water, valid


# -- blockwise connected components -------------------------------------------------------
@dataclass
class _BlockLabels:
    """Pass-1 summary of one block: its perimeter labels and their image-border contact."""

    window: Window
    count: int
    perimeter: np.ndarray  # sorted unique local labels on the block perimeter
    top: np.ndarray
    bottom: np.ndarray
    left: np.ndarray
    right: np.ndarray
    on_border: np.ndarray  # local perimeter labels touching the image border


def label_block(foreground: np.ndarray, window: Window, width: int, height: int,
                structure: np.ndarray):
    """Local labels of ``foreground`` plus the pass-1 summary."""
    labels, count = ndimage.label(foreground, structure=structure)
    edges = [labels[0], labels[-1], labels[:, 0], labels[:, -1]]
    perimeter = np.unique(np.concatenate(edges))
    perimeter = perimeter[perimeter > 0]
    border = []
    if window.yoff == 0:
        border.append(labels[0])
    if window.yoff + window.ysize == height:
        border.append(labels[-1])
    if window.xoff == 0:
        border.append(labels[:, 0])
    if window.xoff + window.xsize == width:
        border.append(labels[:, -1])
    on_border = np.unique(np.concatenate(border)) if border else np.zeros(0, labels.dtype)
    summary = _BlockLabels(window, count, perimeter, *[e.copy() for e in edges],
                           on_border[on_border > 0])
    return labels, summary


class BlockComponents:
    """Joins per-block labels across seams: global component ids, border contact, count."""

    def __init__(self, summaries: List[_BlockLabels], width: int, height: int,
                 structure: np.ndarray):
        self.width, self.height = width, height
        self.offsets: Dict[tuple, int] = {}
        total = 0
        for s in summaries:
            self.offsets[(s.window.xoff, s.window.yoff)] = total
            total += len(s.perimeter)
        self.n_perimeter = total
        by_key = {(s.window.xoff, s.window.yoff): s for s in summaries}
        pairs_a, pairs_b = [], []
        shifts = (-1, 0, 1) if structure.all() else (0,)
        for along_rows in (True, False):
            for first, second in self._seams(by_key, along_rows):
                for shift in shifts:
                    a = first[max(0, -shift):len(first) - max(0, shift)]
                    b = second[max(0, shift):len(second) - max(0, -shift)]
                    keep = (a > 0) & (b > 0)
                    pairs_a.append(a[keep])
                    pairs_b.append(b[keep])
        a = np.concatenate(pairs_a) - 1 if pairs_a else np.zeros(0, np.int64)
        b = np.concatenate(pairs_b) - 1 if pairs_b else np.zeros(0, np.int64)
        graph = sparse.coo_matrix((np.ones(a.size, np.int8), (a, b)), shape=(total, total))
        self.n_joined, self.component = csgraph.connected_components(graph, directed=False)
        border = np.zeros(self.n_joined, dtype=bool)
        for s in summaries:
            if s.on_border.size:
                border[self.component[self._global(s, s.on_border) - 1]] = True
        self.border = border
        self.count = sum(s.count for s in summaries) - total + self.n_joined

    def _global(self, summary: _BlockLabels, local: np.ndarray) -> np.ndarray:
        """Global ids (1-based) of local perimeter labels; 0 stays 0."""
        local = np.asarray(local)
        out = np.zeros(local.shape, dtype=np.int64)
        nz = local > 0
        offset = self.offsets[(summary.window.xoff, summary.window.yoff)]
        out[nz] = offset + np.searchsorted(summary.perimeter, local[nz]) + 1
        return out

    def _seams(self, by_key, along_rows):
        """(first, second) full-length global-id lines on both sides of every seam."""
        if along_rows:  # horizontal seams: bottom rows above, top rows below
            starts = sorted({k[1] for k in by_key if k[1] > 0})
            for y in starts:
                above = np.zeros(self.width, np.int64)
                below = np.zeros(self.width, np.int64)
                for (x0, y0), s in by_key.items():
                    w = s.window
                    if y0 == y:
                        below[x0:x0 + w.xsize] = self._global(s, s.top)
                    elif y0 + w.ysize == y:
                        above[x0:x0 + w.xsize] = self._global(s, s.bottom)
                yield above, below
        else:
            starts = sorted({k[0] for k in by_key if k[0] > 0})
            for x in starts:
                left = np.zeros(self.height, np.int64)
                right = np.zeros(self.height, np.int64)
                for (x0, y0), s in by_key.items():
                    w = s.window
                    if x0 == x:
                        right[y0:y0 + w.ysize] = self._global(s, s.left)
                    elif x0 + w.xsize == x:
                        left[y0:y0 + w.ysize] = self._global(s, s.right)
                yield left, right

    def border_connected(self, summary: _BlockLabels, labels: np.ndarray) -> np.ndarray:
        """Boolean image of the pixels whose global component touches the image border."""
        lookup = np.zeros(summary.count + 1, dtype=bool)
        if summary.perimeter.size:
            ids = self._global(summary, summary.perimeter)
            lookup[summary.perimeter] = self.border[self.component[ids - 1]]
        return lookup[labels]


# -- file-level steps -----------------------------------------------------------------------
def s2_ice_mask_file(green: BandSource, output_path: str, threshold: float = 2500.0,
                     fill_holes: bool = True, block_pixels: int = DEFAULT_BLOCK_PIXELS,
                     progress=None, cancel=None, metadata=None, threads: int = 2,
                     label: str = "OUTPUT") -> str:
    """S2 ice mask: water = B03 < threshold, holes of the water mask filled (whole-image
    ``binary_fill_holes`` semantics, blockwise), ice = not water; NoData 255."""
    grid = common_grid([green])
    spec = OutputRaster(output_path, bands=["Sea ice from S2 (1 ice, 0 open water)"],
                        dtype="uint8", label=label,
                        metadata=dict(metadata or {}, algorithm="s1s2:seaice",
                                      classes="1 ice, 0 open water, 255 NoData",
                                      rule=f"water where B03 < {threshold:g} DN"
                                           f"{', holes filled' if fill_holes else ''}"))
    components = None
    summaries = {}
    if fill_holes:
        def pass1(b03, window):
            water, _ = s2_water(b03, threshold)
            return label_block(~water, window, grid.width, grid.height, FOUR)[1]

        found = scan(pass1, [green], block_pixels=block_pixels, threads=threads,
                     progress=sub_progress(progress, 0, 40), cancel=cancel)
        components = BlockComponents(found, grid.width, grid.height, FOUR)
        summaries = {(s.window.xoff, s.window.yoff): s for s in found}

    def pass2(b03, window):
        water, valid = s2_water(b03, threshold)
        if components is not None:
            labels, _ = ndimage.label(~water, structure=FOUR)
            summary = summaries[(window.xoff, window.yoff)]
            # holes: background not connected to the image border
            water |= (labels > 0) & ~components.border_connected(summary, labels)
        mask = np.where(water, WATER, ICE).astype(np.uint8)
        mask[~valid] = NODATA
        return mask

    return stream(pass2, [green], [spec], pass_window=True, block_pixels=block_pixels,
                  threads=threads, progress=sub_progress(progress, 40 if fill_holes else 0, 100),
                  cancel=cancel)[0]


def mask_statistics(s1_mask: str, s2_mask: str, block_pixels: int = DEFAULT_BLOCK_PIXELS,
                    progress=None, cancel=None, threads: int = 2) -> Dict[str, Optional[float]]:
    """Concentrations, agreement and 8-connected ice feature counts of two aligned masks."""
    sources = [BandSource(s1_mask, 1, "S1 ice mask"), BandSource(s2_mask, 1, "S2 ice mask")]
    grid = common_grid(sources)

    def block(m1, m2, window):
        v1, v2 = np.isfinite(m1), np.isfinite(m2)
        i1, i2 = v1 & (m1 == ICE), v2 & (m2 == ICE)
        both = v1 & v2
        counts = np.array([v1.sum(), i1.sum(), v2.sum(), i2.sum(), both.sum(),
                           (both & (i1 == i2)).sum()], dtype=np.int64)
        return (counts, label_block(i1, window, grid.width, grid.height, EIGHT)[1],
                label_block(i2, window, grid.width, grid.height, EIGHT)[1])

    results = scan(block, sources, block_pixels=block_pixels, threads=threads,
                   progress=progress, cancel=cancel)
    counts = sum(r[0] for r in results)
    features = [BlockComponents([r[k] for r in results], grid.width, grid.height, EIGHT).count
                for k in (1, 2)]
    ratio = lambda num, den: float(num) / float(den) if den else None  # noqa: E731
    return {"S1_ICE_CONCENTRATION": ratio(counts[1], counts[0]),
            "S2_ICE_CONCENTRATION": ratio(counts[3], counts[2]),
            "AGREEMENT": ratio(counts[5], counts[4]),
            "S1_FEATURES": int(features[0]), "S2_FEATURES": int(features[1]),
            "VALID_PIXELS_S1": int(counts[0]), "VALID_PIXELS_S2": int(counts[2]),
            "VALID_PIXELS_BOTH": int(counts[4])}


# -- acquisition times ------------------------------------------------------------------------
_TIME_METADATA = ("ACQUISITION_START", "ACQUISITION_TIME", "DATATAKE_1_DATATAKE_SENSING_START",
                  "PRODUCT_START_TIME", "SENSING_TIME", "NC_GLOBAL#time_coverage_start")
_NAME_TIME = re.compile(r"(?<!\d)(\d{8})T(\d{5,6})(?!\d)")


def _parse_any_time(text: str) -> Optional[_dt.datetime]:
    text = text.strip().replace(" ", "T").rstrip("Z")
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
        try:
            return _dt.datetime.strptime(text[:26], fmt)
        except ValueError:
            continue
    return None


def acquisition_time(path: str) -> Optional[_dt.datetime]:
    """Acquisition (start) time of a raster or product, or None.

    Looks at, in order: SAFE/NetCDF product annotation, GDAL metadata
    (ACQUISITION_START written by s1s2:calibrate, Sentinel-2 DATATAKE sensing
    start, ...), a BigEarthNet ``*_labels_metadata.json`` next to the file, and a
    ``YYYYMMDDTHHMMSS`` stamp in the file or folder name.
    """
    from .calibration import product_times
    from .s1annotation import is_safe_product
    if not path:
        return None
    if is_safe_product(path):
        return product_times(path)[0]
    try:
        dataset = gdal.Open(path)
        meta = (dataset.GetMetadata() or {}) if dataset is not None else {}
    except RuntimeError:
        meta = {}
    for key in _TIME_METADATA:
        if meta.get(key):
            parsed = _parse_any_time(meta[key])
            if parsed:
                return parsed
    folder = os.path.dirname(os.path.abspath(path))
    for candidate in sorted(glob.glob(os.path.join(folder, "*_labels_metadata.json"))):
        try:
            with open(candidate, encoding="utf-8") as handle:
                info = json.load(handle)
        except (OSError, ValueError):
            continue
        for key in ("acquisition_time", "acquisition_date"):
            if isinstance(info.get(key), str) and _parse_any_time(info[key]):
                return _parse_any_time(info[key])
    for name in (os.path.basename(path), os.path.basename(folder)):
        match = _NAME_TIME.search(name)
        if match:
            day, clock = match.group(1), match.group(2).rjust(6, "0")
            try:
                base = _dt.datetime.strptime(day, "%Y%m%d")
            except ValueError:
                continue
            return base + _dt.timedelta(hours=int(clock[:2]), minutes=int(clock[2:4]),
                                        seconds=int(clock[4:]))
    return None


def time_difference_hours(path_a: str, path_b: str) -> Optional[float]:
    a, b = acquisition_time(path_a), acquisition_time(path_b)
    if a is None or b is None:
        return None
    return abs((a - b).total_seconds()) / 3600.0


# -- the whole recipe -------------------------------------------------------------------------
def is_db_raster(source: BandSource) -> bool:
    """True when a backscatter band is in dB: its unit says so, or its values are negative."""
    dataset, band = open_band(source)
    unit = (band.GetUnitType() or dataset.GetMetadataItem("units") or "").strip().lower()
    if unit in ("db", "decibel", "decibels"):
        return True
    if unit in ("linear power", "linear", "1"):
        return False
    size = (min(dataset.RasterXSize, 512), min(dataset.RasterYSize, 512))
    sample = band.ReadAsArray(buf_xsize=size[0], buf_ysize=size[1],
                              buf_type=gdal.GDT_Float32)
    nodata = band.GetNoDataValue()
    sample = sample[np.isfinite(sample)]
    if nodata is not None:
        sample = sample[sample != nodata]
    if sample.size == 0:
        raise S1S2Error(f"{source.name}: no valid pixel in the S1 raster.")
    return bool(np.median(sample) < 0)


def _s1_on_grid(s1: BandSource, grid: Grid, input_db: bool, workdir: str):
    """S1 on the S2 grid (bilinear in linear power); returns (source, is_db)."""
    dataset, _ = open_band(s1)
    if Grid.of(dataset).mismatch(grid) is None:
        return s1, input_db
    if not dataset.GetGCPCount() and not dataset.GetProjection():
        raise S1S2Error(f"{s1.name}: the raster has no georeferencing (no CRS, no GCPs) and is "
                        "not on the S2 grid; it cannot be collocated.")
    try:
        from .collocate import collocated_vrt  # s1s2:collocate's core (issue 5)
    except ImportError:
        collocated_vrt = None
    if collocated_vrt is not None:  # the VRT holds linear power
        path = collocated_vrt(s1, grid, "bilinear", db_input=input_db, categorical=False,
                              target_label="S2_GREEN")
        return BandSource(path, 1, s1.name), False
    if input_db:  # resample backscatter in linear units
        linear = os.path.join(workdir, "s1_linear.tif")
        convert_db_file(s1, linear, DB_TO_LINEAR)
        s1 = BandSource(linear, 1, s1.name)
    return warped_to_grid(s1, grid, "bilinear"), False


def _staging_path(path: str) -> str:
    """A hidden temporary name next to ``path`` (same file system: os.replace is atomic)."""
    folder, base = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{base}.{uuid.uuid4().hex[:8]}.part.tif")


def _check_arguments(s1_path, s2_green, output_s1, output_s2) -> None:
    """S1S2Error naming the argument for inputs of the wrong kind (None, a number...)."""
    if not isinstance(s1_path, (str, os.PathLike)) or not str(s1_path):
        raise S1S2Error(f"S1: expected the path of a raster or product, got {s1_path!r}.")
    if not isinstance(s2_green, BandSource):
        raise S1S2Error(f"S2_GREEN: expected a BandSource (path and band), got {s2_green!r}.")
    for name, path in (("OUTPUT_S1_ICE", output_s1), ("OUTPUT_S2_ICE", output_s2)):
        if not isinstance(path, (str, os.PathLike)) or not str(path):
            raise S1S2Error(f"{name}: expected an output file path, got {path!r}.")


def sea_ice(s1_path: str, s2_green: BandSource, output_s1: str, output_s2: str,
            s1_band: int = 1, s1_threshold_db: float = -30.0, s1_median_size: int = 5,
            s2_threshold: float = 2500.0, fill_holes: bool = True,
            s1_input_db: Optional[bool] = None, block_pixels: Optional[int] = None,
            progress=None, cancel=None, memory_mb: float = DEFAULT_MEMORY_MB,
            threads: int = 2) -> Dict[str, Optional[float]]:
    """Both masks and the numbers. ``s1_path``: an HV backscatter raster (linear or dB,
    ``s1_input_db=None`` detects it), or a SAFE / MET Norway NetCDF product, calibrated
    here (HV sigma0 with noise removal, values <= 0 floored, i.e. open water)."""
    from .calibration import NEGATIVE_FLOOR, calibrate, is_netcdf
    from .s1annotation import is_safe_product
    _check_arguments(s1_path, s2_green, output_s1, output_s2)
    if s1_median_size < 1 or s1_median_size % 2 == 0:
        raise S1S2Error(f"S1_MEDIAN_SIZE must be an odd number of pixels >= 1, "
                        f"not {s1_median_size}.")
    for path in (output_s1, output_s2):
        if os.path.exists(path) and os.path.isdir(path):
            raise S1S2Error(f"The output '{path}' is a folder.")
    if os.path.abspath(output_s1) == os.path.abspath(output_s2):
        raise S1S2Error("OUTPUT_S1_ICE and OUTPUT_S2_ICE must be different files.")
    for path in (output_s1, output_s2):  # each step reads one input: check both up front
        check_output_path(path, [s1_path, s2_green.path])
    if block_pixels is None:
        # about 40 bytes of scratch per pixel (median filter, labels) in each of ~3 blocks in flight
        block_pixels = int(min(DEFAULT_BLOCK_PIXELS, memory_mb * 2 ** 20 / 128))
    grid = common_grid([s2_green])
    if s2_band_kind(s2_green) == REFLECTANCE:  # S2_THRESHOLD is in DN (reflectance x 10000)
        s2_threshold = s2_threshold / DEFAULT_QUANTIFICATION
        LOG.info(f"{s2_green.name} holds reflectance (0-1), not DN: the threshold is "
                 f"{s2_threshold:g} in reflectance.")
    check_free_space([OutputRaster(output_s1, dtype="uint8", label="OUTPUT_S1_ICE"),
                      OutputRaster(output_s2, dtype="uint8", label="OUTPUT_S2_ICE")], grid)
    workdir = tempfile.mkdtemp(prefix=".s1s2_seaice_",
                               dir=os.path.dirname(os.path.abspath(output_s1)))
    # Both masks are staged next to their outputs and moved into place together at the
    # end: a failure or cancel in a later step must not leave (or replace) the first mask.
    staged = {path: _staging_path(path) for path in (output_s1, output_s2)}
    try:
        if is_safe_product(s1_path) or is_netcdf(s1_path):
            calibrated = os.path.join(workdir, "s1_hv_sigma0.tif")
            calibrate(s1_path, "HV", calibrated, negative=NEGATIVE_FLOOR,
                      progress=sub_progress(progress, 0, 30), cancel=cancel)
            s1 = BandSource(calibrated, 1, "S1 (HV sigma0)")
            input_db = False
        else:
            s1 = BandSource(s1_path, s1_band, "S1")
            input_db = is_db_raster(s1) if s1_input_db is None else bool(s1_input_db)
            if s1_input_db is False:  # forced linear: dB would all become NoData silently
                require_linear(s1, "choose dB or Auto (detect) in Sentinel-1 units (S1_UNITS)")
        s1_grid, input_db = _s1_on_grid(s1, grid, input_db, workdir)
        meta = {"s1": s1_path, "s2": s2_green.path}
        s1_spec = OutputRaster(staged[output_s1], bands=["Sea ice from S1 (1 ice, 0 open water)"],
                               dtype="uint8",
                               label="OUTPUT_S1_ICE", metadata=dict(
            meta, algorithm="s1s2:seaice", classes="1 ice, 0 open water, 255 NoData",
            rule=f"water where median{s1_median_size}x{s1_median_size}(sigma0) dB < "
                 f"{s1_threshold_db:g}"))
        halo = s1_median_size // 2
        stream(lambda x: s1_ice_mask(x, s1_threshold_db, s1_median_size, input_db),
               [s1_grid], [s1_spec], halo=halo, grid=grid, block_pixels=block_pixels,
               threads=threads, progress=sub_progress(progress, 30, 60), cancel=cancel)
        s2_ice_mask_file(s2_green, staged[output_s2], s2_threshold, fill_holes, block_pixels,
                         sub_progress(progress, 60, 85), cancel, meta, threads, "OUTPUT_S2_ICE")
        numbers = mask_statistics(staged[output_s1], staged[output_s2], block_pixels,
                                  sub_progress(progress, 85, 100), cancel, threads)
        if cancel is not None and cancel():
            raise Cancelled()
        replace_together([(part, final) for final, part in staged.items()])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        for part in staged.values():
            for leftover in (part, part + ".aux.xml"):
                if os.path.exists(leftover):
                    os.remove(leftover)
    numbers["TIME_DIFFERENCE_HOURS"] = time_difference_hours(s1_path, s2_green.path)
    return numbers
