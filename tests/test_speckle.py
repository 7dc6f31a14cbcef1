"""Speckle filters (core.speckle): Refined Lee against an independent slow reference,
edge preservation, ENL, constant images, Lee and focal median, blockwise == whole array.

The reference below is written straight from SPEC.md "Refined Lee speckle filter": a
plain loop over one 7x7 window at a time, float64, two-pass statistics, sorted ratios.
Where one of its decisions (maximum gradient, closer side) is within float rounding of a
tie, both choices are correct at float32 precision, so it returns every admissible value
and the fast filter must match one of them.
"""
import itertools
import math

import numpy as np
import pytest

from s1s2_toolkit.core import BandSource, OutputRaster, S1S2Error, stream
from s1s2_toolkit.core import speckle
from s1s2_toolkit.core.raster import Grid
from testkit import S1_CHIP, bigearthnet_pairs, patch_band, read, write

# ----------------------------------------------------------------------- reference
_Y, _X = np.mgrid[0:7, 0:7]
WINDOW_MASKS = {
    "left": _X <= 3, "right": _X >= 3, "top": _Y <= 3, "bottom": _Y >= 3,
    "upper_right": _X >= _Y, "lower_left": _X <= _Y,
    "upper_left": _X + _Y <= 6, "lower_right": _X + _Y >= 6,
}
# gradient k: first-side sub-window, second-side sub-window, their 28-pixel windows
GRADIENTS = [
    ((1, 0), (1, 2), "left", "right"),               # |left - right|
    ((0, 2), (2, 0), "upper_right", "lower_left"),   # |top right - bottom left|
    ((0, 1), (2, 1), "top", "bottom"),               # |top - bottom|
    ((0, 0), (2, 2), "upper_left", "lower_right"),   # |top left - bottom right|
]
TIE_RTOL = 1e-9


def sample_var(values):
    n = len(values)
    if n < 2:
        return 0.0
    mean = sum(values) / n
    return sum((v - mean) ** 2 for v in values) / (n - 1)


def noise_sigma2(win):
    """Mean of the 5 smallest var/mean^2 of the complete 3x3 sub-windows (mean <= 0: 0)."""
    ratios = []
    for r, c in itertools.product(range(3), range(3)):
        sub = [win[y][x] for y in range(2 * r, 2 * r + 3) for x in range(2 * c, 2 * c + 3)]
        if any(math.isnan(v) for v in sub):
            continue
        mean = sum(sub) / 9
        ratios.append(sample_var(sub) / mean ** 2 if mean > 0 else 0.0)
    smallest = sorted(ratios)[:5]
    return sum(smallest) / len(smallest) if smallest else 0.0


def mmse(centre, mean, var, sigma2):
    if var == 0:
        return mean
    var_x = max(0.0, (var - mean * mean * sigma2) / (1 + sigma2))
    return mean + var_x / var * (centre - mean)


def near(a, b):
    return abs(a - b) <= TIE_RTOL * max(abs(a), abs(b), 1e-300)


def refined_lee_window(win):
    """All admissible Refined Lee values of the centre of one 7x7 window (NaN = NoData)."""
    centre = win[3][3]
    if math.isnan(centre):
        return [math.nan]
    values = [v for row in win for v in row if not math.isnan(v)]
    sigma2 = noise_sigma2(win)
    if len(values) < 49:  # NoData in the window or beyond the border: plain Lee
        return [mmse(centre, sum(values) / len(values), sample_var(values), sigma2)]
    means = [[sum(win[y][x] for y in range(2 * r, 2 * r + 3) for x in range(2 * c, 2 * c + 3))
              / 9 for c in range(3)] for r in range(3)]
    grads = [abs(means[a[0]][a[1]] - means[b[0]][b[1]]) for a, b, _, _ in GRADIENTS]
    best = 0
    for k in range(1, 4):
        if grads[k] > grads[best]:  # the first maximum wins ties
            best = k
    outputs = []
    for k in [best] + [k for k in range(4) if k != best and near(grads[k], grads[best])]:
        a, b, first, second = GRADIENTS[k]
        d_first = abs(means[a[0]][a[1]] - means[1][1])
        d_second = abs(means[1][1] - means[b[0]][b[1]])
        sides = [first if d_first < d_second else second]   # tie: the second side (SNAP)
        if near(d_first, d_second):
            sides = [first, second]
        for name in sides:
            mask = WINDOW_MASKS[name]
            pixels = [win[y][x] for y in range(7) for x in range(7) if mask[y, x]]
            assert len(pixels) == 28
            outputs.append(mmse(centre, sum(pixels) / 28, sample_var(pixels), sigma2))
    return outputs


def refined_lee_reference(image, pixels=None):
    """{(row, col): admissible values} of a 2-D array (NoData beyond the edges)."""
    image = np.asarray(image, dtype=np.float64)
    padded = np.pad(image, 3, constant_values=np.nan)
    targets = pixels if pixels is not None else itertools.product(*map(range, image.shape))
    return {(i, j): refined_lee_window(padded[i:i + 7, j:j + 7].tolist()) for i, j in targets}


def assert_matches_reference(fast, image, rtol=2e-6, pixels=None):
    """Every pixel of ``fast`` equals one admissible reference value to float32 precision."""
    reference = refined_lee_reference(image, pixels)
    bad = []
    for (i, j), values in reference.items():
        got = float(fast[i, j])
        if math.isnan(values[0]):
            if not math.isnan(got):
                bad.append((i, j, got, values))
            continue
        if not any(abs(got - v) <= rtol * abs(v) + 1e-30 for v in values):
            bad.append((i, j, got, values))
    assert not bad, f"{len(bad)} of {len(reference)} pixels differ, e.g. {bad[:5]}"
    return reference


def speckled(truth, looks=4.4, seed=0):
    rng = np.random.default_rng(seed)
    return (truth * rng.gamma(looks, 1.0 / looks, size=truth.shape)).astype(np.float32)


def linear_from_db(path, band=1):
    return (10.0 ** (read(path, band) / 10.0)).astype(np.float32)


def step_edge(shape, angle_deg, low, high, offset=0.3):
    """A straight step edge through the centre at ``angle_deg`` (0 = vertical edge)."""
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    y, x = rows - (shape[0] - 1) / 2, cols - (shape[1] - 1) / 2
    t = math.radians(angle_deg)
    side = x * math.cos(t) + y * math.sin(t) > offset
    return np.where(side, high, low), side


# ------------------------------------------------------------------ interface
def test_interface_contract():
    assert speckle.REFINED_LEE_HALO == 3
    data = speckled(np.full((23, 31), 0.1))
    out = speckle.refined_lee(data)
    assert out.shape == data.shape and out.dtype == np.float32
    out64 = speckle.refined_lee(data.astype(np.float64))
    np.testing.assert_array_equal(out, out64)
    with pytest.raises(S1S2Error, match="2-D"):
        speckle.refined_lee(np.zeros((2, 3, 4)))


# --------------------------------------------------- Refined Lee vs reference
@pytest.mark.parametrize("polarisation", ["VV", "VH"])
def test_refined_lee_matches_reference_on_bigearthnet(polarisation):
    """Real S1 (BigEarthNet, dB -> linear): interior, borders and a NoData hole."""
    _, s1_dir = bigearthnet_pairs()[0 if polarisation == "VV" else 3]
    image = linear_from_db(patch_band(s1_dir, polarisation))[:70, :80].copy()
    image[30:33, 40:44] = np.nan          # a NoData hole: plain Lee around it
    image[50, 10] = np.nan
    assert_matches_reference(speckle.refined_lee(image), image)


def test_refined_lee_matches_reference_on_sen1floods11():
    """Sen1Floods11 VV chip corner (top-left image border) and an interior crop."""
    image = linear_from_db(S1_CHIP)
    corner = image[:48, :48]
    assert_matches_reference(speckle.refined_lee(corner), corner)
    whole = speckle.refined_lee(image)      # interior: the whole chip's result
    pixels = list(itertools.product(range(250, 290), range(300, 340)))
    assert_matches_reference(whole, image, pixels=pixels)


@pytest.mark.parametrize("angle", [0, 30, 45, 60, 90, 120, 135, 150])
@pytest.mark.parametrize("polarity", ["bright_right", "bright_left"])
def test_refined_lee_matches_reference_on_synthetic_edges(angle, polarity):
    low, high = (0.02, 0.4) if polarity == "bright_right" else (0.4, 0.02)
    truth, _ = step_edge((26, 26), angle, low, high)
    image = speckled(truth, seed=angle)
    if angle == 45:
        image[12:14, 3:5] = np.nan         # a NoData hole near the edge
    assert_matches_reference(speckle.refined_lee(image), image)


@pytest.mark.parametrize("angle", [0, 45, 90, 135, 180, 225, 270, 315])
def test_refined_lee_noise_free_edges_follow_the_tie_rules(angle):
    """Noise-free edges: exact ties of gradients and sides; reference's rules decide."""
    truth, _ = step_edge((20, 20), angle, 0.05, 0.8, offset=0.0)
    image = truth.astype(np.float32)
    fast = speckle.refined_lee(image)
    assert_matches_reference(fast, image)
    # No speckle: every complete window is piecewise constant along the edge and the
    # filtered image keeps both levels far from the edge.
    assert fast[3:-3, 3:-3].min() >= 0.05 - 1e-7 and fast[3:-3, 3:-3].max() <= 0.8 + 1e-7


def test_refined_lee_nodata_and_border_rules():
    image = speckled(np.full((15, 17), 0.2), seed=3)
    image[7, 8] = np.nan
    out = speckle.refined_lee(image)
    assert np.isnan(out[7, 8])                             # NoData centre -> NoData
    assert np.isfinite(np.delete(out.ravel(), 7 * 17 + 8)).all()
    # A pixel next to the hole: plain Lee over the 48 valid pixels (hand formula).
    win = np.pad(image.astype(np.float64), 3, constant_values=np.nan)[6:13, 6:13]
    vals = win[np.isfinite(win)]
    assert vals.size == 48
    sigma2 = noise_sigma2(win.tolist())
    expected = mmse(float(win[3, 3]), vals.mean(), vals.var(ddof=1), sigma2)
    assert out[6, 6] == pytest.approx(expected, rel=1e-6)
    # An isolated valid pixel keeps its value; all-NoData stays NoData.
    lonely = np.full((9, 9), np.nan, dtype=np.float32)
    lonely[4, 4] = 0.3
    out = speckle.refined_lee(lonely)
    assert out[4, 4] == pytest.approx(0.3) and np.isnan(out).sum() == 80
    assert np.isnan(speckle.refined_lee(np.full((5, 5), np.nan))).all()


def test_noise_estimate_sorts_all_nine_sub_windows():
    """SNAP's off-by-one never lets the ninth sub-window into the five smallest: fixed."""
    rng = np.random.default_rng(5)
    win = rng.gamma(4.4, 1 / 4.4, size=(7, 7)) + 1.0
    win[4:7, 4:7] = 2.0                     # ninth sub-window: var 0, the smallest ratio
    image = np.pad(win, 3, mode="reflect")  # complete 7x7 around the centre pixel (6, 6)
    b3, b3q = _b3_pair(image)
    ours = speckle._noise_sigma2(b3 / 9.0, b3, b3q, 7, 7)[3, 3]
    assert ours == pytest.approx(noise_sigma2(image[3:10, 3:10].tolist()), rel=1e-6)
    ratios = []
    for r, c in itertools.product(range(3), range(3)):
        sub = win[2 * r:2 * r + 3, 2 * c:2 * c + 3]
        ratios.append(sub.var(ddof=1) / sub.mean() ** 2)
    snap = sorted(ratios[:8])[:5]              # Arrays.sort(a, 0, n-1): the 9th stays last
    assert ratios[8] == 0.0 and ours == pytest.approx(sum(sorted(ratios)[:5]) / 5, rel=1e-6)
    assert ours < sum(snap) / 5


def _b3_pair(image):
    x = np.asarray(image, dtype=np.float64)
    h, w = x.shape[0] - 6, x.shape[1] - 6

    def b3(a):
        rows = a[0:h + 4] + a[1:h + 5] + a[2:h + 6]
        return rows[:, 0:w + 4] + rows[:, 1:w + 5] + rows[:, 2:w + 6]
    return b3(x), b3(x * x)


# ------------------------------------------------------------ filter quality
def test_constant_image_stays_constant():
    for value in (0.0731, 1.0, 3e-4):
        image = np.full((40, 37), value, dtype=np.float32)
        image[10:13, 20:22] = np.nan
        out = speckle.refined_lee(image)
        valid = np.isfinite(image)
        np.testing.assert_allclose(out[valid], np.float32(value), rtol=1e-6)
        assert np.isnan(out[~valid]).all()
        np.testing.assert_allclose(speckle.lee(image)[valid], np.float32(value), rtol=1e-6)


def boxcar7(image):
    padded = np.pad(image.astype(np.float64), 3, constant_values=np.nan)
    view = np.lib.stride_tricks.sliding_window_view(padded, (7, 7))
    return np.nanmean(view, axis=(2, 3))


@pytest.mark.parametrize("angle", [0, 45, 90])
def test_edge_preserved_and_flat_areas_smoothed(angle):
    truth, side = step_edge((160, 160), angle, 0.02, 0.2)
    image = speckled(truth, seed=7)
    out = speckle.refined_lee(image).astype(np.float64)
    box = boxcar7(image)
    rows, cols = np.mgrid[0:160, 0:160]
    t = math.radians(angle)
    dist = np.abs((cols - 79.5) * math.cos(t) + (rows - 79.5) * math.sin(t) - 0.3)
    inner = (rows >= 8) & (rows < 152) & (cols >= 8) & (cols < 152)
    near_edge = inner & (dist <= 3)
    err_rl = np.mean(np.abs(out[near_edge] - truth[near_edge]) / truth[near_edge])
    err_box = np.mean(np.abs(box[near_edge] - truth[near_edge]) / truth[near_edge])
    assert err_rl < 0.3 * err_box, (err_rl, err_box)
    flat = inner & (dist >= 12)
    for level in (side, ~side):
        region = flat & level
        enl_in = image[region].mean() ** 2 / image[region].var()
        enl_out = out[region].mean() ** 2 / out[region].var()
        assert 3.5 < enl_in < 5.5
        assert enl_out > 4 * enl_in, (enl_in, enl_out)
        assert out[region].mean() == pytest.approx(truth[region].mean(), rel=0.05)


# ---------------------------------------------------------------------- Lee
def lee_reference(image, window, looks):
    half = window // 2
    padded = np.pad(image.astype(np.float64), half, constant_values=np.nan)
    out = np.full(image.shape, np.nan)
    for i, j in itertools.product(*map(range, image.shape)):
        if math.isnan(padded[i + half, j + half]):
            continue
        vals = [v for v in padded[i:i + window, j:j + window].ravel() if not math.isnan(v)]
        out[i, j] = mmse(padded[i + half, j + half], sum(vals) / len(vals), sample_var(vals),
                         1.0 / looks)
    return out


@pytest.mark.parametrize("window,looks", [(7, 4.4), (3, 1.0), (9, 10.0)])
def test_lee_matches_per_pixel_formula(window, looks):
    image = linear_from_db(S1_CHIP)[100:130, 200:235].copy()
    image[10:12, 5:9] = np.nan
    out = speckle.lee(image, window, looks)
    np.testing.assert_allclose(out, lee_reference(image, window, looks), rtol=2e-6)


def test_lee_hand_computed_value():
    """3x3 window, values 1..9 (centre 5): mean 5, var 7.5; sigmaV^2 = 1/4."""
    image = np.arange(1, 10, dtype=np.float32).reshape(3, 3)
    var_x = max(0.0, (7.5 - 25 * 0.25) / 1.25)            # = 1.0
    centre = speckle.lee(image, 3, 4.0)[1, 1]
    assert centre == pytest.approx(5 + var_x / 7.5 * (5 - 5))
    corner = speckle.lee(image, 3, 4.0)[0, 0]              # valid: 1, 2, 4, 5
    mean, var = 3.0, np.var([1, 2, 4, 5], ddof=1)
    assert corner == pytest.approx(mean + max(0, (var - 9 * 0.25) / 1.25) / var * (1 - mean))


def test_lee_rejects_bad_parameters():
    with pytest.raises(S1S2Error, match="odd"):
        speckle.lee(np.ones((5, 5)), window=4)
    with pytest.raises(S1S2Error, match="LOOKS"):
        speckle.lee(np.ones((5, 5)), window=3, looks=0)


# ------------------------------------------------------------- focal median
def test_focal_median_matches_nanmedian_loop():
    image = linear_from_db(S1_CHIP)[:40, :45].copy()
    image[20:25, 10:30] = np.nan
    fp = speckle.disk_footprint(3.2, 2.4)
    out = speckle.focal_median(image, fp)
    hy, hx = fp.shape[0] // 2, fp.shape[1] // 2
    padded = np.pad(image.astype(np.float64), ((hy, hy), (hx, hx)), constant_values=np.nan)
    for i, j in itertools.product(range(40), range(45)):
        if math.isnan(image[i, j]):
            assert math.isnan(out[i, j])
            continue
        expected = np.nanmedian(padded[i:i + fp.shape[0], j:j + fp.shape[1]][fp])
        assert out[i, j] == pytest.approx(expected, rel=1e-6), (i, j)


def test_footprint_from_metres():
    utm = Grid("", (500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0), 100, 100)
    from osgeo import osr
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    utm = Grid(srs.ExportToWkt(), utm.geotransform, 100, 100)
    fp = speckle.radius_footprint(100.0, utm)
    assert fp.shape == (21, 21) and fp.sum() == 317     # lattice points in a radius-10 disk
    assert speckle.footprint_halo(fp) == 10
    # Sen1Floods11 chip: EPSG:4326 at 38.1 N, 0.0000898 deg pixels -> ~7.9 m x ~10.0 m
    dx, dy = speckle.pixel_size_metres(Grid.of_path(S1_CHIP))
    assert dx == pytest.approx(0.000089831528412 * 111320 * math.cos(math.radians(38.105)),
                               rel=3e-3)
    assert dy == pytest.approx(9.97, rel=3e-3)
    with pytest.raises(S1S2Error, match="smaller than one pixel"):
        speckle.radius_footprint(5.0, utm)
    with pytest.raises(S1S2Error, match="no CRS"):
        speckle.radius_footprint(100.0, Grid("", utm.geotransform, 10, 10))


# ---------------------------------------------------- blockwise == whole array
@pytest.fixture(scope="module")
def s1_linear(tmp_path_factory):
    image = linear_from_db(S1_CHIP)[:150, :170].copy()
    image[60:64, 80:90] = -9999.0          # declared NoData
    image[0, 0] = -9999.0
    path = str(tmp_path_factory.mktemp("speckle") / "vv_linear.tif")
    write(path, image, nodata=-9999.0)
    whole = image.astype(np.float32)
    whole[whole == -9999.0] = np.nan
    return path, whole


@pytest.mark.parametrize("block_pixels", [20 * 20, 47 * 53, 100 * 170, 10 ** 7])
@pytest.mark.parametrize("threads", [1, 2])
def test_blockwise_equals_whole_array(s1_linear, tmp_path, block_pixels, threads):
    path, image = s1_linear
    cases = [
        (speckle.refined_lee_padded, speckle.REFINED_LEE_HALO, speckle.refined_lee(image)),
        (lambda b: speckle.lee_padded(b, 5, 4.4), 2, speckle.lee(image, 5, 4.4)),
        (lambda b: speckle.focal_median_padded(b, speckle.disk_footprint(3, 3)), 3,
         speckle.focal_median(image, speckle.disk_footprint(3, 3))),
    ]
    for func, halo, expected in cases:
        out = str(tmp_path / "out.tif")
        stream(func, [BandSource(path)], [OutputRaster(out)], halo=halo,
               block_pixels=block_pixels, threads=threads)
        np.testing.assert_array_equal(read(out), expected.astype(np.float64))
    assert np.isnan(expected[60:64, 80:90]).all()


def test_file_functions_db_input_and_metadata(s1_linear, tmp_path):
    path, image = s1_linear
    db_path = write(str(tmp_path / "vv_db.tif"), 10 * np.log10(np.nan_to_num(image, nan=1.0)))
    out = speckle.refined_lee_file(BandSource(db_path), str(tmp_path / "rl_db.tif"),
                                   input_units="db", block_pixels=60 * 60)
    lin = speckle.refined_lee(10 ** (read(db_path) / 10))
    np.testing.assert_allclose(read(out), 10 * np.log10(lin), atol=1e-4)
    from osgeo import gdal
    ds = gdal.Open(out)
    assert ds.GetMetadataItem("algorithm") == "s1s2:refinedlee"
    assert ds.GetRasterBand(1).GetUnitType() == "dB"
    out = speckle.lee_file(BandSource(path), str(tmp_path / "lee.tif"), window=7, looks=4.4)
    np.testing.assert_array_equal(read(out), speckle.lee(image, 7, 4.4).astype(np.float64))
    with pytest.raises(S1S2Error, match="units"):
        speckle.refined_lee_file(BandSource(path), str(tmp_path / "x.tif"), input_units="amp")
    with pytest.raises(S1S2Error, match="odd"):
        speckle.lee_file(BandSource(path), str(tmp_path / "y.tif"), window=6)


def test_cancelled_run_writes_nothing_and_keeps_existing_output(s1_linear, tmp_path):
    from s1s2_toolkit.core import Cancelled

    path, _ = s1_linear
    out = tmp_path / "rl.tif"
    out.write_bytes(b"previous result")
    with pytest.raises(Cancelled):
        speckle.refined_lee_file(BandSource(path), str(out), cancel=lambda: True)
    assert out.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rl.tif"]


def test_focal_median_refuses_polar_geographic_raster():
    from osgeo import osr
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    polar = Grid(srs.ExportToWkt(), (10.0, 0.001, 0.0, 88.5, 0.0, -0.001), 100, 100)
    with pytest.raises(S1S2Error, match="latitude"):
        speckle.radius_footprint(100.0, polar)
    fp = speckle.radius_footprint(100.0, Grid(srs.ExportToWkt(),
                                              (10.0, 0.0001, 0.0, 60.0, 0.0, -0.0001), 100, 100))
    # at 60 N a 0.0001 degree pixel is 5.58 m wide (17.9 px in 100 m) and 11.13 m tall
    # (8.98 px): an ellipse of 2*17+1 columns and 2*8+1 rows
    assert fp.shape == (17, 35)


def test_plain_lee_pixels_are_batched_without_changing_results(monkeypatch):
    rng = np.random.default_rng(11)
    image = speckled(np.full((40, 40), 0.1), seed=11)
    image[rng.random(image.shape) < 0.05] = np.nan     # scattered NoData: many plain-Lee pixels
    expected = speckle.refined_lee(image)
    monkeypatch.setattr(speckle, "_GATHER_CHUNK", 7)
    np.testing.assert_array_equal(speckle.refined_lee(image), expected)
    assert_matches_reference(expected, image, pixels=[(i, j) for i in range(0, 40, 3)
                                                      for j in range(0, 40, 3)])
