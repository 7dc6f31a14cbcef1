"""Block streaming: blockwise == whole array, NoData, cancel, progress, writer, errors."""
import math
import os

import numpy as np
import pytest
from osgeo import gdal

from s1s2_toolkit.core import BandSource, Cancelled, OutputRaster, S1S2Error, stream
from s1s2_toolkit.core.streaming import block_windows, scan
from testkit import read, write


def box_nanmean(a, b, halo):
    """A neighbourhood function: NaN-aware (2h+1)^2 mean of a, plus b; NaN where a is NaN.

    Summed shift by shift so every pixel's arithmetic is the same wherever the
    block starts (a running-sum filter would not be bit-reproducible).
    """
    rows, cols = a.shape
    padded = np.pad(a.astype(np.float64), halo, constant_values=np.nan)
    total = np.zeros(a.shape)
    count = np.zeros(a.shape)
    for dy in range(2 * halo + 1):
        for dx in range(2 * halo + 1):
            window = padded[dy:dy + rows, dx:dx + cols]
            valid = np.isfinite(window)
            total += np.where(valid, window, 0.0)
            count += valid
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / count + b
    out[~np.isfinite(a)] = np.nan
    return out.astype(np.float32)


def whole_array_reference(a, b, halo):
    pad = lambda x: np.pad(x.astype(np.float32), halo, constant_values=np.nan)  # noqa: E731
    out = box_nanmean(pad(a), pad(b), halo)
    return out[halo:halo + a.shape[0], halo:halo + a.shape[1]] if halo else out


@pytest.fixture
def pair(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.gamma(2.0, 0.1, size=(157, 203)).astype(np.float32)
    a[40:45, 50:90] = -9999.0          # declared NoData
    b = rng.normal(size=a.shape).astype(np.float32)
    pa = write(str(tmp_path / "a.tif"), a, nodata=-9999.0)
    pb = write(str(tmp_path / "b.tif"), b)
    a = a.astype(np.float64)
    a[a == -9999.0] = np.nan
    return pa, pb, a, b


@pytest.mark.parametrize("halo", [0, 1, 3, 5])
@pytest.mark.parametrize("block_pixels", [17 * 17, 50 * 61, 10 ** 7])
@pytest.mark.parametrize("threads", [1, 2])
def test_blockwise_equals_whole_array(pair, tmp_path, halo, block_pixels, threads):
    pa, pb, a, b = pair
    out = str(tmp_path / "out.tif")
    stream(lambda x, y: box_nanmean(x, y, halo), [BandSource(pa), BandSource(pb)],
           [OutputRaster(out)], halo=halo, block_pixels=block_pixels, threads=threads)
    expected = whole_array_reference(a, b, halo)
    got = gdal.Open(out).ReadAsArray()
    np.testing.assert_array_equal(got, expected)  # bit-identical, NaN in the same places
    assert np.isnan(got[40:45, 50:90]).all()      # NoData in -> NoData out


def test_block_windows_cover_raster_once_and_respect_budget():
    for width, height, budget, halo in [(1000, 999, 40_000, 3), (7, 5, 10, 0), (20000, 20000,
                                                                                 2 ** 22, 3)]:
        windows = block_windows(width, height, budget, halo)
        covered = np.zeros((height, width), dtype=np.int32) if width * height < 10 ** 7 else None
        for w in windows:
            assert (w.xsize + 2 * halo) * (w.ysize + 2 * halo) <= max(budget, 256) * 1.01 \
                or w.xsize < 20 or w.ysize < 20
            if covered is not None:
                covered[w.yoff:w.yoff + w.ysize, w.xoff:w.xoff + w.xsize] += 1
        if covered is not None:
            assert (covered == 1).all()
    # The block size depends on the budget, not on the raster size.
    big = block_windows(100_000, 100_000, 2 ** 22)[0]
    small = block_windows(5_000, 5_000, 2 ** 22)[0]
    assert big.xsize * big.ysize <= 2 ** 22 and small.xsize * small.ysize <= 2 ** 22


def test_writer_declares_everything(pair, tmp_path):
    pa, pb, a, b = pair
    out = str(tmp_path / "out.tif")
    stream(lambda x, y: (x + y, np.where(np.isnan(x), 255, (x > 0.2)).astype(np.uint8)),
           [BandSource(pa), BandSource(pb)],
           [OutputRaster(out, bands=["sum"], units="linear power",
                         metadata={"algorithm": "test:sum", "parameters": "none"}),
            OutputRaster(str(tmp_path / "mask.tif"), bands=["bright"], dtype="uint8")])
    ds = gdal.Open(out)
    band = ds.GetRasterBand(1)
    assert band.DataType == gdal.GDT_Float32
    assert math.isnan(band.GetNoDataValue())
    assert band.GetDescription() == "sum"
    assert band.GetUnitType() == "linear power"
    assert ds.GetMetadataItem("algorithm") == "test:sum"
    structure = ds.GetMetadata("IMAGE_STRUCTURE")
    assert structure["COMPRESSION"] == "DEFLATE"
    assert band.GetBlockSize() == [256, 256]
    np.testing.assert_allclose(read(out), a + b, rtol=1e-6)
    mask_ds = gdal.Open(str(tmp_path / "mask.tif"))  # keep the dataset alive for its band
    mask_band = mask_ds.GetRasterBand(1)
    assert mask_band.DataType == gdal.GDT_Byte and mask_band.GetNoDataValue() == 255
    m = mask_band.ReadAsArray()
    assert (m[40:45, 50:90] == 255).all()
    assert set(np.unique(m)) <= {0, 1, 255}


def test_progress_is_monotonic_and_ends_at_100(pair, tmp_path):
    pa, pb, *_ = pair
    seen = []
    stream(lambda x, y: x * y, [BandSource(pa), BandSource(pb)],
           [OutputRaster(str(tmp_path / "o.tif"))], block_pixels=30 * 30, progress=seen.append)
    assert len(seen) > 10
    assert all(q >= p for p, q in zip(seen, seen[1:]))
    assert seen[0] == 0 and seen[-1] == 100


@pytest.mark.parametrize("threads", [1, 2])
def test_cancel_mid_run_leaves_no_output_and_keeps_existing_file(pair, tmp_path, threads):
    pa, pb, *_ = pair
    out = tmp_path / "o.tif"
    out.write_bytes(b"precious earlier result")
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 5

    with pytest.raises(Cancelled):
        stream(lambda x, y: x * y, [BandSource(pa), BandSource(pb)], [OutputRaster(str(out))],
               block_pixels=20 * 20, cancel=cancel, threads=threads)
    assert out.read_bytes() == b"precious earlier result"
    assert sorted(os.listdir(tmp_path)) == ["a.tif", "b.tif", "o.tif"]


def test_failure_inside_function_leaves_no_partial_file(pair, tmp_path):
    pa, pb, *_ = pair
    count = []

    def explode(x, y):
        count.append(1)
        if len(count) == 3:
            raise ValueError("boom")
        return x

    with pytest.raises(ValueError):
        stream(explode, [BandSource(pa), BandSource(pb)], [OutputRaster(str(tmp_path / "o.tif"))],
               block_pixels=20 * 20)
    assert sorted(os.listdir(tmp_path)) == ["a.tif", "b.tif"]


def test_mismatched_grids_name_the_input(pair, tmp_path):
    pa, *_ = pair
    other = write(str(tmp_path / "shifted.tif"), np.ones((157, 203), np.float32),
                  geotransform=(500010.0, 10.0, 0.0, 5000000.0, 0.0, -10.0))
    with pytest.raises(S1S2Error, match="VH is not on the grid of VV.*geotransform"):
        stream(lambda x, y: x, [BandSource(pa, label="VV"), BandSource(other, label="VH")],
               [OutputRaster(str(tmp_path / "o.tif"))])
    smaller = write(str(tmp_path / "small.tif"), np.ones((10, 10), np.float32))
    with pytest.raises(S1S2Error, match="size 10 x 10"):
        stream(lambda x, y: x, [BandSource(pa), BandSource(smaller)],
               [OutputRaster(str(tmp_path / "o.tif"))])
    assert not (tmp_path / "o.tif").exists()


def test_missing_band_and_unreadable_input(pair, tmp_path):
    pa, *_ = pair
    with pytest.raises(S1S2Error, match="band 2 requested.*1 band"):
        stream(lambda x: x, [BandSource(pa, band=2)], [OutputRaster(str(tmp_path / "o.tif"))])
    with pytest.raises(S1S2Error, match="cannot open"):
        stream(lambda x: x, [BandSource(str(tmp_path / "nope.tif"))],
               [OutputRaster(str(tmp_path / "o.tif"))])


def test_output_over_input_is_refused(pair):
    pa, *_ = pair
    before = open(pa, "rb").read()
    with pytest.raises(S1S2Error, match="also an input"):
        stream(lambda x: x, [BandSource(pa)], [OutputRaster(pa)])
    assert open(pa, "rb").read() == before


def test_zero_is_data_unless_declared(tmp_path):
    a = np.array([[0, 1], [2, 0]], dtype=np.uint16)
    p = write(str(tmp_path / "z.tif"), a)
    stream(lambda x: x, [BandSource(p)], [OutputRaster(str(tmp_path / "o1.tif"))])
    assert (read(str(tmp_path / "o1.tif")) == a).all()
    stream(lambda x: x, [BandSource(p, zero_is_nodata=True)], [OutputRaster(str(tmp_path / "o2.tif"))])
    np.testing.assert_array_equal(read(str(tmp_path / "o2.tif")), [[np.nan, 1], [2, np.nan]])


def test_uint16_inputs_arrive_as_float_no_wraparound(tmp_path):
    red = write(str(tmp_path / "r.tif"), np.full((3, 3), 3000, np.uint16))
    nir = write(str(tmp_path / "n.tif"), np.full((3, 3), 1000, np.uint16))
    stream(lambda r, n: n - r, [BandSource(red), BandSource(nir)], [OutputRaster(str(tmp_path / "d.tif"))])
    assert (read(str(tmp_path / "d.tif")) == -2000).all()


def test_scan_collects_block_results_in_order(pair):
    pa, pb, a, b = pair
    sums = scan(lambda x, y, window: (window.yoff, window.xoff, np.nansum(x[window.core])),
                [BandSource(pa), BandSource(pb)], halo=2, block_pixels=40 * 40)
    assert [s[:2] for s in sums] == sorted(s[:2] for s in sums)
    assert math.isclose(sum(s[2] for s in sums), np.nansum(a), rel_tol=1e-5)
