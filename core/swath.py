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

Two exact paths give that result:

* :func:`swath_to_grid` with 2-D lon/lat arrays (a swath lattice) projects the
  swath points once into the target's CRS plane (whitened so that plane
  distances are sphere chords within a measured relative bound ``delta``;
  pyproj on a 0.001 degree lon/lat lattice, interpolated within a measured
  error bound that widens every margin), cuts the lattice into tiles that are
  affine maps of their (i, j) indices within a measured residual, and gives each
  target pixel the nearest of the 2 x 2 lattice points around its fractional
  index, with a certified lower bound for every other point. The work is
  vectorised over many tiles at once (the footprints' pixel rows of tiles whose
  footprint boxes are disjoint, one numpy operation per step) and over row bands
  on parallel threads. Pixels whose winner or radius decision is in doubt (near
  ties, the radius fringe: ~0.2 % of the benchmark's pixels) are decided by exact
  chords over every point that can matter. No kd-tree, no per-pixel projection.
  Falls back to the kd-tree path when the assumptions fail (invalid lon/lat,
  degenerate lattice, a CRS plane too distorted over the target).
  :func:`collocate_swath` (files) reads the swath box that can reach the target
  once, prepares it once (:class:`_FastSwath`) and runs the same path output block
  by block (any block size gives the same pixels).
* the kd-tree path (:class:`SwathIndex`, the fallback of both): only points that
  can be within ``radius`` of some target pixel (a spherical cap around the
  target) are kept;
  the tree is queried block by block, and only in 16 x 16 pixel cells that have
  a source point within reach. Only scipy's cKDTree and pyproj are used.
"""
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
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


def transform_points(transformer: Transformer, x, y, inverse: bool = False):
    """``transformer.transform`` for arrays of any size and shape, as float64 arrays.

    pyproj takes a 1-element array for a single point and converts it to a scalar, which numpy
    2 deprecates: such arrays go through as scalars.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    direction = TransformDirection.INVERSE if inverse else TransformDirection.FORWARD
    if x.size == 1:
        a, b = transformer.transform(x.item(), y.item(), direction=direction)
        return np.full(x.shape, a, dtype=np.float64), np.full(y.shape, b, dtype=np.float64)
    a, b = transformer.transform(x, y, direction=direction)
    return np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)


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

    def __getstate__(self):  # sent to Dask workers: the per-thread transformers stay here
        state = dict(self.__dict__)
        state.pop("_local")
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._local = threading.local()

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
        return transform_points(self._transformer(), x, y, inverse=True)

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

    def reaches(self, lon, lat) -> np.ndarray:
        """Bool array (shape of ``lon``): valid points within the cap that holds the target."""
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        near = _valid_lonlat(lon, lat)
        if math.isfinite(self.cap_radius):
            xyz = lonlat_to_cartesian(lon[near], lat[near]) - self.cap_centre
            near[near] = np.einsum("ij,ij->i", xyz, xyz) <= self.cap_radius ** 2
        return near

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



# -- fast path: the swath's own index lattice, in the target's (whitened) projected plane --------
TILE = 32            # swath points per tile side
ROUNDING = 1e-6      # relative: float32 storage of plane distances
DELTA_SAFETY = 1e-4  # added to the measured plane -> sphere scale deviation (2nd order, rounding)
CHUNK = 1 << 17      # (tile, pixel) elements per vectorised step: temporaries stay in cache
BAND = 256           # output rows sampled at a time (bands run on parallel threads)
CELL_TILES = 64      # largest pixel cell side of the tile look-up for doubtful pixels
PROJECT_STEP = 0.001  # degrees: node spacing of the interpolated projection
PROJECT_ERROR = 2e-3  # metres: largest accepted interpolation error bound (else exact)


class _Plane:
    """The target CRS plane, centred and whitened so that plane distances ~ sphere chords.

    ``q = W (x - xc, y - yc)`` with ``W = sqrt(J0^T J0)``, ``J0`` the Jacobian of
    plane -> sphere Cartesian at the target centre. ``delta`` bounds, over the target
    extent (plus a margin), how far the local scale of ``q`` -> sphere departs from 1:
    for two points a few radii apart, ``(1 - delta) |dq| <= chord <= (1 + delta) |dq|``.
    """

    def __init__(self, geometry: GridGeometry, margin: float):
        grid = geometry.grid
        gt = grid.geotransform
        corners = [(c, r) for c in (0, grid.width) for r in (0, grid.height)]
        xs = [gt[0] + c * gt[1] + r * gt[2] for c, r in corners]
        ys = [gt[3] + c * gt[4] + r * gt[5] for c, r in corners]
        self.xc, self.yc = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2
        self.geometry = geometry
        j0 = self._jacobian(np.array([self.xc]), np.array([self.yc]))[0]
        lam, vec = np.linalg.eigh(j0.T @ j0)
        self.w = (vec * np.sqrt(lam)) @ vec.T
        w_inv = np.linalg.inv(self.w)
        margin = margin / math.sqrt(max(lam.min(), 1e-300))  # metres -> CRS units
        n = 33
        tx = np.linspace(min(xs) - margin, max(xs) + margin, n)
        ty = np.linspace(min(ys) - margin, max(ys) + margin, n)
        sx, sy = (a.ravel() for a in np.meshgrid(tx, ty))
        sv = np.linalg.svd(self._jacobian(sx, sy) @ w_inv, compute_uv=False).reshape(n, n, 2)
        # between samples the scale moves by at most about its change between neighbours
        step = max(np.abs(np.diff(sv, axis=0)).max(), np.abs(np.diff(sv, axis=1)).max())
        self.delta = float(np.max(np.abs(sv - 1.0)) + step) + DELTA_SAFETY
        self.ok = bool(np.isfinite(self.delta) and self.delta < 0.05)

    def _jacobian(self, x, y):
        transformer = self.geometry._transformer()
        gt = self.geometry.grid.geotransform
        step = 2.5 * math.hypot(gt[1], gt[4])  # CRS units (25 m for 10 m pixels)
        cols = []
        for dx, dy in ((step, 0.0), (0.0, step)):
            a = transform_points(transformer, x + dx, y + dy, inverse=True)
            b = transform_points(transformer, x - dx, y - dy, inverse=True)
            cols.append((lonlat_to_cartesian(*a) - lonlat_to_cartesian(*b)) / (2 * step))
        return np.stack(cols, axis=2)  # (n, 3, 2)

    def whiten(self, x, y):
        x = np.asarray(x, dtype=np.float64) - self.xc
        y = np.asarray(y, dtype=np.float64) - self.yc
        w = self.w
        return w[0, 0] * x + w[0, 1] * y, w[1, 0] * x + w[1, 1] * y

    def pixel_affine(self):
        """(q0, qc, qr): whitened plane q of pixel centre (r, c) = q0 + c qc + r qr."""
        gt = self.geometry.grid.geotransform
        q0 = np.array(self.whiten(gt[0] + 0.5 * gt[1] + 0.5 * gt[2],
                                  gt[3] + 0.5 * gt[4] + 0.5 * gt[5]))
        qc = self.w @ np.array([gt[1], gt[4]])
        qr = self.w @ np.array([gt[2], gt[5]])
        return q0, qc, qr


def _tile_edges(n: int, tile: int) -> np.ndarray:
    edges = list(range(0, n, tile)) + [n]
    if len(edges) > 2 and edges[-1] - edges[-2] < tile // 2:
        del edges[-2]  # no thin last tile: each tile has >= tile/2 points per side
    return np.array(edges)


class _Tiles:
    """The swath lattice cut into tiles, each an affine map of its (i, j) into the plane.

    For tile ``t``: plane(i, j) = ``p0 + i a_i + j a_j`` within ``eps`` (metres, measured
    over the tile's own points); ``h_i``/``h_j``: plane gap per unit of i / j (the
    parallelogram's heights), so a point ``n`` units of i away is >= ``n h_i - eps`` away.
    ``exp_i``/``exp_j``: index units around the tile within which a pixel can have one of
    the tile's points within ``reach`` metres (its footprint).
    """

    def __init__(self, qx, qy, reach: float, tile: int):
        ny, nx = qx.shape
        self.qx, self.qy = qx, qy
        ei, ej = _tile_edges(ny, tile), _tile_edges(nx, tile)
        ti0, tj0 = np.meshgrid(ei[:-1], ej[:-1], indexing="ij")
        ti1, tj1 = np.meshgrid(ei[1:] - 1, ej[1:] - 1, indexing="ij")
        todo = [a.ravel() for a in (ti0, ti1, tj0, tj1)]
        done = []
        while todo[0].size:
            self._fit(*todo)
            eps = self._residuals()
            # a tile that bends (tie-point grid seams) more than 1/8 of the lattice
            # spacing is split in four, down to 8 x 8 points
            spacing = np.minimum(self.h_i, self.h_j)
            split = (eps > spacing / 8) & (self.i1 - self.i0 >= 7) & (self.j1 - self.j0 >= 7)
            keep = ~split
            done.append([a[keep] for a in (self.i0, self.i1, self.j0, self.j1, eps)])
            i0, i1, j0, j1 = (a[split] for a in (self.i0, self.i1, self.j0, self.j1))
            im, jm = (i0 + i1 + 1) // 2, (j0 + j1 + 1) // 2
            todo = [np.concatenate(x) for x in (
                (i0, i0, im, im), (im - 1, im - 1, i1, i1),
                (j0, jm, j0, jm), (jm - 1, j1, jm - 1, j1))]
        i0, i1, j0, j1, eps = (np.concatenate(x) for x in zip(*done))
        # tiles of one shape get consecutive numbers (see _tile_blocks)
        order = np.lexsort((j0, i0, j1 - j0, i1 - i0))
        i0, i1, j0, j1, eps = (a[order] for a in (i0, i1, j0, j1, eps))
        self._fit(i0, i1, j0, j1)  # the same fits again, for the kept tiles
        self.eps = eps * (1 + 1e-9) + 1e-6
        self.ok = bool(np.all(self.h_i > 0) and np.all(self.h_j > 0)
                       and np.all(np.isfinite(self.eps)))
        with np.errstate(divide="ignore", invalid="ignore"):
            self.exp_i = (reach + self.eps) / self.h_i + 0.01  # + a small slack
            self.exp_j = (reach + self.eps) / self.h_j + 0.01

    def _fit(self, i0, i1, j0, j1) -> None:
        """Affine maps of tiles [i0, i1] x [j0, j1] (inclusive) from their corner points."""
        qx, qy = self.qx, self.qy
        self.i0, self.i1, self.j0, self.j1 = i0, i1, j0, j1
        base = np.stack([qx[i0, j0], qy[i0, j0]], axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.a_i = (np.stack([qx[i1, j0], qy[i1, j0]], axis=1) - base) / (i1 - i0)[:, None]
            self.a_j = (np.stack([qx[i0, j1], qy[i0, j1]], axis=1) - base) / (j1 - j0)[:, None]
            self.p0 = base - i0[:, None] * self.a_i - j0[:, None] * self.a_j
            det = self.a_i[:, 0] * self.a_j[:, 1] - self.a_i[:, 1] * self.a_j[:, 0]
            self.h_i = np.abs(det) / np.hypot(self.a_j[:, 0], self.a_j[:, 1])
            self.h_j = np.abs(det) / np.hypot(self.a_i[:, 0], self.a_i[:, 1])

    def _residuals(self) -> np.ndarray:
        """Largest distance of each tile's points from its affine map (metres)."""
        eps = np.empty(self.i0.size)
        nx = self.qx.shape[1]
        qx, qy = self.qx.ravel(), self.qy.ravel()
        for t, ii, jj in _tile_blocks(self.i0, self.i1, self.j0, self.j1):
            k = ii * nx + jj
            fx = _per_tile(self.p0[t, 0]) + ii * _per_tile(self.a_i[t, 0]) \
                + jj * _per_tile(self.a_j[t, 0]) - np.take(qx, k)
            fy = _per_tile(self.p0[t, 1]) + ii * _per_tile(self.a_i[t, 1]) \
                + jj * _per_tile(self.a_j[t, 1]) - np.take(qy, k)
            eps[t] = np.sqrt((fx * fx + fy * fy).reshape(t.size, -1).max(axis=1))
        return eps


def _per_tile(a: np.ndarray) -> np.ndarray:
    return a[:, None, None]


def _tile_blocks(i0, i1, j0, j1, points: int = 1 << 20):
    """(tiles, ii, jj) for groups of tiles of one shape: ii (tiles, rows, 1) and jj (tiles, 1,
    cols) index their points; at most about ``points`` points per group."""
    shape = np.stack([i1 - i0 + 1, j1 - j0 + 1], axis=1)
    kinds, kind = np.unique(shape, axis=0, return_inverse=True)
    for k, (rows, cols) in enumerate(kinds):
        tiles = np.nonzero(kind.ravel() == k)[0]
        step = max(1, points // int(rows * cols))
        for start in range(0, tiles.size, step):
            t = tiles[start:start + step]
            yield (t, _per_tile(i0[t]) + np.arange(rows)[None, :, None],
                   _per_tile(j0[t]) + np.arange(cols)[None, None, :])


def _project_swath(lon2, lat2, plane: _Plane, threads: int):
    """Swath points in the whitened target plane: (qx, qy, error bound in metres).

    pyproj is called on a lon/lat lattice of PROJECT_STEP degrees (a few % of the
    points) and the plane coordinates are interpolated bilinearly; the error bound is
    the bilinear remainder (h^2 / 8) |f''| per axis, with |f''| taken as twice the
    largest second difference of the projected nodes, checked against exact
    projections of a sample of the points. Where that does not apply (a lon/lat box
    wider than 180 degrees, too many nodes, a bound above PROJECT_ERROR, a failed
    check) every point is projected exactly (error 0)."""
    crs = plane.geometry.crs
    ny, nx = lon2.shape
    qx, qy = np.empty((ny, nx)), np.empty((ny, nx))
    rows_step = max(1, (1 << 18) // nx)  # strips of ~256 k points: small temporaries

    def transform(lon, lat):
        transformer = Transformer.from_crs(crs.geodetic_crs, crs, always_xy=True)
        return plane.whiten(*transform_points(transformer, lon, lat))

    def exact(y0):  # pyproj releases the GIL: strips in parallel, one transformer each
        rows = slice(y0, min(ny, y0 + rows_step))
        qx[rows], qy[rows] = transform(lon2[rows], lat2[rows])

    nodes = None
    lon_min, lon_max = float(lon2.min()), float(lon2.max())
    lat_min, lat_max = float(lat2.min()), float(lat2.max())
    step = PROJECT_STEP
    n_lon = int((lon_max - lon_min) / step) + 3
    n_lat = int((lat_max - lat_min) / step) + 3
    if lon_max - lon_min <= 180 and n_lon * n_lat * 8 <= lon2.size:
        lon_n = lon_min + step * np.arange(n_lon)
        lat_n = lat_min + step * np.arange(n_lat)
        nx_n, ny_n = transform(*np.meshgrid(lon_n, lat_n))
        error = 0.0
        for a in (nx_n, ny_n):  # second differences along lon and lat, x 2 for safety
            d_lon = np.abs(a[:, 2:] - 2 * a[:, 1:-1] + a[:, :-2]).max() if n_lon > 2 else 0.0
            d_lat = np.abs(a[2:] - 2 * a[1:-1] + a[:-2]).max() if n_lat > 2 else 0.0
            error = math.hypot(error, 2 * (d_lon + d_lat) / 8)
        error = error + 1e-6
        if np.isfinite(nx_n).all() and np.isfinite(ny_n).all() and error <= PROJECT_ERROR:
            nodes = (nx_n + 1j * ny_n).ravel()

    def interpolate(y0):
        rows = slice(y0, min(ny, y0 + rows_step))
        x = (lon2[rows] - lon_min) / step
        y = (lat2[rows] - lat_min) / step
        ix = np.clip(np.floor(x), 0, n_lon - 2)
        iy = np.clip(np.floor(y), 0, n_lat - 2)
        x -= ix
        y -= iy
        k = (iy * n_lon + ix).astype(np.intp)
        z = np.take(nodes, k) * (1 - x)
        z += np.take(nodes, k + 1) * x
        z *= 1 - y
        w = np.take(nodes, k + n_lon) * (1 - x)
        w += np.take(nodes, k + n_lon + 1) * x
        w *= y
        z += w
        qx[rows], qy[rows] = z.real, z.imag

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        if nodes is not None:
            list(pool.map(interpolate, range(0, ny, rows_step)))
            # check: exact projections of a sample of the points stay within the bound
            si = np.linspace(0, ny - 1, 64).astype(int)[:, None]
            sj = np.linspace(0, nx - 1, 64).astype(int)[None, :]
            ex, ey = transform(lon2[si, sj], lat2[si, sj])
            if not np.all(np.hypot(ex - qx[si, sj], ey - qy[si, sj]) <= error):
                nodes = None
        if nodes is None:
            error = 0.0
            list(pool.map(exact, range(0, ny, rows_step)))
    return qx, qy, error


class _FastSwath:
    """The fast path's swath, prepared once: projected, tiled; sampled window by window.

    ``ok`` is False when the path does not apply (see :func:`_fast_swath_to_grid`).
    :meth:`sample` of any window gives the same pixels as the whole grid at once.

    Layout: the tiles' plane points are stored tile by tile (tile-major, complex64,
    relative to each tile's own origin so that float32 keeps ~0.1 mm), so the 2 x 2
    candidates of a pixel come from one small block of memory. Per-tile maps are
    kept as arrays (one entry per tile) so that many tiles are processed in one
    numpy operation: a batch holds row runs (the footprint's pixels on one row) of
    tiles whose footprint boxes are disjoint (one "colour"), laid out as a (runs,
    longest run) array, so its pixels are distinct and merge by gather/scatter.
    """

    def __init__(self, lon2, lat2, values, target_grid: Grid, radius: float, threads: int):
        self.ok = False
        ny, nx = lon2.shape
        if ny < 8 or nx < 8 or not np.all(_valid_lonlat(lon2, lat2)):
            return
        geometry = GridGeometry(target_grid)
        grid = target_grid
        plane = _Plane(geometry, margin=4 * radius + 100.0)
        if not plane.ok:
            return
        delta = plane.delta
        reach = radius / (1.0 - delta) * (1 + 1e-9) + 1e-6  # plane reach of the radius
        qx, qy, error = _project_swath(lon2, lat2, plane, threads)
        if not (np.isfinite(qx).all() and np.isfinite(qy).all()):
            return
        # interpolated plane positions are within ``error`` of the exact ones: widen the reach
        # (footprints, search windows) and the certificate's margin by 2 * error
        reach += 2 * error
        tiles = _Tiles(qx, qy, reach, TILE)
        if not tiles.ok:
            return
        q0, qc, qr = plane.pixel_affine()
        m_inv = np.linalg.inv(np.array([[qc[0], qr[0]], [qc[1], qr[1]]]))
        self.nx, self.radius, self.reach, self.delta = nx, radius, reach, delta
        self.geometry, self.tiles, self.threads = geometry, tiles, max(1, int(threads))
        self.lon, self.lat = lon2.ravel(), lat2.ravel()
        self.q0, self.qc, self.qr = q0, qc, qr
        n_t = tiles.i0.size
        i0, j0 = tiles.i0, tiles.j0
        ni, nj = tiles.i1 - i0 + 1, tiles.j1 - j0 + 1
        # tile-major copies: plane points relative to the tile's first point, and values
        self.origin = np.stack([qx[i0, j0], qy[i0, j0]], axis=1)
        self.offset = np.zeros(n_t + 1, dtype=np.int64)
        np.cumsum(ni * nj, out=self.offset[1:])
        self.z = np.empty(self.offset[-1], dtype=np.complex64)
        # float64 whatever the caller's type: the output is filled by np.take(..., out=float64)
        self.values = np.empty(self.offset[-1], dtype=np.float64)
        zx, zy = self.z.view(np.float32)[0::2], self.z.view(np.float32)[1::2]
        q_local = 0.0
        flat_x, flat_y = qx.ravel(), qy.ravel()
        for t, ii, jj in _tile_blocks(tiles.i0, tiles.i1, tiles.j0, tiles.j1):
            k = (ii * nx + jj).reshape(t.size, -1)
            if np.all(np.diff(t) == 1):  # consecutive tiles: one slice of the tile-major arrays
                part = slice(self.offset[t[0]], self.offset[t[-1] + 1])
            else:
                part = (self.offset[t][:, None] + np.arange(k.shape[1])).ravel()
            block_x = np.take(flat_x, k) - self.origin[t, 0][:, None]
            block_y = np.take(flat_y, k) - self.origin[t, 1][:, None]
            zx[part], zy[part] = block_x.ravel(), block_y.ravel()
            self.values[part] = np.take(values, k).ravel()
            q_local = max(q_local, float(np.abs(block_x).max()), float(np.abs(block_y).max()))
        qx = qy = tiles.qx = tiles.qy = None  # the tile-major copy replaces them
        # per-tile maps: local index u = (i - i0, j - j0) of pixel (r, c) = u0 + c uc + r ur
        a_i, a_j, p0 = tiles.a_i, tiles.a_j, tiles.p0
        with np.errstate(divide="ignore", invalid="ignore"):
            det = a_i[:, 0] * a_j[:, 1] - a_j[:, 0] * a_i[:, 1]
            inv = np.stack([np.stack([a_j[:, 1], -a_j[:, 0]], axis=1),
                            np.stack([-a_i[:, 1], a_i[:, 0]], axis=1)], axis=1) / det[:, None, None]
        self.u0 = np.einsum("tab,tb->ta", inv, q0 - p0) - np.stack([i0, j0], axis=1)
        self.uc, self.ur = inv @ qc, inv @ qr
        # footprint: local index range of the pixels that can have a tile point within reach
        self.lo = np.stack([-tiles.exp_i, -tiles.exp_j], axis=1)
        self.hi = np.stack([ni - 1 + tiles.exp_i, nj - 1 + tiles.exp_j], axis=1)
        self.ni, self.nj = ni, nj
        # absolute margin (metres) for the float32 local plane coordinates and distances:
        # local magnitudes stay below q_local plus the footprint's extent
        extent = float(np.max(np.hypot(ni * np.hypot(*a_i.T), nj * np.hypot(*a_j.T))))
        self.margin = 4e-7 * (q_local + extent + 2 * reach) + 1e-3 + 2 * error
        # each tile's footprint box on the whole grid: [r0, r1) x [c0, c1), empty if r1 <= r0
        corners = np.stack([p0 + (i0 + self.lo[:, 0] if a else i0 + self.hi[:, 0])[:, None] * a_i
                            + (j0 + self.lo[:, 1] if b else j0 + self.hi[:, 1])[:, None] * a_j
                            for a in (0, 1) for b in (0, 1)], axis=1) - q0  # (T, 4, 2)
        cr = corners @ m_inv.T  # (col, row) of the corners
        with np.errstate(invalid="ignore"):
            c_lo = np.clip(np.floor(cr[..., 0].min(axis=1)), 0, grid.width)
            c_hi = np.clip(np.ceil(cr[..., 0].max(axis=1)) + 1, 0, grid.width)
            r_lo = np.clip(np.floor(cr[..., 1].min(axis=1)), 0, grid.height)
            r_hi = np.clip(np.ceil(cr[..., 1].max(axis=1)) + 1, 0, grid.height)
        boxes = np.stack([r_lo, r_hi, c_lo, c_hi], axis=1).astype(np.int64)
        boxes[(boxes[:, 1] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 2])] = 0
        self.boxes = boxes
        self.colour = _colour_boxes(boxes)
        self._cell_index(grid)
        self.ok = True

    def reaches_grid(self) -> bool:
        """Whether some tile's footprint (points within reach of a pixel) meets the grid."""
        return bool((self.boxes[:, 1] > self.boxes[:, 0]).any())

    def _cell_index(self, grid: Grid) -> None:
        """Tiles whose footprint box meets each pixel cell (CSR). Cells are no larger than a
        typical box (at most CELL_TILES pixels), so a cell meets a few boxes."""
        boxes = self.boxes
        live = boxes[:, 1] > boxes[:, 0]
        sizes = np.concatenate([(boxes[:, 1] - boxes[:, 0])[live], (boxes[:, 3] - boxes[:, 2])[live]])
        side = self.cell_side = int(np.clip(np.median(sizes) if sizes.size else 1, 1, CELL_TILES))
        cr0, cr1 = boxes[:, 0] // side, (boxes[:, 1] - 1) // side
        cc0, cc1 = boxes[:, 2] // side, (boxes[:, 3] - 1) // side
        n_r, n_c = cr1 - cr0 + 1, cc1 - cc0 + 1
        count = np.where(live, n_r * n_c, 0)
        tile = np.repeat(np.arange(boxes.shape[0]), count)
        k = np.arange(tile.size) - np.repeat(np.cumsum(count) - count, count)
        self.cells_x = -(-grid.width // side)
        cell = (cr0[tile] + k // n_c[tile]) * self.cells_x + cc0[tile] + k % n_c[tile]
        order = np.argsort(cell, kind="stable")
        self.cell_tiles = tile[order]
        n_cells = self.cells_x * -(-grid.height // side)
        self.cell_start = np.searchsorted(cell[order], np.arange(n_cells + 1))

    def pairs(self, rows: np.ndarray, cols: np.ndarray):
        """(pixel, tile, ui, uj) for every pixel (grid rows, cols) in every tile footprint holding it.

        ``pixel`` indexes ``rows``; ui, uj: the pixel's fractional swath (i, j) index under
        the tile's map (float64)."""
        cell = (rows // self.cell_side) * self.cells_x + cols // self.cell_side
        start = self.cell_start[cell]
        count = self.cell_start[cell + 1] - start
        pixel = np.repeat(np.arange(rows.size), count)
        k = np.arange(pixel.size) - np.repeat(np.cumsum(count) - count, count)
        tile = self.cell_tiles[np.repeat(start, count) + k]
        r, c = rows[pixel].astype(np.float64), cols[pixel].astype(np.float64)
        u = self.u0[tile] + c[:, None] * self.uc[tile] + r[:, None] * self.ur[tile]
        inside = np.all((u >= self.lo[tile]) & (u <= self.hi[tile]), axis=1)
        tile = tile[inside]
        return (pixel[inside], tile, u[inside, 0] + self.tiles.i0[tile],
                u[inside, 1] + self.tiles.j0[tile])

    def sample(self, window: Window):
        """(out, n_within) for the pixels of ``window``: float64 values, NaN beyond the radius.

        The window is cut into bands of BAND rows sampled on parallel threads (numpy
        releases the GIL in the large vectorised steps)."""
        out = np.empty((window.ysize, window.xsize), dtype=np.float64)
        bands = [Window(window.xoff, y, window.xsize, min(BAND, window.yoff + window.ysize - y))
                 for y in range(window.yoff, window.yoff + window.ysize, BAND)]

        def run(band):
            top = band.yoff - window.yoff
            return self._sample_band(band, out[top:top + band.ysize])

        if self.threads > 1 and len(bands) > 1:
            with ThreadPoolExecutor(max_workers=min(self.threads, len(bands))) as pool:
                n_within = sum(pool.map(run, bands))
        else:
            n_within = sum(map(run, bands))
        return out, n_within

    def _runs(self, window: Window):
        """The footprints' pixels in ``window`` as row runs, batched with disjoint pixels.

        A run is the pixels of one footprint on one row: (tile, row, first column,
        length), exact in float64. Yields batches of runs of one colour (tiles with
        disjoint footprint boxes) sorted by length, at most ~CHUNK padded pixels each."""
        y0, y1 = window.yoff, window.yoff + window.ysize
        x0, x1 = window.xoff, window.xoff + window.xsize
        boxes = self.boxes
        r0, r1 = np.maximum(boxes[:, 0], y0), np.minimum(boxes[:, 1], y1)
        ts = np.nonzero((r1 > r0) & (np.minimum(boxes[:, 3], x1) > np.maximum(boxes[:, 2], x0)))[0]
        if not ts.size:
            return
        n = (r1 - r0)[ts]
        tile = np.repeat(ts, n)
        row = np.repeat(r0[ts], n) + np.arange(tile.size) - np.repeat(np.cumsum(n) - n, n)
        # columns where lo <= u0 + c uc + r ur <= hi for both index axes
        base = self.u0[tile] + row[:, None] * self.ur[tile]
        uc = self.uc[tile]
        with np.errstate(divide="ignore", invalid="ignore"):
            a = (self.lo[tile] - base) / uc
            b = (self.hi[tile] - base) / uc
        flat = uc == 0  # the row runs along a lattice line: all or nothing
        if flat.any():
            within = (base >= self.lo[tile]) & (base <= self.hi[tile])
            a[flat] = np.where(within, -np.inf, np.inf)[flat]
            b[flat] = np.where(within, np.inf, -np.inf)[flat]
        first = np.ceil(np.clip(np.minimum(a, b).max(axis=1), x0 - 1, x1))
        last = np.floor(np.clip(np.maximum(a, b).min(axis=1), x0 - 1, x1))
        first = np.maximum(first, x0).astype(np.int64)
        length = np.minimum(last, x1 - 1).astype(np.int64) - first + 1
        keep = length > 0
        tile, row, first, length = tile[keep], row[keep], first[keep], length[keep]
        colour = self.colour[tile]
        order = np.lexsort((length, colour))
        tile, row, first, length, colour = (x[order] for x in (tile, row, first, length, colour))
        ends = list(np.flatnonzero(np.diff(colour)) + 1) + [tile.size]
        start = 0
        for end in ends:
            while start < end:
                # runs sorted by length: the batch's padded size is its count x its last length
                size = np.arange(1, end - start + 1) * length[start:end]
                stop = start + max(1, int(np.searchsorted(size, CHUNK, side="right")))
                yield tile[start:stop], row[start:stop], first[start:stop], length[start:stop]
                start = stop

    def _candidates(self, tile, row, first, length, best, other, index, window: Window) -> None:
        """Merge the 2 x 2 candidates and lower bounds of a batch of runs into the window's
        ``best`` (plane distance of the nearest candidate), ``other`` (lower bound for
        every other point) and ``index`` (tile-major index of the nearest candidate), all
        flat with one spare element at the end (the padding's target)."""
        f32 = np.float32
        width = int(length.max())
        ww = np.arange(width, dtype=f32)[None, :]

        def per_run(a, dtype=f32):
            return np.asarray(a).astype(dtype, copy=False)[:, None]

        rr, cc = row.astype(np.float64)[:, None], first.astype(np.float64)[:, None]
        ub = self.u0[tile] + cc * self.uc[tile] + rr * self.ur[tile]  # local (i, j), first pixel
        uc = self.uc[tile]
        ui = per_run(ub[:, 0]) + ww * per_run(uc[:, 0])
        uj = per_run(ub[:, 1]) + ww * per_run(uc[:, 1])
        # pixel centres in the tile's local plane coordinates (complex: x + i y)
        qb = self.q0 + cc * self.qc + rr * self.qr - self.origin[tile]
        pz = per_run(qb[:, 0] + 1j * qb[:, 1], np.complex64) + ww * np.complex64(
            self.qc[0] + 1j * self.qc[1])
        # the 2 x 2 lattice points around the fractional index (clipped to the tile)
        k_type = np.int32 if self.z.size < 2 ** 31 else np.int64
        i_last = per_run(self.ni[tile] - 2, np.int32)
        j_last = per_run(self.nj[tile] - 2, np.int32)
        fi = ui.astype(np.int32)  # truncation = floor where it matters (>= 0 after the clip)
        np.maximum(fi, 0, out=fi)
        np.minimum(fi, i_last, out=fi)
        fj = uj.astype(np.int32)
        np.maximum(fj, 0, out=fj)
        np.minimum(fj, j_last, out=fj)
        row_len = per_run(self.nj[tile], k_type)
        k00 = fi * row_len
        k00 += per_run(self.offset[tile], k_type)
        k00 += fj
        k10 = k00 + row_len

        def dist2(k):
            w = np.take(self.z, k, mode="wrap")
            w -= pz
            v = w.view(f32)
            v *= v
            return v[:, 0::2] + v[:, 1::2]

        d0, d1, d2, d3 = dist2(k00), dist2(k00 + 1), dist2(k10), dist2(k10 + 1)
        lo01, hi01 = np.minimum(d0, d1), np.maximum(d0, d1)
        lo23, hi23 = np.minimum(d2, d3), np.maximum(d2, d3)
        k00 += d1 < d0
        k10 += d3 < d2
        k_best = k00
        np.copyto(k_best, k10, where=lo23 < lo01)
        del d0, d1, d2, d3, k10
        b = np.sqrt(np.minimum(lo01, lo23))
        second = np.minimum(np.maximum(lo01, lo23), np.minimum(hi01, hi23))
        del lo01, hi01, lo23, hi23
        # the tile's other points are >= 1 lattice row/column beyond the 2 x 2 (t_i, t_j
        # lattice units) and >= s_i, s_j from the tile's index range (0 inside it); a point
        # lies on one row line and one column line, so it is >= max(t_i h_i, s_j h_j) or
        # >= max(s_i h_i, t_j h_j) away
        inf = f32(np.inf)
        fr = ui - fi.astype(f32)
        t_i = np.minimum(np.where(fi > 0, fr + 1, inf), np.where(fi < i_last, 2 - fr, inf))
        s_i = np.maximum(np.maximum(-fr, fr - 1), 0)
        fr = uj - fj.astype(f32)
        t_j = np.minimum(np.where(fj > 0, fr + 1, inf), np.where(fj < j_last, 2 - fr, inf))
        s_j = np.maximum(np.maximum(-fr, fr - 1), 0)
        del fr, fi, fj, ui, uj
        h_i, h_j = per_run(self.tiles.h_i[tile]), per_run(self.tiles.h_j[tile])
        t_i *= h_i
        s_i *= h_i
        t_j *= h_j
        s_j *= h_j
        low = np.minimum(np.maximum(t_i, s_j), np.maximum(s_i, t_j))
        del t_i, s_i, t_j, s_j
        low -= per_run(self.tiles.eps[tile])
        np.minimum(low, np.sqrt(second), out=low)
        del second
        # merge: the batch's pixels are distinct; the padding goes to the spare element
        lin = per_run((row - window.yoff) * window.xsize + first - window.xoff, np.int64) \
            + np.arange(width)
        lin[ww >= per_run(length)] = best.size - 1
        old_b = np.take(best, lin, mode="wrap")
        np.minimum(low, np.maximum(old_b, b), out=low)
        np.minimum(low, np.take(other, lin, mode="wrap"), out=low)
        other[lin] = low
        better = b < old_b
        np.copyto(k_best, np.take(index, lin, mode="wrap"), where=~better)
        index[lin] = k_best
        np.minimum(old_b, b, out=b)
        best[lin] = b

    def _sample_band(self, window: Window, out: np.ndarray) -> int:
        """Fill ``out`` (the window's pixels, float64); returns how many have a point within."""
        radius, margin = self.radius, self.margin
        size = window.ysize * window.xsize
        # float32 (rounding, 3e-8 relative, is covered by ROUNDING below); one spare element
        best = np.full(size + 1, np.inf, dtype=np.float32)
        other = np.full(size + 1, np.inf, dtype=np.float32)
        index = np.zeros(size + 1, dtype=np.int32 if self.z.size < 2 ** 31 else np.int64)
        for batch in self._runs(window):
            self._candidates(*batch, best, other, index, window)
        shape = (window.ysize, window.xsize)
        best, other, index = (a[:size].reshape(shape) for a in (best, other, index))
        dp, dm = 1.0 + self.delta + ROUNDING, 1.0 - self.delta - ROUNDING
        b, o = best.astype(np.float64), other.astype(np.float64)
        other = None
        upper = b * dp + margin
        within = (upper < radius) & (upper < o * dm - margin)
        doubtful = ~(within | (np.minimum(b, o) * dm - margin > radius))
        del upper, o
        np.take(self.values, index, out=out)
        np.copyto(out, np.nan, where=~within)
        n_within = int(np.count_nonzero(within))
        del within, index
        if doubtful.any():
            # a point nearer than the best candidate is within best * dp / dm in the plane
            bound = np.minimum(self.reach, (b[doubtful] * dp + margin) / dm + margin)
            del b
            n_within += self._resolve_doubtful(out, doubtful, bound, window)
        return n_within

    def _resolve_doubtful(self, out, doubtful, bound, window: Window) -> int:
        """Exact sphere chords for the doubtful pixels over each tile's points within ``bound``.

        ``bound`` (plane metres, one per doubtful pixel in row-major order) reaches every
        point that can be the pixel's nearest within the radius. Returns the number of
        pixels with a point within the radius."""
        tiles, lon, lat, values, radius = self.tiles, self.lon, self.lat, self.values, self.radius
        rows, cols = np.nonzero(doubtful)
        best_d2 = np.full(rows.size, np.inf)
        best_k = np.zeros(rows.size, dtype=np.int64)
        pid, tile, ui, uj = self.pairs(rows + window.yoff, cols + window.xoff)
        target, valid = self.geometry.cartesian(rows + window.yoff, cols + window.xoff)
        nx = self.nx
        if pid.size:
            # every point of the tile within ``bound`` is <= (bound + eps) / h rows (columns)
            # from u: windows of +-k around round(u), k - 1/2 >= that
            reach = bound[pid] + tiles.eps[tile]
            k_i = np.floor(reach / tiles.h_i[tile] + 0.5).astype(np.int64) + 1
            k_j = np.floor(reach / tiles.h_j[tile] + 0.5).astype(np.int64) + 1
            ri, rj = np.round(ui).astype(np.int64), np.round(uj).astype(np.int64)
            for ki, kj in {(int(x), int(y)) for x, y in zip(k_i, k_j)}:
                sel = np.nonzero((k_i == ki) & (k_j == kj))[0]
                oi, oj = np.arange(-ki, ki + 1), np.arange(-kj, kj + 1)
                step = max(1, 400000 // (oi.size * oj.size))
                for s in range(0, sel.size, step):
                    e = sel[s:s + step]
                    t = tile[e]
                    ii = np.clip(ri[e, None, None] + oi[None, :, None],
                                 tiles.i0[t][:, None, None], tiles.i1[t][:, None, None])
                    jj = np.clip(rj[e, None, None] + oj[None, None, :],
                                 tiles.j0[t][:, None, None], tiles.j1[t][:, None, None])
                    k = (ii * nx + jj).reshape(e.size, -1)
                    src = lonlat_to_cartesian(lon[k], lat[k]).reshape(k.shape + (3,))
                    d2 = ((src - target[pid[e]][:, None, :]) ** 2).sum(axis=2)
                    arg = np.argmin(d2, axis=1)
                    d2min = d2[np.arange(e.size), arg]
                    # the tile-major index of the winner (values are stored tile-major)
                    li = ii[np.arange(e.size), arg // oj.size, 0] - tiles.i0[t]
                    lj = jj[np.arange(e.size), 0, arg % oj.size] - tiles.j0[t]
                    kmin = self.offset[t] + li * self.nj[t] + lj
                    # a pixel may come twice (two tiles): keep its smallest, then merge
                    order = np.lexsort((d2min, pid[e]))
                    p_sorted = pid[e][order]
                    first = np.ones(order.size, dtype=bool)
                    first[1:] = p_sorted[1:] != p_sorted[:-1]
                    order = order[first]
                    p, d, kk = pid[e][order], d2min[order], kmin[order]
                    closer = d < best_d2[p]
                    best_d2[p[closer]] = d[closer]
                    best_k[p[closer]] = kk[closer]
        hit = valid & (np.sqrt(best_d2) < radius)
        res = np.full(rows.size, np.nan)
        res[hit] = values[best_k[hit]]
        out[rows, cols] = res
        return int(np.count_nonzero(hit))


def _colour_boxes(boxes: np.ndarray) -> np.ndarray:
    """A colour per box such that boxes of one colour are disjoint (greedy, first fit).

    Occupancy is kept on a coarse cell grid (conservative: boxes sharing a cell clash)."""
    live = boxes[:, 1] > boxes[:, 0]
    colour = np.zeros(boxes.shape[0], dtype=np.int64)
    if not live.any():
        return colour
    sizes = np.concatenate([(boxes[:, 1] - boxes[:, 0])[live], (boxes[:, 3] - boxes[:, 2])[live]])
    side = max(1, int(np.median(sizes)) // 8)
    shape = (int(boxes[:, 1].max()) // side + 1, int(boxes[:, 3].max()) // side + 1)
    cells = boxes.copy()
    cells[:, 0] //= side
    cells[:, 2] //= side
    cells[:, 1] = (cells[:, 1] - 1) // side + 1
    cells[:, 3] = (cells[:, 3] - 1) // side + 1
    used = np.zeros(shape, dtype=np.uint64)  # bit k of a cell: colour k is in the cell
    spare = 64
    for t in np.nonzero(live)[0]:
        a, b, c, d = cells[t]
        taken = int(np.bitwise_or.reduce(used[a:b, c:d], axis=None))
        k = (~taken & (taken + 1)).bit_length() - 1  # the lowest free colour
        if k < 64:
            used[a:b, c:d] |= np.uint64(1 << k)
        else:  # 64 colours in these cells: a colour of its own
            k, spare = spare, spare + 1
        colour[t] = k
    return colour


def _fast_swath_to_grid(lon2, lat2, values, target_grid: Grid, radius: float, threads: int):
    """Nearest within ``radius`` through the swath's own (i, j) lattice; None if it does not apply.

    The swath points, projected once into the (whitened) target plane, are cut into
    tiles, each an affine map of its indices within a measured residual. A pixel in a
    tile's footprint gets the nearest of the tile's 2 x 2 points around its fractional
    index, with a lower bound for all the tile's other points (one lattice row or
    column further); merged over the tiles whose footprint holds it, the winner is
    certain when its plane distance, widened by the plane's scale bound ``delta``, is
    below the radius and below every other point's lower bound (or all are beyond the
    radius). Pixels in no footprint have no point within reach. The few doubtful
    pixels (near ties, radius fringe) are decided by exact sphere chords over a window
    of each tile's lattice that holds all its points within reach.
    Returns (out, n_within) or None.
    """
    fast = _FastSwath(lon2, lat2, values, target_grid, radius, threads)
    if not fast.ok:
        return None
    return fast.sample(Window(0, 0, target_grid.width, target_grid.height))


def swath_to_grid(lon: np.ndarray, lat: np.ndarray, values: np.ndarray,
                  target_grid: Grid, radius: float = DEFAULT_RADIUS,
                  threads: int = DEFAULT_THREADS, block_rows: int = 64) -> np.ndarray:
    """In-memory swath -> grid: (height, width) float64 array, NaN beyond ``radius``.

    ``lon``, ``lat`` (degrees) and ``values`` are arrays of one shape. Same result
    as pyresample's ``resample_nearest(SwathDefinition(lon, lat), values,
    area, radius, fill_value=nan)``. For files use :func:`collocate_swath`.
    """
    lon, lat, values = (np.asarray(a) for a in (lon, lat, values))
    shape2 = lon.shape
    lattice = lon.ndim == 2 and lon.shape == lat.shape == values.shape
    lon, lat, values = (a.ravel() for a in (lon, lat, values))
    if not lon.size == lat.size == values.size:
        raise S1S2Error("Longitude, latitude and data arrays differ in size.")
    if not radius > 0 or not math.isfinite(radius):
        raise S1S2Error(f"RADIUS must be a positive number of metres, not {radius!r}.")
    if lattice:
        lon2 = lon.astype(np.float64, copy=False).reshape(shape2)
        lat2 = lat.astype(np.float64, copy=False).reshape(shape2)
        fast = _fast_swath_to_grid(lon2, lat2, values.astype(np.float64, copy=False),
                                   target_grid, float(radius), threads)
        if fast is not None:
            out, n_within = fast
            if not n_within:
                raise S1S2Error("The swath does not overlap the target grid (no source point "
                                f"within {radius:g} m of it): nothing to collocate.")
            return out
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


def _check_readable(path: str) -> None:
    """INPUT errors for a file GDAL cannot open at all (before any variable is blamed)."""
    if not os.path.isfile(path):
        return
    if os.path.getsize(path) == 0:
        raise S1S2Error(f"INPUT: '{path}' is empty (0 bytes); the download or copy may have "
                        "failed.")
    try:
        gdal.Open(path)
    except RuntimeError as exc:
        raise S1S2Error(f"INPUT: '{path}' is not a file GDAL can read ({exc}).") from None


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
        _check_readable(path)
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


def _read_reaching(swath: "SwathFile", index: "SwathIndex", rows: int, progress: Progress,
                   cancel: Cancel):
    """(lon, lat, values) 2-D float64: the swath's smallest row/column box holding every point
    that can reach the target (the index's cap), or None when no point can."""
    height = swath.shape[0]
    kept, r_lo, r_hi, c_lo, c_hi = [], None, None, None, None
    for y0, lon, lat, values in swath.strips(rows):
        if cancel is not None and cancel():
            raise Cancelled()
        near = index.reaches(lon, lat)
        hit_r, hit_c = np.nonzero(near.any(axis=1))[0], np.nonzero(near.any(axis=0))[0]
        if hit_r.size:
            r_lo = y0 + hit_r[0] if r_lo is None else r_lo
            r_hi = y0 + hit_r[-1] + 1
            c_lo = hit_c[0] if c_lo is None else min(c_lo, hit_c[0])
            c_hi = hit_c[-1] + 1 if c_hi is None else max(c_hi, hit_c[-1] + 1)
        if r_lo is not None:
            kept.append((y0, lon, lat, values))
            while kept and kept[0][0] + kept[0][1].shape[0] <= r_lo:
                kept.pop(0)
        if progress:
            progress(100.0 * min(y0 + rows, height) / height)
    if r_lo is None:
        return None
    kept = [strip for strip in kept if strip[0] < r_hi]  # strips after the last hit: unused
    arrays = []
    for k in (1, 2, 3):
        # columns cropped before the rows are joined: the joined copy is only the box's width
        full = np.concatenate([strip[k][:, c_lo:c_hi] for strip in kept])
        start = r_lo - kept[0][0]
        arrays.append(np.ascontiguousarray(full[start:start + r_hi - r_lo]))
        del full
    return tuple(arrays)


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

    The swath box that can reach the target is read once; the lattice fast path (as
    :func:`swath_to_grid`) then fills the output block by block, or, when it does not
    apply, the kd-tree path does.
    """
    grid = Grid.of_path(target_grid) if isinstance(target_grid, str) else target_grid
    check_output_path(output_path, [path])
    swath = SwathFile(path, variable, lon_variable, lat_variable, band)
    index = SwathIndex(grid, radius)
    height, width = swath.shape
    rows = max(1, int(memory_mb * 2 ** 20 / (width * 8 * 12)))
    no_overlap = S1S2Error("The swath does not overlap the target grid (no source point within "
                           f"{radius:g} m of it): nothing to collocate.")
    box = _read_reaching(swath, index, rows, sub_progress(progress, 0.0, 25.0), cancel)
    if box is None:
        raise no_overlap
    lon, lat, values = box
    box = None
    fast = _FastSwath(lon, lat, values, grid, float(radius), threads)
    if fast.ok:
        if not fast.reaches_grid():
            raise no_overlap
        lon = lat = values = None
        n_points = fast.values.size
        # blocks run on the streaming threads (large numpy steps that release the GIL), so a
        # block is not cut further into bands on threads of its own
        fast.threads = 1

        def sample(window):
            return fast.sample(window)[0]
    else:
        fast = None
        step = max(1, rows)
        for y0 in range(0, lon.shape[0], step):
            index.add(lon[y0:y0 + step], lat[y0:y0 + step], values[y0:y0 + step])
        lon = lat = values = None
        index.build(workers=threads)
        n_points = index.n_points
        sample = index.sample
    if progress:
        progress(30.0)
    name = variable or os.path.splitext(os.path.basename(path))[0]
    output = OutputRaster(output_path, bands=[name], metadata={
        "algorithm": "s1s2:collocateswath", "source": f"{path} {variable}".strip(),
        "method": f"nearest neighbour within {radius:g} m (sphere R={EARTH_RADIUS:.0f} m)",
        "source_points_used": str(n_points)})
    return stream(lambda window: sample(window), [], [output], grid=grid,
                  pass_window=True, memory_mb=memory_mb, threads=threads, scratch=24.0,
                  progress=sub_progress(progress, 30.0, 100.0), cancel=cancel)[0]
