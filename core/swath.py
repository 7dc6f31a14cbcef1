"""Swath -> grid collocation: nearest neighbour within a radius, from 2-D lon/lat arrays.

Reference behaviour (SPEC, "Collocation S1 -> S2 grid"): pyresample
``kd_tree.resample_nearest(swath, data, area, radius_of_influence, fill_value=nan)``.
Same geometry, so the same neighbours:

* points are Cartesian on a sphere of radius ``EARTH_RADIUS`` = 6 370 997 m,
  ``x = R cos(lat) cos(lon)``, ``y = R cos(lat) sin(lon)``, ``z = R sin(lat)``
  (degrees, geodetic lon/lat used as spherical angles), float64; distances are
  chords in metres;
* target pixel centres are the grid's CRS coordinates turned into lon/lat by
  pyproj on the CRS's own geodetic datum (no datum shift);
* a target pixel takes the value of the nearest source point when that point is
  closer than ``radius`` (metres), otherwise NaN; a NaN source value is returned
  as is (NoData in, NoData out); source points with lon/lat outside
  [-180, 180] x [-90, 90] (or NaN) are ignored.

Memory is bounded: the swath is read in row strips and only points that can be
within ``radius`` of some target pixel (a spherical cap around the target) are
kept; the tree is queried block by block, and only in 16 x 16 pixel cells that
have a source point within reach. Only scipy's cKDTree and pyproj are used.
"""
import math
import os
import threading
from typing import Callable, Optional, Tuple, Union

import numpy as np
from osgeo import gdal
from pyproj import CRS, Transformer
from pyproj.enums import TransformDirection
from scipy.spatial import cKDTree

from .errors import Cancelled, S1S2Error
from .raster import Grid
from .streaming import DEFAULT_MEMORY_MB, DEFAULT_THREADS, Window, stream, sub_progress
from .writer import OutputRaster, check_output_path

gdal.UseExceptions()

EARTH_RADIUS = 6370997.0  # metres; pyresample's sphere
DEFAULT_RADIUS = 50.0     # metres; the MET Norway recipe
CELL = 16                 # target pixels per cell side for the reachability test

Progress = Optional[Callable[[float], None]]
Cancel = Optional[Callable[[], bool]]


def lonlat_to_cartesian(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """(n, 3) float64 Cartesian metres on the sphere (pyresample's formula, same rounding)."""
    lon = np.asarray(lon, dtype=np.float64).ravel()
    lat = np.asarray(lat, dtype=np.float64).ravel()
    coords = np.empty((lon.size, 3), dtype=np.float64)
    cos_lat = np.cos(np.deg2rad(lat))
    coords[:, 0] = EARTH_RADIUS * cos_lat * np.cos(np.deg2rad(lon))
    coords[:, 1] = EARTH_RADIUS * cos_lat * np.sin(np.deg2rad(lon))
    coords[:, 2] = EARTH_RADIUS * np.sin(np.deg2rad(lat))
    return coords


def _valid_lonlat(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    return (lon >= -180) & (lon <= 180) & (lat >= -90) & (lat <= 90)


class GridGeometry:
    """Pixel centres of a target grid as lon/lat and Cartesian points (thread safe)."""

    def __init__(self, grid: Grid):
        if not grid.crs_wkt:
            raise S1S2Error("TARGET: the target raster has no coordinate reference system.")
        self.grid = grid
        self.crs = CRS.from_wkt(grid.crs_wkt)
        self._local = threading.local()

    def _transformer(self) -> Transformer:
        # pyproj transformers must not be shared between threads.
        transformer = getattr(self._local, "transformer", None)
        if transformer is None:
            transformer = Transformer.from_crs(self.crs.geodetic_crs, self.crs, always_xy=True)
            self._local.transformer = transformer
        return transformer

    def lonlat(self, rows: np.ndarray, cols: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """lon/lat (degrees) of the centres of pixels (rows, cols), float64; any shape."""
        gt = self.grid.geotransform
        rows = np.asarray(rows, dtype=np.float64)
        cols = np.asarray(cols, dtype=np.float64)
        if gt[2] == 0 and gt[4] == 0:
            # pyresample's formula: index * pixel size + centre of the first pixel.
            x = cols * gt[1] + (gt[0] + gt[1] / 2)
            y = rows * gt[5] + (gt[3] + gt[5] / 2)
        else:
            x = gt[0] + (cols + 0.5) * gt[1] + (rows + 0.5) * gt[2]
            y = gt[3] + (cols + 0.5) * gt[4] + (rows + 0.5) * gt[5]
        lon, lat = self._transformer().transform(x, y, direction=TransformDirection.INVERSE)
        return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)

    def cartesian(self, rows, cols) -> Tuple[np.ndarray, np.ndarray]:
        """(n, 3) Cartesian points of pixel centres and the mask of valid lon/lat."""
        lon, lat = self.lonlat(rows, cols)
        valid = _valid_lonlat(lon, lat).ravel()
        return lonlat_to_cartesian(lon, lat), valid


class _Cells:
    """CELL x CELL pixel cells of the target: centre point and a bounding radius each.

    Every pixel centre of a cell lies within ``radius`` of the cell's centre point
    (corners of the cell's pixel-centre box, plus a margin for the sphere's bulge
    and the projection's curvature), so by the triangle inequality a cell whose
    centre has no source point within ``radius + R`` has none within ``R`` of any
    of its pixels.
    """

    def __init__(self, geometry: GridGeometry):
        grid = geometry.grid
        starts_c = np.arange(0, grid.width, CELL)
        starts_r = np.arange(0, grid.height, CELL)
        ends_c = np.minimum(starts_c + CELL - 1, grid.width - 1)
        ends_r = np.minimum(starts_r + CELL - 1, grid.height - 1)
        self.shape = (starts_r.size, starts_c.size)
        mid_r, mid_c = np.meshgrid((starts_r + ends_r) / 2.0, (starts_c + ends_c) / 2.0,
                                   indexing="ij")
        self.centres, centre_ok = geometry.cartesian(mid_r, mid_c)
        radius = np.zeros(mid_r.size)
        corners_ok = np.ones(mid_r.size, dtype=bool)
        for r_edge in (starts_r, ends_r):
            for c_edge in (starts_c, ends_c):
                rr, cc = np.meshgrid(r_edge, c_edge, indexing="ij")
                xyz, ok = geometry.cartesian(rr, cc)
                radius = np.maximum(radius, np.linalg.norm(xyz - self.centres, axis=1))
                corners_ok &= ok
        self.radius = radius * 1.01 + 1.0
        # A cell that is (partly) outside the CRS's valid area cannot be bounded:
        # query all its pixels individually.
        self.unbounded = ~(centre_ok & corners_ok & np.isfinite(self.radius))
        self.radius[self.unbounded] = np.inf
        self.live = np.ones(self.shape, dtype=bool)

    def cap(self) -> Tuple[np.ndarray, float]:
        """Centre and radius of a ball holding every pixel centre of the target."""
        if self.unbounded.any():
            return np.zeros(3), math.inf
        centre = self.centres.mean(axis=0)
        reach = np.linalg.norm(self.centres - centre, axis=1) + self.radius
        return centre, float(reach.max())

    def update_live(self, tree: cKDTree, radius: float, workers: int) -> None:
        distance, _ = tree.query(self.centres, k=1, workers=workers)
        live = (distance < self.radius + radius) | self.unbounded
        self.live = live.reshape(self.shape)


class SwathIndex:
    """A kd-tree of the swath points that can reach a target grid, and their values.

    Feed it with :meth:`add` (any number of strips), then :meth:`build`, then
    :meth:`sample` window by window.
    """

    def __init__(self, target_grid: Grid, radius: float = DEFAULT_RADIUS):
        if not radius > 0 or not math.isfinite(radius):
            raise S1S2Error(f"RADIUS must be a positive number of metres, not {radius!r}.")
        self.radius = float(radius)
        self.geometry = GridGeometry(target_grid)
        self.cells = _Cells(self.geometry)
        self.cap_centre, cap_radius = self.cells.cap()
        self.cap_radius = cap_radius + self.radius
        self._points, self._values = [], []
        self.tree: Optional[cKDTree] = None
        self.values: Optional[np.ndarray] = None

    def add(self, lon: np.ndarray, lat: np.ndarray, values: np.ndarray) -> None:
        """Keep the points of one strip (any shape, same for all three) that can reach the target."""
        self.append(*self.select(lon, lat, values))

    def append(self, points: np.ndarray, values: np.ndarray) -> None:
        """Add points already selected by :meth:`select`."""
        if points.shape[0]:
            self._points.append(points)
            self._values.append(values)

    def select(self, lon, lat, values) -> Tuple[np.ndarray, np.ndarray]:
        """(Cartesian points, float64 values) of the strip's points that can reach the target.

        Thread safe (no state changed) so strips can be filtered in parallel.
        """
        lon = np.asarray(lon, dtype=np.float64).ravel()
        lat = np.asarray(lat, dtype=np.float64).ravel()
        values = np.asarray(values).ravel()
        if not lon.size == lat.size == values.size:
            raise S1S2Error("Longitude, latitude and data arrays differ in size.")
        valid = _valid_lonlat(lon, lat)
        xyz = lonlat_to_cartesian(lon[valid], lat[valid])
        if math.isfinite(self.cap_radius):
            near = np.einsum("ij,ij->i", xyz - self.cap_centre, xyz - self.cap_centre) \
                <= self.cap_radius ** 2
            xyz = xyz[near]
            kept_values = values[valid][near]
        else:
            kept_values = values[valid]
        return xyz, kept_values.astype(np.float64, copy=False)

    @property
    def n_points(self) -> int:
        return 0 if self.values is None else self.values.size

    def build(self, workers: int = DEFAULT_THREADS) -> None:
        """Build the kd-tree; S1S2Error when no source point reaches the target."""
        if not self._points:
            raise S1S2Error("The swath does not overlap the target grid (no source point within "
                            f"{self.radius:g} m of it): nothing to collocate.")
        points = np.concatenate(self._points) if len(self._points) > 1 else self._points[0]
        self.values = np.concatenate(self._values) if len(self._values) > 1 else self._values[0]
        self._points, self._values = [], []
        # Sliding-midpoint (unbalanced) trees build several times faster than balanced ones;
        # compact nodes make the per-pixel queries ~30 % faster for a little build time.
        self.tree = cKDTree(points, leafsize=16, balanced_tree=False, compact_nodes=True)
        self.cells.update_live(self.tree, self.radius, workers)
        if not self.cells.live.any():
            raise S1S2Error("The swath does not overlap the target grid (no source point within "
                            f"{self.radius:g} m of it): nothing to collocate.")

    def sample(self, window: Window, workers: int = 1) -> np.ndarray:
        """Nearest values within the radius for the pixels of ``window`` (float64, NaN beyond)."""
        out = np.full((window.ysize, window.xsize), np.nan, dtype=np.float64)
        r0, c0 = window.yoff // CELL, window.xoff // CELL
        r1 = (window.yoff + window.ysize - 1) // CELL + 1
        c1 = (window.xoff + window.xsize - 1) // CELL + 1
        live = self.cells.live[r0:r1, c0:c1]
        if not live.any():
            return out
        mask = np.repeat(np.repeat(live, CELL, axis=0), CELL, axis=1)
        dy, dx = window.yoff - r0 * CELL, window.xoff - c0 * CELL
        mask = mask[dy:dy + window.ysize, dx:dx + window.xsize]
        rows, cols = np.nonzero(mask)
        xyz, valid = self.geometry.cartesian(rows + window.yoff, cols + window.xoff)
        if not valid.all():
            rows, cols, xyz = rows[valid], cols[valid], xyz[valid]
        _, index = self.tree.query(xyz, k=1, distance_upper_bound=self.radius, workers=workers)
        found = index < self.values.size
        out[rows[found], cols[found]] = self.values[index[found]]
        return out


def swath_to_grid(lon: np.ndarray, lat: np.ndarray, values: np.ndarray,
                  target_grid: Grid, radius: float = DEFAULT_RADIUS,
                  threads: int = DEFAULT_THREADS, block_rows: int = 64) -> np.ndarray:
    """In-memory swath -> grid: (height, width) float64 array, NaN beyond ``radius``.

    ``lon``, ``lat`` (degrees) and ``values`` are arrays of one shape. Same result
    as pyresample's ``resample_nearest(SwathDefinition(lon, lat), values,
    area, radius, fill_value=nan)``. For files use :func:`collocate_swath`.
    """
    from concurrent.futures import ThreadPoolExecutor

    lon, lat, values = (np.asarray(a).ravel() for a in (lon, lat, values))
    if not lon.size == lat.size == values.size:
        raise S1S2Error("Longitude, latitude and data arrays differ in size.")
    index = SwathIndex(target_grid, radius)
    grid = target_grid
    out = np.empty((grid.height, grid.width), dtype=np.float64)
    windows = [Window(0, y, grid.width, min(block_rows, grid.height - y))
               for y in range(0, grid.height, block_rows)]
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        # Filtering the swath is numpy work that releases the GIL: chunks in parallel,
        # kept in swath order (the tree, hence tie-breaking, does not depend on threads).
        step = 1 << 19
        chunks = list(pool.map(lambda i: index.select(lon[i:i + step], lat[i:i + step],
                                                      values[i:i + step]),
                               range(0, lon.size, step)))
        for points, kept in chunks:
            index.append(points, kept)
        index.build(workers=threads)
        for window, block in zip(windows, pool.map(index.sample, windows)):
            out[window.yoff:window.yoff + window.ysize] = block
    return out


# -- swath files ----------------------------------------------------------------------
def _subdataset_name(path: str, variable: str) -> str:
    """The GDAL name of ``variable`` in a NetCDF/HDF file (or ``variable`` if already one)."""
    if ":" in variable and not os.path.exists(variable) and variable.split(":")[0].isupper():
        return variable  # already a GDAL subdataset name such as NETCDF:"f.nc":lon
    try:
        dataset = gdal.Open(path)
        subdatasets = dataset.GetSubDatasets() if dataset is not None else []
    except RuntimeError:
        subdatasets = []
    for name, _ in subdatasets:
        tail = name.rsplit(":", 1)[-1].strip('"').lstrip("/")
        if tail == variable or tail.rsplit("/", 1)[-1] == variable:
            return name
    return f'NETCDF:"{path}":{variable}'


def _variable_names(path: str):
    try:
        dataset = gdal.Open(path)
        return [n.rsplit(":", 1)[-1] for n, _ in (dataset.GetSubDatasets() or [])]
    except RuntimeError:
        return []


class _Array:
    """One band of a GDAL raster read as float64 rows: scale/offset applied, NoData -> NaN."""

    def __init__(self, name: str, label: str, band: int = 1):
        try:
            self.dataset = gdal.Open(name)
        except RuntimeError as exc:
            raise S1S2Error(f"{label}: cannot open '{name}' ({exc}).") from None
        if not 1 <= band <= self.dataset.RasterCount:
            raise S1S2Error(f"{label}: band {band} requested but '{name}' has "
                            f"{self.dataset.RasterCount} band(s).")
        self.band = self.dataset.GetRasterBand(band)
        self.name, self.label = name, label
        self.shape = (self.dataset.RasterYSize, self.dataset.RasterXSize)
        self.nodata = self.band.GetNoDataValue()
        self.scale = self.band.GetScale()
        self.offset = self.band.GetOffset()

    def rows(self, y0: int, y1: int, x0: int = 0, x1: Optional[int] = None) -> np.ndarray:
        x1 = self.shape[1] if x1 is None else x1
        data = self.band.ReadAsArray(x0, y0, x1 - x0, y1 - y0).astype(np.float64)
        if self.nodata is not None:
            data[data == self.nodata] = np.nan
        if self.scale not in (None, 1.0) or self.offset not in (None, 0.0):
            data = data * (self.scale if self.scale is not None else 1.0) + (self.offset or 0.0)
        return data


class SwathFile:
    """A data variable with its 2-D longitude/latitude arrays.

    Either NetCDF/CF-style variables (``variable``, ``lon_variable``,
    ``lat_variable`` of one file, read through GDAL subdatasets such as
    ``NETCDF:"file.nc":lon``), or a raster with GDAL geolocation arrays (the
    GEOLOCATION metadata domain; ``variable`` empty or naming a subdataset that
    carries them).
    """

    def __init__(self, path: str, variable: str = "", lon_variable: str = "lon",
                 lat_variable: str = "lat", band: int = 1):
        if not path:
            raise S1S2Error("INPUT: no swath file given.")
        if not os.path.exists(path) and not path.startswith(("/vsi", "NETCDF:", "HDF5:")):
            raise S1S2Error(f"INPUT: '{path}' does not exist.")
        if not variable and _variable_names(path):
            raise S1S2Error(f"VARIABLE: '{path}' holds several variables; name the one to "
                            f"collocate: {', '.join(_variable_names(path))}.")
        data_name = _subdataset_name(path, variable) if variable else path
        self.data = _Array(data_name, f"VARIABLE {variable}" if variable else "INPUT", band)
        self.lon = self.lat = None
        names = _variable_names(path)
        tails = {n.strip('"').lstrip("/").rsplit("/", 1)[-1] for n in names}
        defaults = (lon_variable or "lon", lat_variable or "lat") == ("lon", "lat")
        found = lon_variable in tails and lat_variable in tails
        if found or not defaults or not self._geolocation():
            # Named coordinate variables; GDAL's geolocation arrays only stand in for the
            # default names (a user's explicit names must exist).
            if names and not found:
                raise S1S2Error(
                    f"INPUT: no variables '{lon_variable}'/'{lat_variable}' in '{path}'. "
                    f"Variables: {', '.join(sorted(tails))}. Set LON_VARIABLE and LAT_VARIABLE.")
            self.lon = _Array(_subdataset_name(path, lon_variable), "LON_VARIABLE")
            self.lat = _Array(_subdataset_name(path, lat_variable), "LAT_VARIABLE")
        else:
            self._use_geolocation()
        for array in (self.lon, self.lat):
            if array.shape != self.data.shape:
                raise S1S2Error(
                    f"{array.label}: '{array.name}' is {array.shape[1]} x {array.shape[0]}, the "
                    f"data {self.data.shape[1]} x {self.data.shape[0]}: they must match pixel "
                    "for pixel (tie-point grids must be interpolated first).")

    def _geolocation(self) -> dict:
        return self.data.dataset.GetMetadata("GEOLOCATION") or {}

    def _use_geolocation(self) -> None:
        geo = self._geolocation()
        if not geo:
            raise S1S2Error(f"INPUT: '{self.data.name}' has neither longitude/latitude "
                            "variables nor GDAL geolocation arrays.")
        steps = (float(geo.get("PIXEL_OFFSET", 0)), float(geo.get("LINE_OFFSET", 0)),
                 float(geo.get("PIXEL_STEP", 1)), float(geo.get("LINE_STEP", 1)))
        if steps != (0.0, 0.0, 1.0, 1.0):
            raise S1S2Error("INPUT: its geolocation arrays are subsampled (PIXEL_STEP/LINE_STEP "
                            "!= 1); only full-resolution lon/lat arrays are supported.")
        self.lon = _Array(geo["X_DATASET"], "longitude array", int(geo.get("X_BAND", 1)))
        self.lat = _Array(geo["Y_DATASET"], "latitude array", int(geo.get("Y_BAND", 1)))

    @property
    def shape(self) -> Tuple[int, int]:
        return self.data.shape

    def strips(self, rows: int):
        """Yield (y0, lon, lat, values) strips of ``rows`` rows."""
        height = self.shape[0]
        for y0 in range(0, height, rows):
            y1 = min(y0 + rows, height)
            yield y0, self.lon.rows(y0, y1), self.lat.rows(y0, y1), self.data.rows(y0, y1)


def collocate_swath(path: str, variable: str, target_grid: Union[Grid, str], output_path: str,
                    lon_variable: str = "lon", lat_variable: str = "lat",
                    radius: float = DEFAULT_RADIUS, band: int = 1, progress: Progress = None,
                    cancel: Cancel = None, memory_mb: float = DEFAULT_MEMORY_MB,
                    threads: int = DEFAULT_THREADS) -> str:
    """Swath file -> float32 GeoTIFF on ``target_grid`` (nearest within ``radius`` m, NaN beyond).

    ``collocate_swath(path, variable, target_grid, output_path, lon_variable="lon",
    lat_variable="lat", radius=50.0, band=1, progress=None, cancel=None) -> str``.
    The output has exactly the target's CRS, geotransform and size; it is written
    atomically. No overlap -> S1S2Error and no output.
    """
    grid = Grid.of_path(target_grid) if isinstance(target_grid, str) else target_grid
    check_output_path(output_path, [path])
    swath = SwathFile(path, variable, lon_variable, lat_variable, band)
    index = SwathIndex(grid, radius)
    height, width = swath.shape
    rows = max(1, int(memory_mb * 2 ** 20 / (width * 8 * 12)))
    build_progress = sub_progress(progress, 0.0, 30.0)
    for y0, lon, lat, values in swath.strips(rows):
        if cancel is not None and cancel():
            raise Cancelled()
        index.add(lon, lat, values)
        if build_progress:
            build_progress(100.0 * min(y0 + rows, height) / height)
    index.build(workers=threads)
    name = variable or os.path.splitext(os.path.basename(path))[0]
    output = OutputRaster(output_path, bands=[name], metadata={
        "algorithm": "s1s2:collocateswath", "source": f"{path} {variable}".strip(),
        "method": f"nearest neighbour within {radius:g} m (sphere R={EARTH_RADIUS:.0f} m)",
        "source_points_used": str(index.n_points)})
    return stream(lambda window: index.sample(window), [], [output], grid=grid,
                  pass_window=True, memory_mb=memory_mb, threads=threads, scratch=24.0,
                  progress=sub_progress(progress, 30.0, 100.0), cancel=cancel)[0]
