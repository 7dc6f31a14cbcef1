"""GeoTIFF output written atomically: a temporary file in the target folder,
renamed onto the requested path only when the whole run succeeded.
"""
import math
import os
import uuid
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence

import numpy as np
from osgeo import gdal

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
    folder = os.path.dirname(target) or "."
    if not os.path.isdir(folder):
        raise S1S2Error(f"The output folder '{folder}' does not exist.")
    if not os.access(folder, os.W_OK):
        raise S1S2Error(f"The output folder '{folder}' is not writable.")


class AtomicGeoTiff:
    """A GeoTIFF being written under a temporary name.

    ``commit()`` closes it and renames it onto ``spec.path``; ``abort()`` deletes
    it. A pre-existing file at ``spec.path`` is only replaced by ``commit()``,
    so a failed or cancelled run loses nothing.
    """

    def __init__(self, spec: OutputRaster, grid: Grid):
        self.spec = spec
        folder = os.path.dirname(os.path.abspath(spec.path))
        base = os.path.basename(spec.path)
        self.tmp_path = os.path.join(folder, f".{base}.{uuid.uuid4().hex[:8]}.part.tif")
        driver = gdal.GetDriverByName("GTiff")
        try:
            self.dataset = driver.Create(self.tmp_path, grid.width, grid.height, len(spec.bands),
                                         _GDAL_TYPES[spec.dtype], creation_options(spec.dtype))
        except RuntimeError as exc:
            raise S1S2Error(f"Cannot create the output '{spec.path}' ({exc}).") from None
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

    def write(self, data: np.ndarray, xoff: int, yoff: int) -> None:
        """Write a (bands, rows, cols) or (rows, cols) block at (xoff, yoff)."""
        if data.ndim == 2:
            data = data[np.newaxis]
        for i, plane in enumerate(data, start=1):
            self.dataset.GetRasterBand(i).WriteArray(plane, xoff, yoff)

    def commit(self) -> str:
        """Flush, close and move into place; returns the final path."""
        self.dataset.FlushCache()
        self.dataset = None
        os.replace(self.tmp_path, self.spec.path)
        # A stale .aux.xml of an earlier run would override the new statistics.
        stale_aux = self.spec.path + ".aux.xml"
        if os.path.exists(stale_aux):
            os.remove(stale_aux)
        return self.spec.path

    def abort(self) -> None:
        """Drop the temporary file (after a failure or a cancel)."""
        self.dataset = None
        for path in (self.tmp_path, self.tmp_path + ".aux.xml"):
            if os.path.exists(path):
                os.remove(path)
