"""Stack statistics equal numpy's nan-statistics over the stack, processed in many blocks."""
import os
import warnings

import numpy as np
import pytest

from s1s2_toolkit.core import BandSource, S1S2Error
from s1s2_toolkit.core import stackstats
from testkit import read, write

ALL = {name: f"{name}.tif" for name in stackstats.STATISTICS}


@pytest.fixture
def stack(tmp_path):
    """Seven dates of 53 x 71 float32 with per-pixel NoData holes (declared -9999 and NaN)."""
    rng = np.random.default_rng(11)
    dates = rng.gamma(2.0, 0.05, size=(7, 53, 71)).astype(np.float32)
    holes = rng.random(dates.shape) < 0.3
    dates[holes] = np.nan
    dates[:, 0, 0] = np.nan          # never valid
    dates[1:, 0, 1] = np.nan         # exactly one valid date
    dates[3:, 0, 2] = np.nan         # three valid dates
    paths = []
    for i, date in enumerate(dates):
        stored = np.where(np.isnan(date), -9999.0, date).astype(np.float32) if i % 2 else date
        paths.append(write(str(tmp_path / f"d{i}.tif"), stored,
                           nodata=-9999.0 if i % 2 else None))
    return paths, dates.astype(np.float64)


def run(paths, tmp_path, **kwargs):
    outputs = {name: str(tmp_path / file) for name, file in ALL.items()}
    return stackstats.stack_statistics_file([BandSource(p) for p in paths], outputs, **kwargs)


def test_stack_statistics_equal_numpy_in_many_blocks(stack, tmp_path):
    paths, dates = stack
    written = run(paths, tmp_path, block_pixels=16 * 16)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        expected = {"median": np.nanmedian(dates, axis=0), "std": np.nanstd(dates, axis=0),
                    "mean": np.nanmean(dates, axis=0), "min": np.nanmin(dates, axis=0),
                    "max": np.nanmax(dates, axis=0)}
    for name, ref in expected.items():
        np.testing.assert_allclose(read(written[name]), ref, rtol=1e-6, atol=1e-7, err_msg=name)
    count = read(written["count"])
    np.testing.assert_array_equal(count, np.sum(~np.isnan(dates), axis=0))
    assert count[0, 0] == 0 and np.isnan(read(written["median"])[0, 0])
    assert read(written["std"])[0, 1] == 0.0  # population std of one value


def test_min_valid_and_sample_std(stack, tmp_path):
    paths, dates = stack
    written = run(paths, tmp_path, min_valid=4, ddof=1, block_pixels=20 * 20)
    count = np.sum(~np.isnan(dates), axis=0)
    for name in ("median", "std", "mean", "min", "max"):
        got = read(written[name])
        assert np.isnan(got[count < 4]).all(), name
        assert np.isfinite(got[count >= 4]).all(), name
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = np.nanstd(dates, axis=0, ddof=1)
    ok = count >= 4
    np.testing.assert_allclose(read(written["std"])[ok], ref[ok], rtol=1e-6)
    np.testing.assert_array_equal(read(written["count"]), count)  # count is always written


def test_only_chosen_statistics_written_and_grid_mismatch_named(stack, tmp_path):
    paths, _ = stack
    written = stackstats.stack_statistics_file([BandSource(p) for p in paths],
                                               {"median": str(tmp_path / "m.tif")})
    assert list(written) == ["median"] and not os.path.exists(str(tmp_path / "std.tif"))
    other = write(str(tmp_path / "shifted.tif"), np.zeros((53, 71), np.float32),
                  geotransform=(500010.0, 10.0, 0.0, 5000000.0, 0.0, -10.0))
    sources = [BandSource(p, label=f"INPUTS #{i + 1}") for i, p in
               enumerate(paths[:2] + [other] + paths[2:])]
    with pytest.raises(S1S2Error, match=r"INPUTS #3 is not on the grid of INPUTS #1"):
        stackstats.stack_statistics_file(sources, {"median": str(tmp_path / "x.tif")})
    with pytest.raises(S1S2Error, match="MIN_VALID"):
        stackstats.stack_statistics_file([BandSource(p) for p in paths],
                                         {"median": str(tmp_path / "x.tif")}, min_valid=8)
    assert not os.path.exists(str(tmp_path / "x.tif"))


def test_memory_budget_bounds_the_block_not_the_raster(stack, tmp_path, monkeypatch):
    """Blocks are sized from memory_mb and the number of dates: a tiny budget gives many blocks."""
    paths, dates = stack
    seen = []
    original = stackstats.stack_statistics

    def spy(arr, *args, **kwargs):
        seen.append(arr.shape)
        return original(arr, *args, **kwargs)

    monkeypatch.setattr(stackstats, "stack_statistics", spy)
    written = stackstats.stack_statistics_file([BandSource(p) for p in paths],
                                               {"median": str(tmp_path / "m.tif")},
                                               memory_mb=0.2, threads=1)
    assert len(seen) > 4 and all(s[0] == 7 for s in seen)
    assert max(s[1] * s[2] for s in seen) < dates[0].size
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        np.testing.assert_allclose(read(written["median"]), np.nanmedian(dates, axis=0),
                                   rtol=1e-6)
