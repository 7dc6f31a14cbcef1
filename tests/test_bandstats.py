"""Band statistics gathered while writing (core.bandstats) equal numpy's on the whole output,
are stored inside the GeoTIFF where GDAL reads them, and serve the result summary without
a second read; outputs filled by gdal.Warp keep the read."""
import os

import numpy as np
import pytest
from osgeo import gdal

from s1s2_toolkit.core import BandSource, OutputRaster, indices, stream, summary
from s1s2_toolkit.core.bandstats import VALID_PIXELS, RunningStatistics, Statistics
from s1s2_toolkit.core.collocate import collocate_to_grid
from s1s2_toolkit.core.errors import S1S2Error
from s1s2_toolkit.core.raster import Grid
from testkit import read, write

SHAPE = (300, 410)  # not a multiple of the 256 px tiles nor of the test blocks


def numpy_statistics(values, nodata):
    """The reference: numpy on the whole array, float64, valid = finite and not NoData."""
    values = values.astype(np.float64)
    good = np.isfinite(values)
    if nodata is not None and not np.isnan(nodata):
        good &= values != nodata
    picked = values[good]
    if not picked.size:
        return Statistics(0)
    return Statistics(int(picked.size), picked.min(), picked.mean(), picked.max(), picked.std())


def raw(path):
    """The band's values as stored (testkit.read turns NoData into NaN)."""
    ds = gdal.Open(path)
    values = ds.GetRasterBand(1).ReadAsArray()
    ds = None
    return values


def stored(path, band=1):
    ds = gdal.Open(path)
    items = ds.GetRasterBand(band).GetMetadata()
    ds = None
    return items


def assert_statistics_equal(got, expected):
    assert got.valid == expected.valid
    if not expected.valid:
        assert (got.minimum, got.mean, got.maximum, got.std) == (None,) * 4
        return
    assert got.minimum == expected.minimum and got.maximum == expected.maximum  # exact
    assert got.mean == pytest.approx(expected.mean, rel=1e-12, abs=1e-12)
    assert got.std == pytest.approx(expected.std, rel=1e-9, abs=1e-12)


@pytest.fixture
def source(tmp_path):
    rng = np.random.default_rng(5)
    data = rng.normal(1000.0, 3.0, SHAPE).astype(np.float32)  # far from 0: a variance trap
    data[rng.random(SHAPE) < 0.2] = -9999.0
    return write(str(tmp_path / "in.tif"), data, nodata=-9999.0), data


def run(source_path, out, func, block_pixels=64 * 64, **spec):
    return stream(func, [BandSource(source_path)], [OutputRaster(out, **spec)],
                  block_pixels=block_pixels)[0]


@pytest.mark.parametrize("block_pixels", [64 * 64, 10 ** 7])
def test_float_nan_nodata_statistics_equal_numpy(source, tmp_path, block_pixels):
    path, _ = source
    out = run(path, str(tmp_path / "out.tif"), lambda x: x * 0.5, block_pixels)
    values = read(out)
    expected = numpy_statistics(values, np.nan)
    assert 0 < expected.valid < values.size
    items = stored(out)
    assert_statistics_equal(Statistics.from_metadata(items), expected)
    assert float(items["STATISTICS_VALID_PERCENT"]) == pytest.approx(
        100.0 * expected.valid / values.size, rel=1e-15)
    assert not os.path.exists(out + ".aux.xml")  # inside the .tif
    # GDAL (and so QGIS, which asks GDAL) returns them as the band's statistics, unchanged
    ds = gdal.Open(out)
    assert ds.GetRasterBand(1).GetStatistics(False, False) == [
        expected.minimum, expected.maximum, float(items["STATISTICS_MEAN"]),
        float(items["STATISTICS_STDDEV"])]
    info = gdal.Info(ds, format="json")["bands"][0]  # gdalinfo: printed to 3 decimals
    assert info["minimum"] == pytest.approx(expected.minimum, abs=1e-3)
    # float(): numpy 2's repr of a np.float64 is 'np.float64(...)'
    assert info["metadata"][""]["STATISTICS_MAXIMUM"] == repr(float(expected.maximum))


def test_float_non_nan_nodata_statistics(source, tmp_path):
    path, _ = source
    out = run(path, str(tmp_path / "out.tif"), lambda x: np.where(x > 1001.0, np.nan, x),
              nodata=-1.0)
    values = raw(out)
    assert (values == -1.0).sum() > 0 and not np.isnan(values).any()
    assert_statistics_equal(Statistics.from_metadata(stored(out)),
                            numpy_statistics(values, -1.0))


def test_uint8_255_nodata_statistics(source, tmp_path):
    path, _ = source
    out = run(path, str(tmp_path / "class.tif"),
              lambda x: np.where(np.isnan(x), 255, (x > 1000.0).astype(np.uint8) + 3),
              dtype="uint8")
    values = raw(out)
    assert set(np.unique(values)) == {3, 4, 255}
    assert_statistics_equal(Statistics.from_metadata(stored(out)),
                            numpy_statistics(values, 255))


def test_all_nodata_output(source, tmp_path):
    path, _ = source
    out = run(path, str(tmp_path / "empty.tif"), lambda x: np.full_like(x, np.nan))
    items = stored(out)
    assert items[VALID_PIXELS] == "0" and float(items["STATISTICS_VALID_PERCENT"]) == 0.0
    assert "STATISTICS_MINIMUM" not in items
    result = summary.summarise_band(out)
    assert (result.valid, result.nodata, result.minimum) == (0, SHAPE[0] * SHAPE[1], None)


def test_summary_uses_the_stored_statistics_without_reading(source, tmp_path, monkeypatch):
    path, _ = source
    out = run(path, str(tmp_path / "out.tif"), lambda x: x - 1000.0)
    ds = gdal.Open(out)
    read_back = summary._read_statistics(ds, ds.GetRasterBand(1))
    ds = None
    monkeypatch.setattr(summary, "_read_statistics", lambda *a: pytest.fail("read the file"))
    result = summary.summarise_band(out)
    expected = numpy_statistics(read(out), np.nan)
    assert (result.valid, result.nodata) == (expected.valid, SHAPE[0] * SHAPE[1] - expected.valid)
    assert result.std == pytest.approx(expected.std, rel=1e-9)
    # the same numbers as the block read
    assert (result.valid, result.minimum, result.maximum) == \
        (read_back.valid, read_back.minimum, read_back.maximum)
    assert result.mean == pytest.approx(read_back.mean, rel=1e-12)
    assert f"std {expected.std:.4g}" in result.text()


def test_a_warped_output_has_no_statistics_and_the_summary_reads_it(source, tmp_path):
    path, _ = source
    grid = Grid.of_path(path)
    out = collocate_to_grid(path, grid, str(tmp_path / "warped.tif"), resampling="nearest")
    assert VALID_PIXELS not in stored(out) and "STATISTICS_MEAN" not in stored(out)
    values = read(out)
    result = summary.summarise_band(out)
    ds = gdal.Open(out)
    expected = numpy_statistics(values, ds.GetRasterBand(1).GetNoDataValue())
    ds = None
    assert result.valid == expected.valid and result.std is None
    assert result.minimum == expected.minimum and result.maximum == expected.maximum


def test_foreign_or_approximate_statistics_are_not_trusted():
    items = {"STATISTICS_MINIMUM": "0", "STATISTICS_MAXIMUM": "1", "STATISTICS_MEAN": "0.5",
             "STATISTICS_STDDEV": "0.1", "STATISTICS_VALID_PERCENT": "50"}
    assert Statistics.from_metadata(items) is None  # no exact count: another tool's
    assert Statistics.from_metadata(dict(items, S1S2_VALID_PIXELS="2",
                                         STATISTICS_APPROXIMATE="YES")) is None
    assert Statistics.from_metadata(dict(items, S1S2_VALID_PIXELS="2")).valid == 2


def test_running_statistics_do_not_depend_on_block_order():
    rng = np.random.default_rng(1)
    data = rng.normal(5e6, 0.5, (64, 64)).astype(np.float32)
    data[::7, ::3] = np.nan
    forward, backward = RunningStatistics(np.nan), RunningStatistics(np.nan)
    for rows in np.array_split(data, 9):
        forward.add(rows)
    for rows in np.array_split(data, 5)[::-1]:
        backward.add(rows)
    expected = numpy_statistics(data, np.nan)
    for running in (forward, backward):
        assert_statistics_equal(running.result(), expected)


# -- the checks' samples of large inputs read a few whole tiles, not every tile -------------
def test_sample_of_a_large_tiled_band_reads_a_lattice_of_its_tiles(tmp_path):
    from s1s2_toolkit.core import raster

    assert raster._block_lattice(1000, 1000, 256, 256, 256) == [
        (x, y, 256 if x < 768 else 232, 256 if y < 768 else 232)
        for y in (0, 256, 512, 768) for x in (0, 256, 512, 768)]
    assert raster._block_lattice(200, 200, 256, 256, 256) is None  # small: decimated read
    values = np.arange(1024 * 1024, dtype=np.float64).reshape(1024, 1024) % 50000
    path = write(str(tmp_path / "big.tif"), values.astype(np.uint16), dtype="uint16",
                 options=("TILED=YES", "BLOCKXSIZE=128", "BLOCKYSIZE=128"))
    sample = raster.sample_values(BandSource(path))
    corners = np.concatenate([values[:128, :128].ravel(), values[-128:, -128:].ravel()])
    assert sample.size == 16 * 128 * 128 and np.isin(corners, sample).all()
    assert indices.s2_band_kind(BandSource(path)) == indices.DN
    db = write(str(tmp_path / "db.tif"), np.full((1024, 1024), -12.5, np.float32),
               options=("TILED=YES",))
    with pytest.raises(S1S2Error, match="negative values"):
        indices.s2_band_kind(BandSource(db))
