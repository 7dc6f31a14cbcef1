"""The toolkit's block functions on dask arrays and xarray DataArrays (lazy results).

For headless users who load scenes with stackstac, odc-stac or rioxarray::

    from s1s2_toolkit.core import dask_api
    ndvi = dask_api.ndvi(scene.sel(band="B04"), scene.sel(band="B08"), boa_add_offset=-1000)
    smooth = dask_api.refined_lee(vv)          # lazy; .compute() or .to_zarr(...)

The functions are the same numpy functions the file algorithms stream (no second
copy of the science); neighbourhood filters get their halo through ``map_overlap``
with NaN beyond the edges, exactly as the streaming reader pads, so the values equal
the file algorithms' outputs. Inputs: NaN = NoData (float), DN 0 = NoData for NDVI.
A DataArray in gives a DataArray out (same coordinates); a dask or numpy array in
gives a dask array out. Needs dask (and xarray for DataArrays).
"""
from typing import Sequence

import numpy as np

from . import indices, speckle, stackstats, units


def map_blocks(func, *arrays, halo: int = 0, dtype="float32"):
    """``func(*padded float32 blocks)`` over aligned 2-D arrays, halo padded with NaN.

    ``func`` may return the padded block or only its core (as for :func:`stream`).
    """
    import dask.array as da
    template = arrays[0]
    data = [da.asarray(_data(a)).astype(np.float32) for a in arrays]
    if halo:
        data = [d.rechunk({0: max(d.chunksize[0], halo), 1: max(d.chunksize[1], halo)})
                for d in data]
        data = [d.rechunk(data[0].chunks) for d in data]
        lazy = da.map_overlap(_trimmed(func, halo), *data, depth=halo, boundary=np.nan,
                              trim=False, dtype=dtype, align_arrays=False)
    else:
        lazy = da.map_blocks(func, *data, dtype=dtype)
    return _like(template, lazy)


def ndvi(red_dn, nir_dn, boa_add_offset: float = 0.0,
         quantification: float = indices.DEFAULT_QUANTIFICATION,
         negative_reflectance: str = indices.NEGATIVE_MASK):
    """NDVI of S2 DN bands (as :func:`indices.ndvi`); DN 0 and NaN are NoData."""
    def block(red, nir):
        red[red == 0] = np.nan
        nir[nir == 0] = np.nan
        return indices.ndvi(red, nir, boa_add_offset, quantification, negative_reflectance)
    return map_blocks(block, red_dn, nir_dn)


def rvi4s1(vv, vh, input_units: str = indices.LINEAR):
    return map_blocks(lambda a, b: indices.rvi4s1(a, b, input_units), vv, vh)


def vv_vh_ratio(vv, vh, mode: str = indices.RATIO_DB, input_units: str = indices.LINEAR):
    return map_blocks(lambda a, b: indices.vv_vh_ratio(a, b, mode, input_units), vv, vh)


def to_db(linear):
    return map_blocks(units.to_db, linear)


def from_db(db):
    return map_blocks(units.from_db, db)


def refined_lee(intensity):
    """Refined Lee (linear power), as ``s1s2:refinedlee``."""
    return map_blocks(speckle.refined_lee_padded, intensity, halo=speckle.REFINED_LEE_HALO)


def lee(intensity, window: int = 7, looks: float = 4.4):
    return map_blocks(lambda b: speckle.lee_padded(b, window, looks), intensity,
                      halo=speckle.lee_halo(window))


def focal_median(values, radius_x_px: float, radius_y_px: float = None):
    """Circular focal median with radii in pixels (the file algorithm converts metres)."""
    footprint = speckle.disk_footprint(radius_x_px, radius_y_px or radius_x_px)
    return map_blocks(lambda b: speckle.focal_median_padded(b, footprint), values,
                      halo=speckle.footprint_halo(footprint))


def stack_statistics(stack, statistics: Sequence[str] = (stackstats.MEDIAN, stackstats.STD),
                     min_valid: int = 1, ddof: int = 0) -> dict:
    """Per-pixel statistics over axis 0 of a (dates, rows, cols) array: ``{name: lazy 2-D}``
    (float32, count uint16 as ``s1s2:stackstatistics`` writes them)."""
    import dask.array as da
    template = stack
    data = da.asarray(_data(stack)).astype(np.float32)
    data = data.rechunk({0: -1})  # every date of a pixel in one block
    results = {}
    for name in statistics:
        out_dtype = np.uint16 if name == stackstats.COUNT else np.float32
        lazy = data.map_blocks(_one_statistic, name, min_valid, ddof, out_dtype,
                               drop_axis=0, dtype=out_dtype)
        results[name] = _like(template, lazy, drop_first=True)
    return results


def _one_statistic(block, name, min_valid, ddof, out_dtype):
    value = stackstats.stack_statistics(block, [name], min_valid, ddof)[name]
    if out_dtype == np.uint16:
        return value.astype(np.uint16)
    return value.astype(np.float32)


def _trimmed(func, halo):
    def block(*padded):
        result = np.asarray(func(*padded))
        if result.shape[-2:] == padded[0].shape[-2:]:  # padded result: cut the core out
            result = result[..., halo:result.shape[-2] - halo, halo:result.shape[-1] - halo]
        return result
    return block


def _data(array):
    """The dask/numpy array inside a DataArray (or the array itself)."""
    return array.data if hasattr(array, "dims") and hasattr(array, "data") else array


def _like(template, lazy, drop_first=False):
    """A DataArray like ``template`` holding ``lazy`` when the input was one."""
    if not (hasattr(template, "dims") and hasattr(template, "coords")):
        return lazy
    if drop_first:
        template = template.isel({template.dims[0]: 0}, drop=True)
    return template.copy(data=lazy)
