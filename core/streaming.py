"""Block-streaming raster processing with an overlap halo.

A pure function of numpy arrays is applied to aligned inputs block by block:

* every block is read with ``halo`` extra pixels on each side (NaN beyond the
  raster edge, so a block at the border looks exactly like the same region of
  a NaN-padded whole array), the function sees the padded arrays, and the halo
  is trimmed before writing; results are therefore independent of block size;
* the block size comes from a memory budget, never from the raster size, so a
  25 000 x 17 000 scene runs in bounded memory;
* blocks are computed by a small thread pool (numpy/scipy release the GIL) and
  written in order, so results equal a single-threaded run; or, with the Dask
  engine (:mod:`.engine`, :mod:`.dask_engine`), by block tasks on a cluster that
  read their own windows, written here in the same order (the same file);
* progress (0..100) and cancel are plain callables checked between blocks;
  outputs are written to temporary files and renamed only on success.

Inputs arrive as float32 (or float64) arrays with NoData as NaN.
"""
import logging
import math
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
from osgeo import gdal

from . import engine as engines
from .blas import one_blas_thread
from .errors import Cancelled, S1S2Error
from .raster import BandSource, Grid, common_grid, nodata_values, open_band
from .writer import OutputRaster, OutputSet, check_output_path

gdal.UseExceptions()

# Notes for the user's log (counts of values treated as NoData...); the Processing wrapper
# forwards them to its feedback, a script sees them through Python logging.
LOG = logging.getLogger("s1s2")
LOG.setLevel(logging.INFO)  # notes (info) reach the handlers; Python prints warnings only
DEFAULT_MEMORY_MB = 256
DEFAULT_THREADS = 2
# GDAL's block cache defaults to 5 % of RAM (1.2 GB here) and fills with every
# tile read or written; streaming needs only a strip of tiles, so the cache is
# capped (never raised) for the duration of a run.
GDAL_CACHE_MB = 96
_ALIGN = 256  # output tile size; blocks are multiples of it where possible

Progress = Optional[Callable[[float], None]]
Cancel = Optional[Callable[[], bool]]


@dataclass(frozen=True)
class Window:
    """The core region of a block (pixel offsets in the full raster) and its halo."""

    xoff: int
    yoff: int
    xsize: int
    ysize: int
    halo: int = 0

    @property
    def core(self) -> Tuple[slice, slice]:
        """Slices that cut the core region out of the padded block."""
        h = self.halo
        return slice(h, h + self.ysize), slice(h, h + self.xsize)


def sub_progress(progress: Progress, start: float, end: float) -> Progress:
    """Map a 0..100 progress callback into [start, end] of ``progress``."""
    if progress is None:
        return None
    return lambda p: progress(start + (end - start) * p / 100.0)


def block_windows(width: int, height: int, block_pixels: int, halo: int = 0) -> List[Window]:
    """Cover a width x height raster with blocks of about ``block_pixels`` padded pixels.

    Full-width strips when a strip of at least 64 rows fits (sequential reads of
    striped or tiled files), otherwise square tiles; sizes are rounded to the
    256 px output tiling when larger than it.
    """
    block_pixels = max(block_pixels, 16 * 16)
    pad_w = width + 2 * halo
    if pad_w * (64 + 2 * halo) <= block_pixels:
        bw = width
        bh = block_pixels // pad_w - 2 * halo
    else:
        side = int(math.sqrt(block_pixels)) - 2 * halo
        bw = bh = max(side, 16)
    if bh > _ALIGN:
        bh -= bh % _ALIGN
    if bw < width and bw > _ALIGN:
        bw -= bw % _ALIGN
    bw, bh = max(1, min(bw, width)), max(1, min(bh, height))
    return [Window(x, y, min(bw, width - x), min(bh, height - y), halo)
            for y in range(0, height, bh) for x in range(0, width, bw)]


class BlockReader:
    """Reads padded blocks of aligned BandSources as float arrays, NoData -> NaN; a complex
    band (SAR SLC) is read as its intensity |z|^2."""

    def __init__(self, sources: Sequence[BandSource], dtype="float32"):
        self.sources = list(sources)
        self.dtype = np.dtype(dtype)
        self._gdal_type = gdal.GDT_Float64 if self.dtype == np.float64 else gdal.GDT_Float32
        self._bands = []
        # Integer bands cannot hold +-inf: their blocks skip the +-inf check (a whole pass).
        self.can_be_infinite = []
        for source in self.sources:
            dataset, band = open_band(source)
            is_complex = bool(gdal.DataTypeIsComplex(band.DataType))
            self.can_be_infinite.append(
                is_complex or gdal.GetDataTypeName(band.DataType).startswith("Float"))
            flags = band.GetMaskFlags()
            use_mask = not (flags & (gdal.GMF_ALL_VALID | gdal.GMF_NODATA))
            self._bands.append((dataset, band, nodata_values(source, band), use_mask,
                                is_complex))
        first = self._bands[0][0] if self._bands else None
        self.width = first.RasterXSize if first else 0
        self.height = first.RasterYSize if first else 0

    def read(self, window: Window) -> List[np.ndarray]:
        return [self._read_one(i, window) for i in range(len(self._bands))]

    def _read_one(self, index: int, window: Window) -> np.ndarray:
        dataset, band, nodata, use_mask, is_complex = self._bands[index]
        h = window.halo
        x0, y0 = window.xoff - h, window.yoff - h
        x1, y1 = window.xoff + window.xsize + h, window.yoff + window.ysize + h
        cx0, cy0 = max(x0, 0), max(y0, 0)
        cx1, cy1 = min(x1, dataset.RasterXSize), min(y1, dataset.RasterYSize)
        try:
            data = band.ReadAsArray(cx0, cy0, cx1 - cx0, cy1 - cy0, buf_type=self._gdal_type
                                    if not is_complex else gdal.GDT_CFloat64)
        except RuntimeError as exc:  # a damaged or truncated file, found mid-run
            raise S1S2Error(f"{self.sources[index].name}: reading pixels {cx0},{cy0} to "
                            f"{cx1},{cy1} of '{self.sources[index].path}' failed ({exc}); "
                            "the file may be damaged or incomplete.") from None
        if data is None:
            raise S1S2Error(f"{self.sources[index].name}: reading pixels failed.")
        if is_complex:  # SAR SLC: intensity |z|^2 (NoData compared on the complex value)
            z, data = data, (data.real ** 2 + data.imag ** 2).astype(self.dtype)
            for value in nodata:
                data[z == value] = np.nan
            z = None
        else:
            data = data.astype(self.dtype, copy=False)
            for value in nodata:
                data[data == self.dtype.type(value)] = np.nan
        if use_mask:
            mask = band.GetMaskBand().ReadAsArray(cx0, cy0, cx1 - cx0, cy1 - cy0)
            data[mask == 0] = np.nan
        if (cx0, cy0, cx1, cy1) == (x0, y0, x1, y1):
            return data
        padded = np.full((y1 - y0, x1 - x0), np.nan, dtype=self.dtype)
        padded[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0] = data
        return padded


def _trim(result: np.ndarray, window: Window) -> np.ndarray:
    """Cut the core region out of a padded result (2-D or bands-first 3-D)."""
    padded_shape = (window.ysize + 2 * window.halo, window.xsize + 2 * window.halo)
    if result.shape[-2:] == (window.ysize, window.xsize):
        return result
    if result.shape[-2:] != padded_shape:
        raise S1S2Error(f"Internal error: block result has shape {result.shape[-2:]}, "
                        f"expected {padded_shape} or {(window.ysize, window.xsize)}.")
    rows, cols = window.core
    return result[..., rows, cols]


def _as_tuple(result, n_outputs: int) -> tuple:
    if isinstance(result, np.ndarray):
        result = (result,)
    result = tuple(result)
    if len(result) != n_outputs:
        raise S1S2Error(f"Internal error: {len(result)} block results for {n_outputs} outputs.")
    return result


def _budget_pixels(n_inputs: int, out_bands: int, itemsize: int, memory_mb: float,
                   scratch: float, threads: int) -> int:
    """Padded pixels per block so that all blocks in flight fit ``memory_mb``."""
    per_pixel = (n_inputs + out_bands) * itemsize * (1.0 + scratch)
    in_flight = threads + 1
    return int(memory_mb * 2 ** 20 / (per_pixel * in_flight))


def check_halo(halo: int, n_arrays: int, itemsize: int, memory_mb: float) -> None:
    """S1S2Error before allocating anything when even the smallest block padded with
    ``halo`` pixels on each side would need far more than the memory budget."""
    smallest = (16 + 2 * halo) ** 2 * max(n_arrays, 1) * itemsize
    if smallest > max(8 * memory_mb, 1024) * 2 ** 20:
        raise S1S2Error(f"A neighbourhood of {halo} pixels on each side needs at least "
                        f"{smallest / 2 ** 30:.1f} GB per block; reduce the window, radius or "
                        "buffer.")


def _infinite_to_nan(arrays: Sequence[np.ndarray], window: Window,
                     can_be_infinite: Optional[Sequence[bool]] = None) -> List[int]:
    """+-inf input pixels become NoData (in place); returns their count per input in the
    block's core region (each pixel counted once however the blocks overlap). Inputs whose
    ``can_be_infinite`` is False (integer bands) are not looked at."""
    counts = []
    for i, array in enumerate(arrays):
        if can_be_infinite is not None and not can_be_infinite[i]:
            counts.append(0)
            continue
        infinite = np.isinf(array)
        if infinite.any():
            counts.append(int(np.count_nonzero(infinite[window.core])))
            array[infinite] = np.nan
        else:
            counts.append(0)
    return counts


class _NonFinite:
    """Counts of +-inf read (per input) and computed (per output), summed on the caller's side
    (block functions may run in other processes) and logged once at the end."""

    def __init__(self, sources, outputs):
        self.inputs = [(s.name, 0) for s in sources]
        self.outputs = [(o.label, 0) for o in outputs]

    def add(self, read, computed) -> None:
        self.inputs = [(n, c + r) for (n, c), r in zip(self.inputs, read)]
        self.outputs = [(n, c + r) for (n, c), r in zip(self.outputs, computed)]

    def report(self) -> None:
        for name, count in self.inputs:
            if count:
                LOG.warning(f"{name}: {count} pixel(s) were +-inf; treated as NoData.")
        for name, count in self.outputs:
            if count:
                LOG.warning(f"{name}: {count} pixel(s) computed as +-inf (overflow); written "
                            "as NoData.")


class _CappedGdalCache:
    """Context manager lowering GDAL's global block cache to GDAL_CACHE_MB."""

    def __enter__(self):
        self.previous = gdal.GetCacheMax()
        gdal.SetCacheMax(min(self.previous, GDAL_CACHE_MB * 2 ** 20))

    def __exit__(self, *exc):
        gdal.SetCacheMax(self.previous)
        return False


def _map_blocks(reader: BlockReader, windows: Sequence[Window], call: Callable,
                consume: Callable, threads: int, progress: Progress, cancel: Cancel,
                engine=None) -> None:
    """Read in order, compute ``call(arrays, window)`` on the engine, ``consume`` in order.

    The local engine reads and computes in a pool of ``threads``; the Dask engine
    sends ``call`` to the cluster, whose block tasks read their own windows.
    """
    engine = engines.resolve(engine)
    if engine is not engines.LOCAL:
        with _CappedGdalCache():
            engine.map_blocks(reader.sources, reader.dtype, windows, call, consume, progress,
                              cancel)
        return
    with _CappedGdalCache(), one_blas_thread():
        _map_blocks_uncapped(reader, windows, call, consume, threads, progress, cancel)


def _map_blocks_uncapped(reader, windows, call, consume, threads, progress, cancel):
    total = len(windows)

    def check_cancel():
        if cancel is not None and cancel():
            raise Cancelled()

    if progress:
        progress(0.0)
    if threads <= 1:
        for i, window in enumerate(windows):
            check_cancel()
            consume(window, call(reader.read(window), window))
            if progress:
                progress(100.0 * (i + 1) / total)
        return
    done = 0
    read_lock = threading.Lock()

    def read_and_call(window):
        # Workers read too, so reading overlaps the main thread's writing; GDAL
        # dataset handles are not thread-safe, hence one reader at a time.
        with read_lock:
            arrays = reader.read(window)
        return call(arrays, window)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        pending = deque()
        try:
            for window in windows:
                check_cancel()
                pending.append((window, pool.submit(read_and_call, window)))
                while len(pending) > threads:
                    win, future = pending.popleft()
                    consume(win, future.result())
                    done += 1
                    if progress:
                        progress(100.0 * done / total)
            while pending:
                check_cancel()
                win, future = pending.popleft()
                consume(win, future.result())
                done += 1
                if progress:
                    progress(100.0 * done / total)
        finally:
            for _, future in pending:
                future.cancel()


def stream(func: Callable, sources: Sequence[BandSource], outputs: Sequence[OutputRaster],
           halo: int = 0, dtype: str = "float32", memory_mb: float = DEFAULT_MEMORY_MB,
           scratch: float = 4.0, threads: int = DEFAULT_THREADS, progress: Progress = None,
           cancel: Cancel = None, pass_window: bool = False, block_pixels: Optional[int] = None,
           grid: Optional[Grid] = None, engine=None,
           collect: Optional[Callable[[object], None]] = None) -> List[str]:
    """Apply ``func`` block by block to aligned ``sources`` and write ``outputs``.

    ``func(*arrays)`` (plus ``window=Window`` when ``pass_window``) receives one
    padded float array per source (NaN = NoData) and returns one array per
    output, 2-D or bands-first 3-D, either padded or already trimmed.
    ``scratch`` is the function's temporary memory per input/output pixel, in
    units of one array; it sizes the blocks together with ``memory_mb``.
    ``block_pixels`` forces a block size (tests). ``engine``: where the blocks are
    computed (see :mod:`.engine`; default: the current engine, normally local); the
    blocks and the written files do not depend on it. ``collect``: ``func`` returns
    ``(outputs, extra)`` and ``collect(extra)`` is called here in block order (small
    per-block numbers such as counts: block functions must not update shared state,
    which on a cluster lives in another process). Returns the written paths.
    """
    if grid is None:
        grid = common_grid(sources)
    for spec in outputs:
        check_output_path(spec.path, [s.path for s in sources])
    reader = BlockReader(sources, dtype)
    if sources and (reader.width, reader.height) != (grid.width, grid.height):
        raise S1S2Error("Internal error: the inputs are not on the output grid.")
    out_bands = sum(len(spec.bands) for spec in outputs)
    check_halo(halo, len(sources) + out_bands, reader.dtype.itemsize, memory_mb)
    if block_pixels is None:
        block_pixels = _budget_pixels(len(sources), out_bands, reader.dtype.itemsize,
                                      memory_mb, scratch, threads)
    windows = block_windows(grid.width, grid.height, block_pixels, halo)

    # what the block function needs of the outputs (the specs may hold GDAL objects: GCPs)
    kinds = [(spec.numpy_dtype, spec.nodata) for spec in outputs]
    with_extra = collect is not None  # ``collect`` itself stays here: it updates local state
    can_be_infinite = list(reader.can_be_infinite)

    def call(arrays, window):
        read_infinite = _infinite_to_nan(arrays, window, can_be_infinite)
        with np.errstate(all="ignore"):  # NaN/inf arithmetic is handled, not warned about
            result = func(*arrays, window=window) if pass_window else func(*arrays)
        extra = None
        if with_extra:
            result, extra = result
        blocks, computed_infinite = [], []
        for (out_dtype, nodata), block in zip(kinds, _as_tuple(result, len(kinds))):
            block = _trim(np.asarray(block), window)
            infinite = np.isinf(block) if block.dtype.kind == "f" else None
            computed_infinite.append(int(np.count_nonzero(infinite)) if infinite is not None
                                     else 0)
            if computed_infinite[-1]:  # e.g. dB -> linear above 385 dB: NoData, counted
                block = np.where(infinite, np.nan, block)
            if out_dtype.kind == "f" and not math.isnan(nodata):
                block = np.where(np.isnan(block), nodata, block)
            blocks.append(block.astype(out_dtype, copy=False))
        return blocks, extra, (read_infinite, computed_infinite)

    non_finite = _NonFinite(sources, outputs)

    def consume(window, result):
        blocks, extra, counts = result
        written.write(blocks, window.xoff, window.yoff)
        non_finite.add(*counts)
        if collect is not None:
            collect(extra)

    written = OutputSet(outputs, grid)
    try:
        written.prepare()
        _map_blocks(reader, windows, call, consume, threads, progress, cancel, engine)
        if cancel is not None and cancel():
            raise Cancelled()
    except BaseException:
        written.abort()
        raise
    paths = written.commit()  # all outputs together, or none (it aborts on failure)
    non_finite.report()
    return paths


def scan(func: Callable, sources: Sequence[BandSource], halo: int = 0, dtype: str = "float32",
         memory_mb: float = DEFAULT_MEMORY_MB, scratch: float = 4.0,
         threads: int = DEFAULT_THREADS, progress: Progress = None, cancel: Cancel = None,
         block_pixels: Optional[int] = None, engine=None) -> list:
    """Apply ``func(*arrays, window=Window)`` block by block and return its results in order.

    The reduction counterpart of :func:`stream` (statistics, model fits): the
    caller combines the per-block results, which should be small (with the Dask
    engine they are computed on the workers and sent back).
    """
    grid = common_grid(sources)
    reader = BlockReader(sources, dtype)
    check_halo(halo, len(sources), reader.dtype.itemsize, memory_mb)
    if block_pixels is None:
        block_pixels = _budget_pixels(len(sources), 0, reader.dtype.itemsize, memory_mb,
                                      scratch, threads)
    windows = block_windows(grid.width, grid.height, block_pixels, halo)
    results = []
    can_be_infinite = list(reader.can_be_infinite)

    def call(arrays, window):
        _infinite_to_nan(arrays, window, can_be_infinite)  # as in stream(): +-inf is NoData
        with np.errstate(all="ignore"):  # NaN/inf arithmetic is handled, not warned about
            return func(*arrays, window=window)

    _map_blocks(reader, windows, call, lambda w, r: results.append(r), threads, progress,
                cancel, engine)
    return results
