"""Regression kriging (the default fusion model): features, neighbours, kriging, variogram,
ridge and the block independence of the fill, each against an independent computation."""
import numpy as np
import pytest

from s1s2_toolkit.core import BandSource, S1S2Error, fusion
from s1s2_toolkit.core import fusion_features as ff
from s1s2_toolkit.core import fusion_rk as rk
from s1s2_toolkit.core import kriging, variogram
from s1s2_toolkit.core.streaming import Window
from test_fusion import GT, read_raw, synthetic_scene
from testkit import read, write


# --- features ------------------------------------------------------------------------------
def test_reflect_index_mirrors_at_both_edges():
    np.testing.assert_array_equal(ff.reflect_index(-3, 10, 5), [2, 1, 0, 0, 1, 2, 3, 4, 4, 3])


def direct_box(values, radius, statistic):
    """Box statistic by a plain loop: reflected edges, NaN skipped (ddof 0)."""
    rows, cols = values.shape
    out = np.full(values.shape, np.nan)
    for r in range(rows):
        for c in range(cols):
            rr = ff.reflect_index(r - radius, 2 * radius + 1, rows)
            cc = ff.reflect_index(c - radius, 2 * radius + 1, cols)
            box = values[np.ix_(rr, cc)]
            box = box[np.isfinite(box)]
            if box.size:
                out[r, c] = box.mean() if statistic == "mean" else box.std()
    return out


def padded_features(vv, vh, window, width, height):
    scene = rk.Scene(width, height, True, False, True, True, 0.0, 10000.0, (8, 9), 0, False)
    return scene.features(vv, vh, None, window)


def test_box_features_equal_a_direct_loop_nan_skipped_edges_reflected():
    rng = np.random.default_rng(1)
    vv = rng.normal(-11, 2, (23, 19))
    vh = vv - rng.uniform(4, 8, vv.shape)
    vv[3:6, 4:9] = np.nan            # S1 NoData: skipped
    vh[10, 10] = np.nan
    h = ff.FEATURE_HALO
    window = Window(0, 0, 19, 23, h)
    pad = lambda a: np.pad(a, h, constant_values=np.nan)   # as the block reader delivers
    got = padded_features(pad(vv), pad(vh), window, 19, 23)[h:-h, h:-h]
    names = ff.S1_FEATURE_NAMES
    for radius in (1, 3, 7, 15):
        for stat, band, values in (("MEAN", "VV_DB", vv), ("MEAN", "VH_DB", vh),
                                   ("MEAN", "VH_MINUS_VV_DB", vh - vv), ("STD", "VV_DB", vv),
                                   ("STD", "VH_DB", vh)):
            expected = direct_box(values, radius, stat.lower())
            column = got[..., names.index(f"{stat}_{band}_R{radius}")]
            np.testing.assert_allclose(column, expected, rtol=0, atol=1e-9,
                                       err_msg=f"{stat} {band} r{radius}")


# --- neighbours and kriging --------------------------------------------------------------------
def brute_nearest(data_rc, target, k, radius):
    d2 = ((data_rc - target) ** 2).sum(1)
    inside = np.nonzero(d2 <= radius ** 2)[0]
    order = np.lexsort((data_rc[inside, 1], data_rc[inside, 0], d2[inside]))[:k]
    return inside[order]


def test_nearest_breaks_ties_by_raster_row_then_column():
    rng = np.random.default_rng(2)
    clear = rng.random((90, 90)) < 0.3
    clear[30:60, 30:60] = False                  # a gap: many equidistant neighbours
    ring = np.zeros((90, 90), bool)               # 12 points at distance 5 of (75, 75)
    for dr, dc in ((5, 0), (-5, 0), (0, 5), (0, -5), (3, 4), (4, 3), (-3, 4), (-4, 3),
                   (3, -4), (4, -3), (-3, -4), (-4, -3)):
        ring[75 + dr, 75 + dc] = True
    for mask, targets in ((clear, np.argwhere(~clear)), (ring, np.array([[75, 75]]))):
        data_rc = np.argwhere(mask)
        index, dist2 = kriging.nearest(data_rc, targets, k=10, radius=64)
        for t in range(0, len(targets), 7):
            expected = brute_nearest(data_rc, targets[t], 10, 64)
            got = index[t][index[t] >= 0]
            assert sorted(got) == sorted(expected)         # the same set of pixels
            d = data_rc[got] - targets[t]
            np.testing.assert_array_equal(np.sort(dist2[t][index[t] >= 0]),
                                          np.sort((d ** 2).sum(1)))
    # The ring: 10 of 12 tied points, the first 10 in (row, column) order.
    got = sorted(tuple(p) for p in data_rc[index[0]])
    assert got == sorted(tuple(p) for p in data_rc[np.lexsort((data_rc[:, 1], data_rc[:, 0]))][:10])


def test_nearest_ties_beyond_the_fetched_candidates_are_redone(monkeypatch):
    monkeypatch.setattr(kriging, "_EXTRA", 0)    # the k-d tree returns an arbitrary 5 of 12
    ring = np.array([(75 + dr, 75 + dc) for dr, dc in (
        (5, 0), (-5, 0), (0, 5), (0, -5), (3, 4), (4, 3), (-3, 4), (-4, 3), (3, -4), (4, -3),
        (-3, -4), (-4, -3))])
    index, dist2 = kriging.nearest(ring, np.array([[75, 75]]), k=4, radius=64)
    assert sorted(tuple(p) for p in ring[index[0]]) == [(70, 75), (71, 72), (71, 78), (72, 71)]
    assert np.all(dist2 == 25)


def test_simple_kriging_equals_the_direct_solution():
    model = variogram.Exponential(0.001, 0.01, 6.0)
    rng = np.random.default_rng(3)
    data_rc = rng.integers(0, 40, (60, 2))
    data_rc = np.unique(data_rc, axis=0)
    values = rng.normal(0, 0.1, len(data_rc))
    targets = np.array([[20, 20], [5, 33], [39, 0]])
    index, _ = kriging.nearest(data_rc, targets, k=8, radius=64)
    estimate, var = kriging.simple_kriging(data_rc, values, targets, model.covariance, index)
    for t in range(len(targets)):
        pts = data_rc[index[t]].astype(float)
        dist = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1))
        k_matrix = model.partial_sill * np.exp(-dist / model.range_px) + model.nugget * np.eye(8)
        c = model.partial_sill * np.exp(-np.sqrt(((pts - targets[t]) ** 2).sum(-1)) / 6.0)
        w = np.linalg.solve(k_matrix, c)
        assert estimate[t] == pytest.approx(w @ values[index[t]], abs=1e-12)
        assert var[t] == pytest.approx(model.sill - w @ c, abs=1e-12)


# --- variogram ----------------------------------------------------------------------------------
def test_pair_sums_equal_brute_force_and_ignore_the_block_layout():
    rng = np.random.default_rng(4)
    values = rng.normal(size=(150, 140))
    values[rng.random(values.shape) < 0.3] = np.nan
    h = max(variogram.LAGS)
    padded = np.pad(values, h, constant_values=np.nan)
    whole = variogram.pair_sums(padded, (slice(h, h + 150), slice(h, h + 140)))
    parts = variogram.PairSums.empty()
    for y0 in (0, 70):
        for x0 in (0, 33, 100):
            x1 = {0: 33, 33: 100, 100: 140}[x0]
            y1 = {0: 70, 70: 150}[y0]
            block = padded[y0:y1 + 2 * h, x0:x1 + 2 * h]
            parts = parts + variogram.pair_sums(block, (slice(h, h + y1 - y0),
                                                         slice(h, h + x1 - x0)))
    for i, lag in enumerate(variogram.LAGS):
        dx = values[:, lag:] - values[:, :-lag]
        dy = values[lag:, :] - values[:-lag, :]
        sq = np.concatenate([dx[np.isfinite(dx)], dy[np.isfinite(dy)]]) ** 2
        assert whole.count[i] == sq.size == parts.count[i]
        assert whole.sum_sq[i] == pytest.approx(sq.sum(), rel=1e-12)
        assert parts.sum_sq[i] == pytest.approx(sq.sum(), rel=1e-12)


def test_exponential_fit_recovers_the_model_and_falls_back_loudly():
    true = variogram.Exponential(0.002, 0.01, 9.0)
    lags = np.asarray(variogram.LAGS, float)
    count = np.full(len(lags), 1000.0)
    sums = variogram.PairSums(count, 2 * count * true.gamma(lags))
    fitted = variogram.fit_exponential(sums, 0.012)
    assert fitted.fitted
    assert fitted.nugget == pytest.approx(0.002, rel=0.05)
    assert fitted.sill == pytest.approx(0.012, rel=0.02)
    assert fitted.range_px == pytest.approx(9.0, rel=0.1)
    few = variogram.PairSums(np.where(lags < 3, 1000.0, 0.0), sums.sum_sq)
    fallback = variogram.fit_exponential(few, 0.012)
    assert not fallback.fitted and fallback.partial_sill == 0 and fallback.nugget == 0.012
    assert "fit failed" in fallback.describe()


# --- ridge --------------------------------------------------------------------------------------
def test_ridge_from_sums_equals_the_standardised_direct_solution():
    rng = np.random.default_rng(5)
    x = rng.normal([-12, -18, 3], [2, 3, 0.5], (400, 3))
    y = 0.5 + 0.02 * x[:, 0] - 0.01 * x[:, 1] + rng.normal(0, 0.05, 400)
    sums = rk.Sums(4)
    for part in np.array_split(np.arange(400), 5):
        sums.add(ff.design(x[part]), y[part])
    transform = rk.standardisation(sums)
    mean, sd = x.mean(0), x.std(0)
    z = np.column_stack([np.ones(400), (x - mean) / sd])
    for alpha in (1e-4, 0.1, 1.0):
        penalty = np.diag([0.0] + [alpha * 400] * 3)
        coef_z = np.linalg.solve(z.T @ z + penalty, z.T @ y)
        got = rk.ridge(sums, alpha, transform)
        np.testing.assert_allclose(ff.design(x) @ got, z @ coef_z, rtol=0, atol=1e-10)


# --- the fill ---------------------------------------------------------------------------------
def fill_by_blocks(block, arrays, window_size, width, height, halo):
    """Run FillBlock.fill over a window layout (as the block reader pads: NaN beyond)."""
    out = np.full((height, width), np.nan)
    var = np.full((height, width), np.nan)
    padded = [np.pad(a, halo, constant_values=np.nan) for a in arrays]
    for y0 in range(0, height, window_size):
        for x0 in range(0, width, window_size):
            w = Window(x0, y0, min(window_size, width - x0), min(window_size, height - y0), halo)
            cut = [a[y0:y0 + w.ysize + 2 * halo, x0:x0 + w.xsize + 2 * halo] for a in padded]
            red, nir, scl, vv, vh, ref = block.scene.unpack(cut)
            ndvi, clear, _, _ = block.scene.optical(red, nir, scl)
            rows, cols = w.core
            targets = np.zeros(clear.shape, bool)
            targets[rows, cols] = ~clear[rows, cols]
            if targets.any():
                fill, v = block.fill(ndvi, clear, targets, vv, vh, ref, w)
                region = (slice(y0, y0 + w.ysize), slice(x0, x0 + w.xsize))
                core_t = targets[rows, cols]
                out[region][core_t] = fill
                var[region][core_t] = v
    return out, var


def test_blockwise_fill_equals_the_whole_raster_fill_to_1e9(tmp_path):
    paths, scl = synthetic_scene(tmp_path)
    result = fusion.fuse_ndvi_files(
        BandSource(paths["red"]), BandSource(paths["nir"]), BandSource(paths["scl"]),
        BandSource(paths["vv"]), BandSource(paths["vh"]), str(tmp_path / "f.tif"),
        str(tmp_path / "s.tif"), boa_add_offset=0.0)
    details = result.details
    scene = rk.Scene(scl.shape[1], scl.shape[0], True, False, False, False, 0.0, 10000.0,
                     fusion.RECIPE_CLOUD_CLASSES, 0, False)
    block = rk.FillBlock(scene, details.fit, details.variogram, 1.0, True)
    arrays = [read(paths[k]) for k in ("red", "nir", "scl", "vv", "vh")]
    arrays[0][arrays[0] == 0] = np.nan
    halo = scene.feature_margin + kriging.SEARCH_RADIUS
    rows, cols = scl.shape
    whole, whole_var = fill_by_blocks(block, arrays, max(rows, cols), cols, rows, halo)
    for size in (17, 40):
        parts, parts_var = fill_by_blocks(block, arrays, size, cols, rows, halo)
        np.testing.assert_array_equal(np.isnan(parts), np.isnan(whole))
        assert np.nanmax(np.abs(parts - whole)) <= 1e-9
        assert np.nanmax(np.abs(parts_var - whole_var)) <= 1e-9
    # ... and the file written block by block is the same.
    filled = read(str(tmp_path / "f.tif"))
    target = np.isfinite(whole)
    np.testing.assert_allclose(filled[target], whole[target], rtol=0, atol=1e-6)


def run_rk(paths, tmp_path, name="rk", **options):
    out, src = str(tmp_path / f"{name}.tif"), str(tmp_path / f"{name}_source.tif")
    unc = str(tmp_path / f"{name}_sigma.tif")
    has_s1 = options.pop("s1", True)
    reference = BandSource(paths["ref"]) if options.pop("with_reference", False) else None
    result = fusion.fuse_ndvi_files(
        BandSource(paths["red"]), BandSource(paths["nir"]), BandSource(paths["scl"]),
        BandSource(paths["vv"]) if has_s1 else None, BandSource(paths["vh"]) if has_s1 else None,
        out, src, reference=reference, uncertainty_path=unc, boa_add_offset=0.0, **options)
    return result, read(out), read_raw(src), read(unc)


def test_default_fill_flags_clamps_and_reports(tmp_path):
    paths, scl = synthetic_scene(tmp_path)
    small, f1, s1, u1 = run_rk(paths, tmp_path, "a", block_pixels=200 * 200)
    large, f2, s2, u2 = run_rk(paths, tmp_path, "b", block_pixels=10 ** 7)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_allclose(f1, f2, rtol=0, atol=1e-6)
    np.testing.assert_allclose(u1, u2, rtol=0, atol=1e-6)
    assert small.report.fit_rmse == pytest.approx(large.report.fit_rmse, rel=1e-9)
    cloudy = np.isin(scl, [8, 9, 10])
    assert np.all(s1[cloudy & np.isfinite(f1)] == 2)
    assert np.nanmax(np.abs(f1)) <= 1.0
    # Uncertainty: NoData on S2 pixels, positive on filled ones.
    assert np.all(np.isnan(u1[s1 == 1])) and np.all(u1[s1 == 2] > 0)
    # S1 NoData under cloud, clear pixels within reach: the mean + kriging fills (flag 2).
    assert s1[12, 22] == 2 and np.isfinite(f1[12, 22])
    # S2 and S1 missing at a clear-SCL pixel surrounded by clear pixels: filled too.
    assert s1[50, 50] == 2
    assert small.report.model == fusion.MODEL_KRIGING and not small.report.fallback
    assert small.report.fit_rmse < small.report.baseline_rmse
    assert any("by distance" in line for line in small.log)
    assert any("exponential variogram" in line for line in small.log)
    assert small.filled == int(np.count_nonzero(s1 == 2))


def test_s1_nodata_without_clear_neighbour_is_nodata(tmp_path):
    paths, scl = synthetic_scene(tmp_path, s1_nodata_block=False)
    cloud = np.full(scl.shape, 9, np.uint8)
    cloud[:, :12] = 4                          # clear strip on the left only
    paths["scl"] = write(str(tmp_path / "scl_far.tif"), cloud, GT, 32633)
    vv = read(paths["vv"])
    vv[40:50, 95:105] = np.nan                 # > 64 px from any clear pixel
    vv[40:50, 20:25] = np.nan                  # within reach of the clear strip
    paths["vv"] = write(str(tmp_path / "vv_gap.tif"), vv.astype(np.float32), GT, 32633)
    result, fused, source, _ = run_rk(paths, tmp_path, min_fit_pixels=50)
    # Box features skip NoData: the gap's rim still has S1 features (a valid pixel in its
    # 3 x 3 box); its inside has none and no clear pixel within 64 px.
    assert np.all(source[41:49, 96:104] == 0) and np.all(np.isnan(fused[41:49, 96:104]))
    assert np.all(source[40, 95:105] == 2)
    assert np.all(source[40:50, 20:25] == 2)
    assert result.unfilled == 64


def test_blocks_without_any_clear_pixel_in_reach(tmp_path):
    """A wide scene, clear only at its left edge, cut into blocks of 42 px cores (halo 79 px):
    most blocks hold targets but no kriging data, in the hold-out sample and in the fill."""
    paths, scl = synthetic_scene(tmp_path, s1_nodata_block=False)
    wide = {}
    for key in ("red", "nir", "vv", "vh"):
        values = read(paths[key])
        dtype = np.uint16 if key in ("red", "nir") else np.float32
        wide[key] = write(str(tmp_path / f"wide_{key}.tif"), np.tile(values, 3).astype(dtype),
                          GT, 32633)
    cloud = np.full((scl.shape[0], 3 * scl.shape[1]), 9, np.uint8)
    cloud[:, :40] = 4                # training cell (hold-out cells of 128 px) ...
    cloud[:, 140:180] = 4            # ... and a withheld one, 100 px away
    wide["scl"] = write(str(tmp_path / "wide_scl.tif"), cloud, GT, 32633)
    whole, fused, source, _ = run_rk(wide, tmp_path, "whole", block_pixels=10 ** 7)
    parts, fused_b, source_b, _ = run_rk(wide, tmp_path, "parts", block_pixels=200 * 200)
    np.testing.assert_array_equal(source_b, source)
    np.testing.assert_allclose(fused_b, fused, rtol=0, atol=1e-6)
    assert parts.report.fit_rmse == pytest.approx(whole.report.fit_rmse, rel=1e-9)
    assert whole.details.fit.cell == 128 and whole.details.holdout.n > 0
    assert np.all(source[:, 40:140] == 2) and np.all(source[:, 180:] == 2)


def test_no_skill_keeps_the_kriging_and_warns(tmp_path):
    paths, scl = synthetic_scene(tmp_path)
    rng = np.random.default_rng(9)
    for band in ("vv", "vh"):
        paths[band] = write(str(tmp_path / f"{band}_noise.tif"),
                            rng.uniform(0.01, 0.2, scl.shape).astype(np.float32), GT, 32633)
    result, fused, source, _ = run_rk(paths, tmp_path)
    assert result.report.fallback
    assert any("no skill" in w and "kriging" in w for w in result.warnings)
    filled = fused[source == 2]
    assert np.all(np.isfinite(filled)) and np.std(filled) > 0   # not a constant: kriged


def test_temporal_mode_without_s1_uses_the_reference(tmp_path):
    paths, scl = synthetic_scene(tmp_path)
    result, fused, source, _ = run_rk(paths, tmp_path, s1=False, with_reference=True)
    assert result.details.fit.names == ("REFERENCE_NDVI",)
    assert any("Predictors: REFERENCE_NDVI" in line for line in result.log)
    assert np.all(source[np.isin(scl, [8, 9, 10])] == 2)
    with pytest.raises(S1S2Error, match="REFERENCE_NDVI"):
        run_rk(paths, tmp_path, "x", s1=False)
    with pytest.raises(S1S2Error, match="VV/VH"):
        fusion.fuse_ndvi_files(BandSource(paths["red"]), BandSource(paths["nir"]),
                               BandSource(paths["scl"]), None, None, str(tmp_path / "y.tif"),
                               str(tmp_path / "y_s.tif"), reference=BandSource(paths["ref"]),
                               model=fusion.MODEL_LOCAL)
