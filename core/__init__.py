"""S1S2 Toolkit core: the science and the block-streaming raster I/O.

Pure numpy/scipy/GDAL/pyproj; never imports ``qgis``, so everything here runs
and is tested headless (``import s1s2_toolkit.core``).
"""
from .errors import Cancelled, S1S2Error
from .raster import BandSource, Grid, common_grid, open_raster, warped_to_grid
from .streaming import Window, block_windows, scan, stream, sub_progress
from .writer import OutputRaster

__all__ = [
    "BandSource", "Cancelled", "Grid", "OutputRaster", "S1S2Error", "Window",
    "block_windows", "common_grid", "open_raster", "scan", "stream", "sub_progress",
    "warped_to_grid",
]
