"""core.fusion: recipe arithmetic, least squares, hold-out metrics, fill and flags (headless)."""
import math

import numpy as np
import pytest

from osgeo import gdal

from s1s2_toolkit.core import BandSource, S1S2Error
from s1s2_toolkit.core import fusion
from s1s2_toolkit.core.indices import ndvi_file
from s1s2_toolkit.core.streaming import Window
from testkit import read, write

GT = (400000.0, 10.0, 0.0, 5600000.0, 0.0, -10.0)
ROWS, COLS = 96, 110


def recipe_pixel(vv, vh):
    """The evalscript's calc_s1_ndvi for one pixel, in plain Python doubles (JS numbers)."""
    ln10 = 2.302585092994046  # Math.LN10
    vh_db = 10 * ln10 * vh
    vv_db = 10 * ln10 * vv
    nrpb = (vh_db - vv_db) / (vh_db + vv_db)
    return 2.572 - 0.05047 * vh_db + 0.176 * vv_db + 3.422 * nrpb


def test_recipe_to_db_is_the_scripts_linear_scaling_not_decibels():
    assert fusion.JS_LN10 == 2.302585092994046
    assert fusion.recipe_to_db(np.array([0.1]))[0] == 10 * 2.302585092994046 * 0.1
    assert fusion.recipe_to_db(np.array([0.1]))[0] == pytest.approx(2.302585, abs=1e-6)
    # A correct dB conversion would give -10 dB here.
    assert 10 * math.log10(0.1) == pytest.approx(-10.0)


def test_recipe_formula_on_hand_computed_pixels():
    # VV 0.1, VH 0.02: toDb 2.302585, 0.460517; NRPB = (0.460517 - 2.302585)/2.763102 = -2/3;
    # 2.572 - 0.05047*0.460517 + 0.176*2.302585 + 3.422*(-2/3) = 0.672680.
    got = fusion.recipe_s1_ndvi(np.array([0.1]), np.array([0.02]))
    assert got[0] == pytest.approx(0.672680, abs=2e-6)
    vv = np.array([0.1, 0.0631, 0.25, 0.004, 0.0, np.nan])
    vh = np.array([0.02, 0.0158, 0.05, 0.0011, 0.0, 0.01])
    got = fusion.recipe_s1_ndvi(vv, vh)
    for i in range(4):
        assert got[i] == recipe_pixel(vv[i], vh[i])  # same operations, bit for bit
    assert np.isnan(got[4]) and np.isnan(got[5])  # 0/0 and NaN -> NoData


def test_nrpb_and_predictor_columns():
    cols = fusion.predictor_columns(np.array([-10.0, 5.0]), np.array([-16.0, -5.0]))
    np.testing.assert_array_equal(cols[0], [1.0, 1.0])
    np.testing.assert_array_equal(cols[1], [-16.0, -5.0])
    np.testing.assert_array_equal(cols[2], [-10.0, 5.0])
    assert cols[3][0] == pytest.approx((-16 + 10) / (-26))
    assert np.isnan(cols[3][1])  # VH_dB + VV_dB == 0 -> NoData


def test_holdout_is_a_checkerboard_of_whole_raster_pixel_coordinates():
    whole = fusion.holdout_mask(Window(0, 0, 100, 70), cell=32)
    assert not whole[0, 0] and whole[0, 32] and whole[32, 0] and not whole[32, 32]
    part = fusion.holdout_mask(Window(37, 21, 40, 30), cell=32)
    np.testing.assert_array_equal(part, whole[21:51, 37:77])


def test_normal_equations_equal_lstsq_and_quadratic_sse():
    rng = np.random.default_rng(3)
    x = np.column_stack([np.ones(500), rng.normal(-17, 3, 500), rng.normal(-11, 2, 500)])
    y = 0.3 + 0.02 * x[:, 1] - 0.01 * x[:, 2] + rng.normal(0, 0.05, 500)
    eq = fusion.NormalEquations(3)
    for part in np.array_split(np.arange(500), 7):
        eq.add(x[part], y[part])
    beta, rank = eq.solve()
    np.testing.assert_allclose(beta, np.linalg.lstsq(x, y, rcond=None)[0], rtol=1e-9, atol=1e-12)
    assert rank == 3
    c = np.array([0.1, 0.01, 0.02])
    assert eq.sse(c) == pytest.approx(np.sum((x @ c - y) ** 2), rel=1e-9)
    assert eq.sse_constant(0.5) == pytest.approx(np.sum((0.5 - y) ** 2), rel=1e-9)


# --- file level ----------------------------------------------------------------------------
def synthetic_scene(tmp_path, seed=0, noise=0.03, s1_nodata_block=True):
    """S2 DN bands, SCL and S1 (linear) whose NDVI depends linearly on the S1 predictors."""
    rng = np.random.default_rng(seed)
    vh_db = rng.uniform(-22, -12, (ROWS, COLS))
    vv_db = vh_db + rng.uniform(4, 9, (ROWS, COLS))
    ref = np.clip(0.4 + 0.3 * np.sin(np.arange(COLS) / 9.0)[None, :] + 0 * vh_db, -1, 1)
    ndvi = 0.55 + 0.035 * (vh_db + 17) - 0.02 * (vv_db + 11) + 0.4 * (ref - 0.4) \
        + rng.normal(0, noise, (ROWS, COLS))
    ndvi = np.clip(ndvi, -0.9, 0.95)
    red = rng.integers(400, 1500, (ROWS, COLS)).astype(np.float64)
    nir = np.rint(red * (1 + ndvi) / (1 - ndvi))
    red[5, 7] = 0                       # S2 NoData (DN 0), clear SCL: filled from S1
    scl = np.full((ROWS, COLS), 4, np.uint8)
    scl[10:40, 20:60] = 9
    scl[60:90, 70:100] = 8
    scl[0:5, 100:110] = 10
    vv = 10 ** (vv_db / 10)
    vh = 10 ** (vh_db / 10)
    if s1_nodata_block:
        vv[12:15, 22:25] = np.nan       # under cloud, S1 missing: NoData, flag 0
        red[50, 50] = 0                 # clear SCL, S2 missing ...
        vh[50, 50] = np.nan             # ... and S1 missing: NoData
    paths = {
        "red": write(str(tmp_path / "B04.tif"), red.astype(np.uint16), GT, 32633),
        "nir": write(str(tmp_path / "B08.tif"), np.clip(nir, 1, 65535).astype(np.uint16), GT,
                     32633),
        "scl": write(str(tmp_path / "SCL.tif"), scl, GT, 32633),
        "vv": write(str(tmp_path / "VV.tif"), vv.astype(np.float32), GT, 32633),
        "vh": write(str(tmp_path / "VH.tif"), vh.astype(np.float32), GT, 32633),
        "ref": write(str(tmp_path / "ref.tif"), ref.astype(np.float32), GT, 32633),
    }
    return paths, scl


def run(paths, tmp_path, name="fused", **options):
    options.setdefault("speckle_filter", False)
    options.setdefault("model", fusion.MODEL_LOCAL)
    out, src = str(tmp_path / f"{name}.tif"), str(tmp_path / f"{name}_source.tif")
    reference = BandSource(paths["ref"]) if options.pop("with_reference", False) else None
    result = fusion.fuse_ndvi_files(
        BandSource(paths["red"]), BandSource(paths["nir"]), BandSource(paths["scl"]),
        BandSource(paths["vv"]), BandSource(paths["vh"]), out, src, reference=reference,
        **options)
    return result, read(out), read_raw(src)


def read_raw(path):
    """The source band as stored (uint8; 0 = NoData is declared, so testkit.read hides it)."""
    ds = gdal.Open(path)
    assert ds.GetRasterBand(1).GetNoDataValue() == 0
    assert ds.GetRasterBand(1).DataType == gdal.GDT_Byte
    return ds.GetRasterBand(1).ReadAsArray()


def clear_pixel_arrays(paths, scl, with_reference=False):
    """The clear pixels' design matrix and NDVI, computed independently of core.fusion."""
    red, nir = read(paths["red"]), read(paths["nir"])
    red[red == 0] = np.nan
    nir[nir == 0] = np.nan
    y = ((nir - red) / (nir + red)).astype(np.float32).astype(np.float64)
    vv_db = 10 * np.log10(read(paths["vv"]))
    vh_db = 10 * np.log10(read(paths["vh"]))
    columns = [np.ones_like(y), vh_db, vv_db, (vh_db - vv_db) / (vh_db + vv_db)]
    if with_reference:
        columns.append(read(paths["ref"]))
    x = np.stack(columns, axis=-1)
    clear = ~np.isin(scl, [7, 8, 9, 10]) & np.isfinite(y) & np.all(np.isfinite(x), axis=-1)
    return x, y, clear


@pytest.mark.parametrize("with_reference", [False, True])
def test_local_coefficients_equal_lstsq_on_the_clear_pixels(tmp_path, with_reference):
    paths, scl = synthetic_scene(tmp_path)
    result, _, _ = run(paths, tmp_path, with_reference=with_reference, block_pixels=40 * 40)
    x, y, clear = clear_pixel_arrays(paths, scl, with_reference)
    expected = np.linalg.lstsq(x[clear], y[clear], rcond=None)[0]
    names = list(fusion.PREDICTOR_NAMES) + (["REFERENCE_NDVI"] if with_reference else [])
    got = [result.report.coefficients[n] for n in names]
    np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-9)
    assert result.report.fit_n == int(clear.sum())
    assert not result.report.fallback

    # Hold-out metrics: fit on the train cells, predict the withheld 32 x 32 cells.
    rows, cols = np.indices(scl.shape)
    held = ((rows // 32 + cols // 32) % 2) == 1
    train, test = clear & ~held, clear & held
    beta = np.linalg.lstsq(x[train], y[train], rcond=None)[0]
    residual = x[test] @ beta - y[test]
    assert result.report.fit_rmse == pytest.approx(np.sqrt(np.mean(residual ** 2)), rel=1e-6)
    baseline = np.sqrt(np.mean((y[test] - y[train].mean()) ** 2))
    assert result.report.baseline_rmse == pytest.approx(baseline, rel=1e-6)
    r2 = 1 - np.sum(residual ** 2) / np.sum((y[test] - y[test].mean()) ** 2)
    assert result.report.fit_r2 == pytest.approx(r2, rel=1e-6)
    assert result.report.fit_rmse < result.report.baseline_rmse
    assert result.outputs()["FIT_N"] == clear.sum()


def test_clear_pixels_equal_ndvi_cloudy_filled_and_flagged(tmp_path):
    paths, scl = synthetic_scene(tmp_path)
    result, fused, source = run(paths, tmp_path, block_pixels=33 * 33)
    reference = ndvi_file(BandSource(paths["red"]), BandSource(paths["nir"]),
                          str(tmp_path / "ndvi.tif"), scl=BandSource(paths["scl"]),
                          cloud_classes=(7, 8, 9, 10), boa_add_offset=0.0)
    s2 = read(reference)
    clear = np.isfinite(s2)
    assert clear.sum() > 0.6 * scl.size
    np.testing.assert_array_equal(fused[clear], s2[clear])       # bit for bit
    assert np.all(source[clear] == 1)
    cloudy = np.isin(scl, [8, 9, 10])
    # Filled under cloud from S1 with the fitted coefficients (clamped to [-1, 1]).
    x, _, _ = clear_pixel_arrays(paths, scl)
    beta = [result.report.coefficients[n] for n in fusion.PREDICTOR_NAMES]
    expected = np.clip(x @ np.asarray(beta), -1, 1)
    fill = cloudy & np.all(np.isfinite(x), axis=-1)
    np.testing.assert_allclose(fused[fill], expected[fill], rtol=0, atol=2e-6)
    assert np.all(source[fill] == 2)
    # Under cloud without S1: NoData, flag 0; S2 DN 0 on clear SCL: filled from S1 (flag 2);
    # S2 DN 0 and S1 missing: NoData.
    assert np.isnan(fused[12, 22]) and source[12, 22] == 0
    assert source[5, 7] == 2 and np.isfinite(fused[5, 7])
    assert np.isnan(fused[50, 50]) and source[50, 50] == 0
    assert result.filled == int(np.count_nonzero(source == 2))
    assert result.unfilled == int(np.count_nonzero(source == 0)) == 9 + 1
    expected_fraction = np.count_nonzero(cloudy) / scl.size
    assert result.cloud_fraction == pytest.approx(expected_fraction)


def test_results_do_not_depend_on_the_block_size(tmp_path):
    paths, _ = synthetic_scene(tmp_path)
    small, f1, s1 = run(paths, tmp_path, "a", block_pixels=20 * 20, cloud_buffer_m=20.0)
    large, f2, s2 = run(paths, tmp_path, "b", block_pixels=10 ** 7, cloud_buffer_m=20.0)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_allclose(f1, f2, rtol=0, atol=1e-6)
    assert small.report.fit_rmse == pytest.approx(large.report.fit_rmse, rel=1e-9)
    assert small.report.fit_n == large.report.fit_n


def test_cloud_buffer_widens_the_filled_area(tmp_path):
    paths, scl = synthetic_scene(tmp_path, s1_nodata_block=False)
    plain, _, s0 = run(paths, tmp_path, "a")
    buffered, _, s1 = run(paths, tmp_path, "b", cloud_buffer_m=20.0)
    assert s1[9, 30] == 2 and s0[9, 30] == 1      # 1 px above the cloud: inside a 2 px buffer
    assert s1[7, 30] == 1                          # 3 px above: outside
    assert buffered.cloud_fraction > plain.cloud_fraction


def test_recipe_mode_reproduces_the_scripts_arithmetic(tmp_path):
    paths, scl = synthetic_scene(tmp_path)
    result, fused, source = run(paths, tmp_path, model=fusion.MODEL_RECIPE)
    vv, vh = read(paths["vv"]), read(paths["vh"])
    for r, c in [(10, 20), (25, 45), (39, 59), (70, 80), (2, 105)]:
        assert source[r, c] == 2
        assert fused[r, c] == np.float32(recipe_pixel(float(vv[r, c]), float(vh[r, c])))
    assert result.report.coefficients == dict(zip(fusion.PREDICTOR_NAMES,
                                                  fusion.RECIPE_COEFFICIENTS))
    assert result.report.fit_n == 0
    # Honest: the formula's hold-out error is reported (and is worse than the mean here).
    assert result.report.fit_rmse > result.report.baseline_rmse
    assert any("worse than their mean" in w for w in result.warnings)


def test_recipe_mode_with_db_input_converts_to_linear_first(tmp_path):
    paths, _ = synthetic_scene(tmp_path)
    for band in ("vv", "vh"):
        linear = read(paths[band])
        paths[band] = write(str(tmp_path / f"{band}_db.tif"),
                            (10 * np.log10(linear)).astype(np.float32), GT, 32633)
    _, fused, _ = run(paths, tmp_path, model=fusion.MODEL_RECIPE, s1_units="db")
    vv = 10 ** (read(paths["vv"])[25, 45] / 10)
    vh = 10 ** (read(paths["vh"])[25, 45] / 10)
    assert fused[25, 45] == np.float32(recipe_pixel(vv, vh))


def test_custom_coefficients_use_correct_db(tmp_path):
    paths, scl = synthetic_scene(tmp_path)
    coefficients = (0.2, -0.01, 0.02, 0.5)
    result, fused, _ = run(paths, tmp_path, model=fusion.MODEL_CUSTOM, coefficients=coefficients)
    x, _, _ = clear_pixel_arrays(paths, scl)
    expected = np.clip(x @ np.asarray(coefficients), -1, 1)
    np.testing.assert_allclose(fused[30, 30], expected[30, 30], atol=2e-6)
    with pytest.raises(S1S2Error, match="COEFFICIENTS"):
        run(paths, tmp_path, "x", model=fusion.MODEL_CUSTOM, coefficients=(1.0, 2.0))
    with pytest.raises(S1S2Error, match="REFERENCE_NDVI"):
        run(paths, tmp_path, "x", model=fusion.MODEL_CUSTOM, coefficients=(1, 2, 3, 4, 5))


def test_no_skill_falls_back_to_the_clear_pixel_mean_loudly(tmp_path):
    paths, scl = synthetic_scene(tmp_path)
    rng = np.random.default_rng(9)   # S1 unrelated to NDVI
    for band in ("vv", "vh"):
        paths[band] = write(str(tmp_path / f"{band}_noise.tif"),
                            rng.uniform(0.01, 0.2, scl.shape).astype(np.float32), GT, 32633)
    result, fused, source = run(paths, tmp_path)
    x, y, clear = clear_pixel_arrays(paths, scl)
    assert result.report.fallback
    assert any("no skill" in w for w in result.warnings)
    assert result.report.coefficients["INTERCEPT"] == pytest.approx(y[clear].mean(), rel=1e-6)
    assert result.report.coefficients["VH_DB"] == 0.0
    filled = source == 2
    np.testing.assert_allclose(fused[filled], np.float32(y[clear].mean()), atol=1e-6)


def test_too_few_clear_pixels_fall_back_and_none_is_an_error(tmp_path):
    paths, scl = synthetic_scene(tmp_path)
    mostly = np.full(scl.shape, 9, np.uint8)
    mostly[0:5, 0:8] = 4
    paths["scl"] = write(str(tmp_path / "scl_cloudy.tif"), mostly, GT, 32633)
    result, _, source = run(paths, tmp_path)
    assert result.report.fallback and result.report.fit_n <= 40
    assert any("only" in w and "clear pixels" in w for w in result.warnings)
    assert np.count_nonzero(source == 2) > 0.9 * scl.size
    paths["scl"] = write(str(tmp_path / "scl_all.tif"), np.full(scl.shape, 8, np.uint8), GT,
                         32633)
    with pytest.raises(S1S2Error, match="No clear pixel"):
        run(paths, tmp_path, "x")
    assert not (tmp_path / "x.tif").exists()


def test_scl_at_20_m_is_resampled_nearest(tmp_path):
    paths, scl = synthetic_scene(tmp_path, s1_nodata_block=False)
    coarse = scl[::2, ::2]
    gt20 = (GT[0], 20.0, 0.0, GT[3], 0.0, -20.0)
    paths["scl"] = write(str(tmp_path / "scl20.tif"), coarse, gt20, 32633)
    result, _, source = run(paths, tmp_path)
    nearest = np.repeat(np.repeat(coarse, 2, axis=0), 2, axis=1)[:ROWS, :COLS]
    cloudy = np.isin(nearest, [8, 9, 10])
    assert np.all(source[cloudy] == 2)
    assert any("nearest" in line for line in result.log)


def test_reference_ndvi_predictor_improves_the_fit(tmp_path):
    paths, _ = synthetic_scene(tmp_path, s1_nodata_block=False)
    plain, _, _ = run(paths, tmp_path, "a")
    with_ref, _, _ = run(paths, tmp_path, "b", with_reference=True)
    assert with_ref.report.fit_rmse < 0.8 * plain.report.fit_rmse
    assert with_ref.outputs()["COEF_REFERENCE_NDVI"] == pytest.approx(0.4, abs=0.05)
    assert math.isnan(plain.outputs()["COEF_REFERENCE_NDVI"])


def test_mismatched_nir_grid_and_existing_output_kept(tmp_path):
    paths, _ = synthetic_scene(tmp_path)
    paths["nir"] = write(str(tmp_path / "nir_shift.tif"), read(paths["nir"]).astype(np.uint16),
                         (GT[0] + 10, 10, 0, GT[3], 0, -10), 32633)
    existing = tmp_path / "fused.tif"
    existing.write_bytes(b"keep")
    with pytest.raises(S1S2Error, match="not on the grid"):
        run(paths, tmp_path)
    assert existing.read_bytes() == b"keep"


def test_speckle_filter_runs_refined_lee_on_linear_before_db(tmp_path):
    from s1s2_toolkit.core.speckle import refined_lee

    paths, scl = synthetic_scene(tmp_path, s1_nodata_block=False)
    small, f1, _ = run(paths, tmp_path, "a", speckle_filter=True, block_pixels=30 * 30)
    large, f2, _ = run(paths, tmp_path, "b", speckle_filter=True, block_pixels=10 ** 7)
    np.testing.assert_allclose(f1, f2, rtol=0, atol=1e-6)
    # A cloud buffer wider than the filter's halo (5 px > 3 px): still block-independent.
    _, f3, s3 = run(paths, tmp_path, "c", speckle_filter=True, block_pixels=30 * 30,
                    cloud_buffer_m=50.0)
    _, f4, s4 = run(paths, tmp_path, "d", speckle_filter=True, block_pixels=10 ** 7,
                    cloud_buffer_m=50.0)
    np.testing.assert_array_equal(s3, s4)
    np.testing.assert_allclose(f3, f4, rtol=0, atol=1e-6)
    # Independent: filter the whole linear rasters, then the same least squares.
    filtered = dict(paths)
    for band in ("vv", "vh"):
        filtered[band] = write(str(tmp_path / f"{band}_rl.tif"),
                               refined_lee(read(paths[band])).astype(np.float32), GT, 32633)
    x, y, clear = clear_pixel_arrays(filtered, scl)
    expected = np.linalg.lstsq(x[clear], y[clear], rcond=None)[0]
    got = [small.report.coefficients[n] for n in fusion.PREDICTOR_NAMES]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


def test_s1_off_the_s2_grid_is_collocated_in_linear_units(tmp_path):
    paths, scl = synthetic_scene(tmp_path, s1_nodata_block=False)
    x, y, clear = clear_pixel_arrays(paths, scl)
    # The same S1 values in dB on a grid one column larger, starting 10 m further west.
    shifted_gt = (GT[0] - 10.0,) + GT[1:]
    for band in ("vv", "vh"):
        db = 10 * np.log10(read(paths[band]))
        wider = np.concatenate([db[:, :1], db], axis=1)
        paths[band] = write(str(tmp_path / f"{band}_wide.tif"), wider.astype(np.float32),
                            shifted_gt, 32633)
    result, fused, source = run(paths, tmp_path, s1_units="db")
    assert any("collocated" in line for line in result.log)
    expected = np.linalg.lstsq(x[clear], y[clear], rcond=None)[0]
    got = [result.report.coefficients[n] for n in fusion.PREDICTOR_NAMES]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    assert np.all(source[np.isin(scl, [8, 9, 10])] == 2)


def test_cancel_in_either_pass_writes_nothing(tmp_path):
    from s1s2_toolkit.core.errors import Cancelled

    paths, _ = synthetic_scene(tmp_path)
    for stop_after, in_fill_pass in ((1, False), (45, True)):  # 30 blocks per pass
        calls, progress = [], []

        def cancel():
            calls.append(1)
            return len(calls) > stop_after

        with pytest.raises(Cancelled):
            run(paths, tmp_path, "c", block_pixels=20 * 20, cancel=cancel,
                progress=progress.append)
        assert (max(progress) > 45) == in_fill_pass
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(("c.", ".c.", "c_"))]


def test_scl_no_data_means_not_clear(tmp_path):
    paths, scl = synthetic_scene(tmp_path, s1_nodata_block=False)
    marked = scl.copy()
    marked[80:90, 0:10] = 0      # SCL class 0 "no data"
    marked[90:96, 0:10] = 255    # declared NoData of the SCL file
    paths["scl"] = write(str(tmp_path / "scl_nodata.tif"), marked, GT, 32633, nodata=255)
    result, fused, source = run(paths, tmp_path)
    assert np.all(source[80:96, 0:10] == 2) and np.all(np.isfinite(fused[80:96, 0:10]))
    # ... and they are neither cloud nor clear in the statistics.
    x, y, clear = clear_pixel_arrays(paths, scl)
    clear[80:96, 0:10] = False
    assert result.report.fit_n == int(clear.sum())
    valid_scl = np.ones(scl.shape, bool)
    valid_scl[80:96, 0:10] = False
    cloudy = np.isin(scl, [8, 9, 10]) & valid_scl
    assert result.cloud_fraction == pytest.approx(cloudy.sum() / valid_scl.sum())
