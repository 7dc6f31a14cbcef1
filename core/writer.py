"""GeoTIFF output written atomically: a temporary file in the target folder,
renamed onto the requested path only when the whole run succeeded.
"""
import contextlib
import math
import os
import uuid
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from osgeo import gdal

from .bandstats import RunningStatistics
from .errors import S1S2Error
from .raster import Grid

gdal.UseExceptions()

_GDAL_TYPES = {
    "float32": gdal.GDT_Float32,
    "float64": gdal.GDT_Float64,
    "uint8": gdal.GDT_Byte,
    "uint16": gdal.GDT_UInt16,
    "int16": gdal.GDT_Int16,
    "int32": gdal.GDT_Int32,
}


@dataclass
class OutputRaster:
    """What to write: path, band descriptions, type, NoData and metadata.

    ``nodata`` defaults to NaN for float outputs and 255 for uint8 masks
    (the toolkit's conventions). ``metadata`` is stored as GDAL metadata
    (algorithm, parameters, units...).
    """

    path: str
    bands: Sequence[str] = ("value",)
    dtype: str = "float32"
    nodata: Optional[float] = None
    metadata: Dict[str, str] = field(default_factory=dict)
    units: str = ""
    # Georeferencing by ground control points instead of the grid's geotransform
    # (S1 GRD in radar geometry): gdal.GCP list and the WKT of their CRS.
    gcps: Sequence = ()
    gcp_wkt: str = ""
    # The parameter the user knows this output by, for messages (OUTPUT_MEAN, ...).
    label: str = "OUTPUT"

    def __post_init__(self):
        if self.dtype not in _GDAL_TYPES:
            raise S1S2Error(f"Unsupported output type {self.dtype!r}.")
        if self.nodata is None:
            self.nodata = math.nan if self.dtype.startswith("float") else 255

    @property
    def numpy_dtype(self):
        return np.dtype(self.dtype)


def creation_options(dtype: str) -> list:
    """Tiled, DEFLATE-compressed GeoTIFF options; predictor 3 for floats, 2 for ints."""
    predictor = "3" if dtype.startswith("float") else "2"
    if dtype == "uint8":
        predictor = "1"  # class rasters compress best without differencing
    return ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "COMPRESS=DEFLATE",
            f"PREDICTOR={predictor}", "ZLEVEL=1", "BIGTIFF=IF_SAFER", "NUM_THREADS=2"]


# The toolkit writes tiled, compressed GeoTIFF only (declared to QGIS by the provider).
SUPPORTED_EXTENSIONS = ("tif", "tiff")


def check_extension(path: str, label: str = "OUTPUT") -> None:
    """S1S2Error unless ``path`` names a GeoTIFF: another format's name would hold a GeoTIFF."""
    extension = os.path.splitext(path)[1].lower().lstrip(".")
    if extension not in SUPPORTED_EXTENSIONS:
        named = f"the extension '.{extension}'" if extension else "no extension"
        raise S1S2Error(f"{label}: '{path}' has {named}; the S1S2 Toolkit writes GeoTIFF only: "
                        f"use {' or '.join('.' + e for e in SUPPORTED_EXTENSIONS)}.")


def check_output_path(path: str, input_paths: Sequence[str] = ()) -> None:
    """Refuse outputs that would destroy an input or cannot be written."""
    if not path:
        raise S1S2Error("No output path given.")
    target = os.path.realpath(path)
    if os.path.isdir(target):
        raise S1S2Error(f"The output '{path}' is a folder; give a file name.")
    for src in input_paths:
        if src and os.path.exists(src) and os.path.realpath(src) == target:
            raise S1S2Error(f"The output '{path}' is also an input; choose another output file.")
    check_extension(path, "The output")
    folder = os.path.dirname(target) or "."
    if not os.path.isdir(folder):
        raise S1S2Error(f"The output folder '{folder}' does not exist.")
    if not os.access(folder, os.W_OK):
        raise S1S2Error(f"The output folder '{folder}' is not writable.")


class DiskFull(S1S2Error):
    """An output does not fit on its device (found before the run or while writing)."""


# DEFLATE rarely halves float data: a run is refused early only when less than this
# fraction of the uncompressed size is free (a closer call fails cleanly while writing).
EARLY_REFUSAL_FRACTION = 0.5
_MB = 2 ** 20


def free_bytes(path: str) -> int:
    """Bytes available to this user on the device holding ``path``'s folder."""
    folder = os.path.dirname(os.path.abspath(path)) or "."
    stat = os.statvfs(folder)
    return stat.f_bavail * stat.f_frsize


def estimated_bytes(spec: OutputRaster, grid: Grid) -> int:
    """Uncompressed size of an output as written: whole 256 px tiles, all bands."""
    tiles_x, tiles_y = -(-grid.width // 256), -(-grid.height // 256)
    return tiles_x * tiles_y * 256 * 256 * len(spec.bands) * spec.numpy_dtype.itemsize


def disk_full_message(specs, needed: float, free: float) -> str:
    """'No space left on the device of OUTPUT '<path>' (about N MB needed, M MB free)...'"""
    specs = [specs] if isinstance(specs, OutputRaster) else list(specs)
    named = " and ".join(f"{spec.label} '{spec.path}'" for spec in specs)
    return (f"No space left on the device of {named} (about {math.ceil(needed / _MB)} MB "
            f"needed, {free // _MB} MB free). Free some space or choose another folder; nothing "
            "was written.")


def check_free_space(specs: Sequence[OutputRaster], grid: Grid) -> None:
    """DiskFull before a run whose outputs clearly cannot fit (summed per device)."""
    per_device = {}
    for spec in specs:
        folder = os.path.dirname(os.path.abspath(spec.path)) or "."
        per_device.setdefault(os.stat(folder).st_dev, []).append(spec)
    for on_device in per_device.values():
        needed = sum(estimated_bytes(spec, grid) for spec in on_device)
        free = free_bytes(on_device[0].path)
        if free < needed * EARLY_REFUSAL_FRACTION:
            raise DiskFull(disk_full_message(on_device, needed, free))


class AtomicGeoTiff:
    """A GeoTIFF being written under a temporary name.

    ``commit()`` closes it and renames it onto ``spec.path``; ``abort()`` deletes
    it. A pre-existing file at ``spec.path`` is only replaced by ``commit()``,
    so a failed or cancelled run loses nothing. Several outputs of one run are
    committed together by :class:`OutputSet`.

    Blocks given to ``write()`` also feed each band's statistics, stored in the file
    when the blocks covered the whole raster (:mod:`.bandstats`); a file filled another
    way (``gdal.Warp`` into ``dataset``) gets none.
    """

    def __init__(self, spec: OutputRaster, grid: Grid):
        self.spec = spec
        self.grid = grid
        self.statistics = [RunningStatistics(spec.nodata) for _ in spec.bands]
        folder = os.path.dirname(os.path.abspath(spec.path))
        base = os.path.basename(spec.path)
        self.tmp_path = os.path.join(folder, f".{base}.{uuid.uuid4().hex[:8]}.part.tif")
        driver = gdal.GetDriverByName("GTiff")
        try:
            self.dataset = driver.Create(self.tmp_path, grid.width, grid.height, len(spec.bands),
                                         _GDAL_TYPES[spec.dtype], creation_options(spec.dtype))
        except RuntimeError as exc:
            self.dataset = None
            error = self.write_error(exc, "Creating")
        else:
            error = None
        if error is not None:
            self.abort()
            raise error  # outside the handler: see write()
        if spec.gcps:
            self.dataset.SetGCPs(list(spec.gcps), spec.gcp_wkt)
        else:
            self.dataset.SetGeoTransform(grid.geotransform)
            if grid.crs_wkt:
                self.dataset.SetProjection(grid.crs_wkt)
        metadata = dict(spec.metadata)
        if spec.units:
            metadata.setdefault("units", spec.units)
        if metadata:
            self.dataset.SetMetadata({k: str(v) for k, v in metadata.items()})
        for i, description in enumerate(spec.bands, start=1):
            band = self.dataset.GetRasterBand(i)
            band.SetDescription(description)
            band.SetNoDataValue(spec.nodata)
            if spec.units:
                band.SetUnitType(spec.units)

    def write_error(self, exc: Exception, doing: str = "Writing") -> S1S2Error:
        """The error to raise for a failed write: DiskFull when the device is (nearly) full."""
        try:
            free = free_bytes(self.spec.path)
        except OSError:
            free = None
        needed = estimated_bytes(self.spec, self.grid)
        text = str(exc)
        if (free is not None and free < min(needed, 4 * _MB)) or "No space" in text:
            return DiskFull(disk_full_message(self.spec, needed, free or 0))
        return S1S2Error(f"{doing} {self.spec.label} '{self.spec.path}' failed ({text}); "
                         "nothing was written.")

    def write(self, data: np.ndarray, xoff: int, yoff: int) -> None:
        """Write a (bands, rows, cols) or (rows, cols) block at (xoff, yoff)."""
        if data.ndim == 2:
            data = data[np.newaxis]
        try:
            for i, plane in enumerate(data, start=1):
                self.dataset.GetRasterBand(i).WriteArray(plane, xoff, yoff)
                self._add_statistics(i - 1, plane)
            return
        except RuntimeError as exc:
            error = self.write_error(exc)
        # Raised outside the handler: GDAL's traceback (frames holding the dataset, so the
        # file stays open and keeps the disk full) is not chained to the error.
        raise error

    def _add_statistics(self, index: int, plane: np.ndarray) -> None:
        if self.statistics[index] is None:
            return
        if plane.dtype != self.spec.numpy_dtype:  # GDAL converts (and clamps): not followed
            self.statistics[index] = None
            return
        self.statistics[index].add(plane)

    def _store_statistics(self) -> None:
        """Band statistics into the file (GDAL metadata, kept in the .tif as it is written),
        only for bands whose blocks covered every pixel once."""
        total = self.grid.width * self.grid.height
        for i, running in enumerate(self.statistics, start=1):
            if running is not None and running.seen == total:
                band = self.dataset.GetRasterBand(i)
                for key, value in running.result().metadata(total).items():
                    band.SetMetadataItem(key, value)

    def finish(self) -> None:
        """Store the band statistics, flush and close the temporary file (the step where
        a full disk shows)."""
        try:
            self._store_statistics()
            self.dataset.FlushCache()
            self.dataset = None
            return
        except RuntimeError as exc:
            error = self.write_error(exc)
        raise error  # outside the handler: see write()

    def commit(self) -> str:
        """Flush, close and move into place; returns the final path."""
        return OutputSet.of([self]).commit()[0]

    def abort(self) -> None:
        """Drop the temporary file (after a failure or a cancel)."""
        # Closing a file on a full disk fails to flush: quietly (no exception from the
        # destructor reaches the user's log), it is deleted below anyway.
        if self.dataset is not None:
            with _quiet_gdal():
                self.dataset = None
        _remove_quietly(self.tmp_path, self.tmp_path + ".aux.xml")


@contextlib.contextmanager
def _quiet_gdal():
    """GDAL errors neither raised nor printed (closing a dataset that cannot be flushed)."""
    used = gdal.GetUseExceptions()
    gdal.DontUseExceptions()
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    try:
        yield
    finally:
        gdal.PopErrorHandler()
        if used:
            gdal.UseExceptions()


def _remove_quietly(*paths: str) -> None:
    for path in paths:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def replace_together(moves: Sequence[Tuple[str, str]]) -> None:
    """Move each finished temporary file onto its final path: all of them or none.

    ``moves``: (temporary, final) pairs on the same device each. An existing final
    file is kept under a hidden hard link until every move has succeeded, so a
    failure half-way puts the earlier finals back; the temporaries are removed
    whatever happens. A stale ``.aux.xml`` of an earlier run is removed (it would
    override the new statistics).
    """
    backups, done = {}, []
    try:
        for tmp, final in moves:
            if os.path.exists(final):
                backup = os.path.join(os.path.dirname(os.path.abspath(final)),
                                      f".{os.path.basename(final)}.{uuid.uuid4().hex[:8]}.part.old")
                try:
                    os.link(final, backup)
                    backups[final] = backup
                except OSError:  # no hard links here: the old file cannot be restored
                    pass
            os.replace(tmp, final)
            done.append(final)
    except BaseException:
        for final in reversed(done):
            if final in backups:
                os.replace(backups.pop(final), final)
            else:
                _remove_quietly(final)
        raise
    finally:
        _remove_quietly(*(tmp for tmp, _ in moves), *backups.values())
    for _, final in moves:
        _remove_quietly(final + ".aux.xml")


class OutputSet:
    """All raster outputs of one run: written under temporary names, replaced together.

    ``prepare()`` checks the free space and creates the temporary files, ``write()``
    writes one block of every output, ``commit()`` flushes all of them and only then
    moves them into place (:func:`replace_together`), ``abort()`` removes them. Any
    failure in ``commit()`` aborts: an existing output is replaced only when every
    output of the run is, and no ``.part`` file survives.
    """

    def __init__(self, specs: Sequence[OutputRaster], grid: Grid):
        self.specs, self.grid = list(specs), grid
        self.writers: List[AtomicGeoTiff] = []

    @classmethod
    def of(cls, writers: Sequence[AtomicGeoTiff]) -> "OutputSet":
        """A set of writers created elsewhere (e.g. a warp straight into the file)."""
        outputs = cls([w.spec for w in writers], writers[0].grid if writers else None)
        outputs.writers = list(writers)
        return outputs

    def prepare(self) -> "OutputSet":
        check_free_space(self.specs, self.grid)
        try:
            for spec in self.specs:
                self.writers.append(AtomicGeoTiff(spec, self.grid))
        except BaseException:
            self.abort()
            raise
        return self

    def write(self, blocks: Sequence[np.ndarray], xoff: int, yoff: int) -> None:
        for writer, block in zip(self.writers, blocks):
            writer.write(block, xoff, yoff)

    def commit(self) -> List[str]:
        try:
            for writer in self.writers:
                writer.finish()
            replace_together([(w.tmp_path, w.spec.path) for w in self.writers])
        except BaseException:
            self.abort()
            raise
        return [w.spec.path for w in self.writers]

    def abort(self) -> None:
        for writer in self.writers:
            writer.abort()


def write_sidecar(path: str, text: str) -> Optional[str]:
    """Write a small text file next to a committed output (a ``.qml`` style), atomically.

    Returns None, or a warning when it cannot be written (a folder of that name, a full
    disk...): a style is not worth failing a run whose raster is written. A stale file
    of an earlier run is removed then, so it cannot style the new raster wrongly.
    """
    folder, base = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{base}.{uuid.uuid4().hex[:8]}.part")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
        return None
    except OSError as exc:
        _remove_quietly(tmp)
        if os.path.isfile(path):
            try:
                os.remove(path)
            except OSError:
                pass
        return f"The style '{path}' could not be written ({exc.strerror or exc}); the output " \
               "is complete, style it by hand."
