"""core.dask_api: the block functions on dask arrays / DataArrays equal the file algorithms."""
import numpy as np
import pytest
from osgeo import gdal

from s1s2_toolkit.core import BandSource
from testkit import read, write

da = pytest.importorskip("dask.array")
from s1s2_toolkit.core import dask_api  # noqa: E402

SHAPE = (230, 250)
CHUNKS = (64, 90)  # odd chunks: halos cross chunk borders in both directions


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dask-api")
    rng = np.random.default_rng(21)
    vv = rng.gamma(4.0, 0.02, SHAPE).astype(np.float32)
    vv[50:60, 70:90] = np.nan
    red = rng.integers(0, 2000, SHAPE).astype(np.uint16)
    nir = rng.integers(500, 5000, SHAPE).astype(np.uint16)
    stack = rng.normal(0, 1, (6,) + SHAPE).astype(np.float32)
    stack[rng.random(stack.shape) < 0.2] = np.nan
    paths = {"vv": write(str(folder / "vv.tif"), vv), "red": write(str(folder / "red.tif"), red),
             "nir": write(str(folder / "nir.tif"), nir),
             "stack": [write(str(folder / f"d{i}.tif"), d) for i, d in enumerate(stack)]}
    arrays = {"vv": vv, "red": red, "nir": nir, "stack": stack}
    return folder, paths, arrays


def lazy(array):
    return da.from_array(array, chunks=CHUNKS if array.ndim == 2 else (-1,) + CHUNKS)


def same(got, expected):
    got = np.asarray(got)
    assert got.dtype == expected.dtype
    assert got.tobytes() == expected.tobytes()


def test_speckle_filters_equal_the_file_algorithms(scene, tmp_path):
    from s1s2_toolkit.core.speckle import focal_median_file, lee_file, refined_lee_file
    _, paths, arrays = scene
    vv = lazy(arrays["vv"])
    expected = read(refined_lee_file(BandSource(paths["vv"]), str(tmp_path / "rl.tif")))
    same(dask_api.refined_lee(vv).compute(), expected.astype(np.float32))
    expected = read(lee_file(BandSource(paths["vv"]), str(tmp_path / "lee.tif"), window=5))
    same(dask_api.lee(vv, window=5).compute(), expected.astype(np.float32))
    expected = read(focal_median_file(BandSource(paths["vv"]), str(tmp_path / "fm.tif"),
                                      radius_m=30.0))  # 10 m pixels: 3 px
    same(dask_api.focal_median(vv, 3).compute(), expected.astype(np.float32))


def test_indices_and_db_equal_the_file_algorithms(scene, tmp_path):
    from s1s2_toolkit.core.indices import ndvi_file
    from s1s2_toolkit.core.units import convert_db_file
    _, paths, arrays = scene
    expected = read(ndvi_file(BandSource(paths["red"], zero_is_nodata=True),
                              BandSource(paths["nir"], zero_is_nodata=True),
                              str(tmp_path / "ndvi.tif"), boa_add_offset=-1000.0))
    got = dask_api.ndvi(lazy(arrays["red"]), lazy(arrays["nir"]), boa_add_offset=-1000.0)
    same(got.compute(), expected.astype(np.float32))
    expected = read(convert_db_file(BandSource(paths["vv"]), str(tmp_path / "db.tif")))
    same(dask_api.to_db(lazy(arrays["vv"])).compute(), expected.astype(np.float32))


def test_stack_statistics_equal_the_file_algorithm(scene, tmp_path):
    from s1s2_toolkit.core.stackstats import STATISTICS, stack_statistics_file
    _, paths, arrays = scene
    outputs = {name: str(tmp_path / f"{name}.tif") for name in STATISTICS}
    written = stack_statistics_file([BandSource(p) for p in paths["stack"]], outputs)
    got = dask_api.stack_statistics(lazy(arrays["stack"]), STATISTICS)
    for name in STATISTICS:
        dataset = gdal.Open(written[name])  # kept open while its band is read
        same(got[name].compute(), dataset.GetRasterBand(1).ReadAsArray())


def test_dataarray_in_dataarray_out_and_computed_on_the_cluster(scene, dask_cluster):
    xr = pytest.importorskip("xarray")
    _, _, arrays = scene
    y = 5000000.0 - 10.0 * np.arange(SHAPE[0])
    x = 500000.0 + 10.0 * np.arange(SHAPE[1])
    vv = xr.DataArray(lazy(arrays["vv"]), dims=("y", "x"), coords={"y": y, "x": x})
    filtered = dask_api.refined_lee(vv)
    assert isinstance(filtered, xr.DataArray) and filtered.dims == ("y", "x")
    np.testing.assert_array_equal(filtered.x.values, x)
    client = dask_cluster.client()
    try:
        on_cluster = client.compute(filtered.data).result()  # the workers import the core
    finally:
        client.close()
    same(on_cluster, dask_api.refined_lee(arrays["vv"]).compute())
    times = xr.DataArray(lazy(arrays["stack"]), dims=("time", "y", "x"),
                         coords={"time": np.arange(6), "y": y, "x": x})
    median = dask_api.stack_statistics(times, ["median"])["median"]
    assert median.dims == ("y", "x") and "time" not in median.coords
