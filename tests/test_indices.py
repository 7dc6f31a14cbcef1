"""Core indices: NDVI, RVI4S1, VV/VH ratios, angle mask against hand-computed values and
independent float64 formulas on the bundled real data."""
import os

import numpy as np
import pytest

from s1s2_toolkit.core import BandSource, S1S2Error
from s1s2_toolkit.core import indices
from s1s2_toolkit.core.units import from_db
from testkit import S1_CHIP, S2_CHIP, bigearthnet_pairs, patch_band, read, write


def ndvi64(red, nir, offset=0.0):
    """The reference: float64, DN 0 -> NaN, division by zero -> NaN."""
    red, nir = red.astype(np.float64), nir.astype(np.float64)
    bad = (red == 0) | (nir == 0) | np.isnan(red) | np.isnan(nir)
    red, nir = red + offset, nir + offset
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (nir - red) / (nir + red)
    out[bad | (nir + red == 0)] = np.nan
    return out


@pytest.mark.parametrize("pair", bigearthnet_pairs()[:2], ids=lambda p: os.path.basename(p[0]))
def test_ndvi_on_real_l2a_patches_equals_float64_formula(pair, tmp_path):
    s2 = pair[0]
    out = indices.ndvi_file(BandSource(patch_band(s2, "B04")), BandSource(patch_band(s2, "B08")),
                            str(tmp_path / "ndvi.tif"))
    red, nir = read(patch_band(s2, "B04")), read(patch_band(s2, "B08"))
    expected = ndvi64(red, nir)
    got = read(out)
    assert np.isfinite(expected).sum() > 10000
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert np.array_equal(np.isnan(got), np.isnan(expected))


def test_ndvi_real_patch_offset_minus_1000_changes_result_as_formula_says(tmp_path):
    s2 = bigearthnet_pairs()[0][0]
    red_src, nir_src = BandSource(patch_band(s2, "B04")), BandSource(patch_band(s2, "B08"))
    plain = read(indices.ndvi_file(red_src, nir_src, str(tmp_path / "a.tif")))
    shifted = read(indices.ndvi_file(red_src, nir_src, str(tmp_path / "b.tif"),
                                     boa_add_offset=-1000, negative_reflectance="keep"))
    red, nir = read(patch_band(s2, "B04")), read(patch_band(s2, "B08"))
    # (NIR - RED) / (NIR + RED - 2000): same numerator, smaller denominator.
    np.testing.assert_allclose(shifted, ndvi64(red, nir, -1000.0), rtol=2e-6, atol=1e-6)
    # The default masks the pixels whose reflectance is <= 0 in either band.
    masked = read(indices.ndvi_file(red_src, nir_src, str(tmp_path / "c.tif"),
                                    boa_add_offset=-1000))
    non_positive = (red <= 1000) | (nir <= 1000)
    assert non_positive.sum() > 100
    assert np.isnan(masked[non_positive]).all()
    np.testing.assert_allclose(masked[~non_positive], shifted[~non_positive], rtol=0, atol=0)
    valid = np.isfinite(plain) & np.isfinite(shifted)
    assert np.abs(shifted[valid] - plain[valid]).max() > 0.05


def test_uint16_red_above_nir_is_negative_not_wraparound(tmp_path):
    red = np.array([[3000, 65535, 100, 0]], dtype=np.uint16)
    nir = np.array([[1000, 1, 100, 500]], dtype=np.uint16)
    got = indices.ndvi(red, nir)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got[0, :3], [-0.5, (1 - 65535) / 65536, 0.0], rtol=1e-6)
    assert np.isnan(got[0, 3])  # DN 0 -> NoData
    pr = write(str(tmp_path / "r.tif"), red, dtype="uint16")
    pn = write(str(tmp_path / "n.tif"), nir, dtype="uint16")
    got_file = read(indices.ndvi_file(BandSource(pr), BandSource(pn), str(tmp_path / "o.tif")))
    np.testing.assert_allclose(got_file[0, :3], [-0.5, (1 - 65535) / 65536, 0.0], rtol=1e-6)
    assert np.isnan(got_file[0, 3])


def test_reflectance_and_division_by_zero():
    dn = np.array([0, 1000, 1500, np.nan])
    np.testing.assert_allclose(indices.reflectance(dn, -1000, 10000), [np.nan, 0.0, 0.05, np.nan])
    np.testing.assert_allclose(indices.reflectance(dn), [np.nan, 0.1, 0.15, np.nan])
    # RED = NIR = 1000 with offset -1000: NIR + RED = 0 -> NoData, not inf.
    out = indices.ndvi(np.array([1000.0, 1200.0]), np.array([1000.0, 1400.0]), -1000)
    assert np.isnan(out[0])
    assert out[1] == pytest.approx((400 - 200) / 600)
    # Quantification cancels; the inputs are not modified in place.
    red = np.array([500.0, np.nan])
    out = indices.ndvi(red, np.array([1500.0, 10.0]), 0.0, 1.0)
    assert out[0] == pytest.approx(0.5) and np.isnan(out[1]) and red[0] == 500.0
    with pytest.raises(S1S2Error, match="QUANTIFICATION_VALUE"):
        indices.ndvi(red, red, 0.0, 0.0)


def test_ndvi_on_multiband_l1c_stack_bands_4_and_8(tmp_path):
    out = indices.ndvi_file(BandSource(S2_CHIP, 4), BandSource(S2_CHIP, 8),
                            str(tmp_path / "ndvi.tif"), block_pixels=100 * 100)
    np.testing.assert_allclose(read(out), ndvi64(read(S2_CHIP, 4), read(S2_CHIP, 8)),
                               rtol=0, atol=1e-6)


def test_ndvi_mismatched_grids_and_missing_band_are_clear_errors(tmp_path):
    a = write(str(tmp_path / "a.tif"), np.ones((20, 20), np.uint16))
    b = write(str(tmp_path / "b.tif"), np.ones((20, 21), np.uint16))
    with pytest.raises(S1S2Error, match="NIR is not on the grid of RED"):
        indices.ndvi_file(BandSource(a), BandSource(b), str(tmp_path / "o.tif"))
    with pytest.raises(S1S2Error, match="band 8"):
        indices.ndvi_file(BandSource(a), BandSource(a, 8), str(tmp_path / "o.tif"))
    assert not os.path.exists(str(tmp_path / "o.tif"))


def test_rvi4s1_hand_values():
    vv = np.ones(5)
    vh = np.array([0.0, 1.0, 3.0, 0.5, np.nan])
    got = indices.rvi4s1(vv, vh)
    np.testing.assert_allclose(got[:4], [0.0, 1.0, 1.125, 0.5 * 3.5 / 2.25], rtol=1e-6)
    assert np.isnan(got[4])
    # VV = 0 (q undefined) and negative power -> NoData; the 1 - m*beta identity holds.
    assert np.isnan(indices.rvi4s1(np.array([0.0, -1.0]), np.array([1.0, 1.0]))).all()
    q = np.linspace(0.01, 5, 50)
    m, beta = (1 - q) / (1 + q), 1 / (1 + q)
    np.testing.assert_allclose(indices.rvi4s1(np.ones_like(q), q), 1 - m * beta, rtol=1e-5)


def test_rvi4s1_db_input_equals_linear_input_real_chip(tmp_path):
    vv_lin = write(str(tmp_path / "vv.tif"), from_db(read(S1_CHIP, 1)).astype(np.float32))
    vh_lin = write(str(tmp_path / "vh.tif"), from_db(read(S1_CHIP, 2)).astype(np.float32))
    from_db_run = read(indices.rvi4s1_file(BandSource(S1_CHIP, 1), BandSource(S1_CHIP, 2),
                                           str(tmp_path / "a.tif"), indices.DB))
    from_lin_run = read(indices.rvi4s1_file(BandSource(vv_lin), BandSource(vh_lin),
                                            str(tmp_path / "b.tif"), indices.LINEAR))
    q = 10 ** ((read(S1_CHIP, 2) - read(S1_CHIP, 1)) / 10)
    expected = q * (q + 3) / (q + 1) ** 2
    np.testing.assert_allclose(from_db_run, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(from_lin_run, from_db_run, rtol=1e-5, atol=1e-6)
    assert np.isfinite(from_db_run).mean() > 0.9


def test_vv_vh_modes_agree():
    rng = np.random.default_rng(3)
    vv = rng.gamma(2, 0.05, 1000)
    vh = rng.gamma(2, 0.01, 1000)
    vv[:3] = [0.0, -1.0, 0.1]
    vh[2] = 0.0
    linear = indices.vv_vh_ratio(vv, vh, indices.RATIO_LINEAR)
    db = indices.vv_vh_ratio(vv, vh, indices.RATIO_DB)
    ok = np.isfinite(db)
    np.testing.assert_allclose(db[ok], 10 * np.log10(linear[ok]), rtol=1e-5, atol=1e-5)
    assert np.isnan(db[:3]).all() and np.isnan(linear[2])  # log of 0 / negative, VH = 0
    vv_db, vh_db = 10 * np.log10(vv[3:]), 10 * np.log10(vh[3:])
    db_from_db = indices.vv_vh_ratio(vv_db, vh_db, indices.RATIO_DB, indices.DB)
    np.testing.assert_allclose(db_from_db, vv_db - vh_db, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(db_from_db, db[3:], rtol=1e-4, atol=1e-4)
    lin_from_db = indices.vv_vh_ratio(vv_db, vh_db, indices.RATIO_LINEAR, indices.DB)
    np.testing.assert_allclose(lin_from_db, linear[3:], rtol=1e-4)


def test_ratio_of_db_is_the_earth_engine_quotient_masked_to_minus5_5():
    vv_db = np.array([-10.0, -10.0, -10.0, 1.0, -25.0, -20.0])
    vh_db = np.array([-16.0, -2.0, 0.0, -0.2, -5.0, 4.0])
    got = indices.vv_vh_ratio(vv_db, vh_db, indices.RATIO_OF_DB, indices.DB)
    np.testing.assert_allclose(got[0], 0.625)
    assert np.isnan(got[1])          # 5.0 is outside the open interval
    assert np.isnan(got[2])          # division by zero
    assert np.isnan(got[3])          # -5.0 also outside (1 / -0.2)
    assert np.isnan(got[4])          # exactly 5
    assert np.isnan(got[5])          # exactly -5
    lin = indices.vv_vh_ratio(10 ** (vv_db[:1] / 10), 10 ** (vh_db[:1] / 10), indices.RATIO_OF_DB)
    np.testing.assert_allclose(lin, [0.625], rtol=1e-5)


def test_angle_mask_exclusive_bounds_and_file(tmp_path):
    values = np.arange(6, dtype=np.float64)
    angle = np.array([30.0, 30.64, 30.65, 45.53, 45.54, np.nan])
    got = indices.angle_mask(values, angle)
    np.testing.assert_array_equal(np.isnan(got), [True, True, False, False, True, True])
    assert got[2] == 2.0 and got[3] == 3.0
    with pytest.raises(S1S2Error, match="MIN_ANGLE"):
        indices.angle_mask(values, angle, 40, 30)
    rng = np.random.default_rng(0)
    v = rng.normal(size=(70, 90)).astype(np.float32)
    a = rng.uniform(25, 50, size=v.shape).astype(np.float32)
    pv, pa = write(str(tmp_path / "v.tif"), v), write(str(tmp_path / "a.tif"), a)
    ph = write(str(tmp_path / "h.tif"), v)  # the same band twice is refused as swapped layers
    out = read(indices.vv_vh_ratio_file(BandSource(pv), BandSource(ph), str(tmp_path / "r.tif"),
                                        indices.RATIO_DB, indices.DB, angle=BandSource(pa)))
    keep = (a > 30.64) & (a < 45.54)
    np.testing.assert_array_equal(np.isfinite(out), keep)
    np.testing.assert_allclose(out[keep], 0.0)
    masked = read(indices.angle_mask_file(BandSource(pv), BandSource(pa), str(tmp_path / "m.tif"),
                                          35.0, 40.0, block_pixels=32 * 32))
    keep = (a > 35) & (a < 40)
    np.testing.assert_array_equal(masked[keep], v[keep])
    assert np.isnan(masked[~keep]).all()


def test_cancelled_ndvi_leaves_existing_output_untouched(tmp_path):
    from s1s2_toolkit.core import Cancelled

    s2 = bigearthnet_pairs()[0][0]
    out = tmp_path / "ndvi.tif"
    out.write_bytes(b"previous result")
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        indices.ndvi_file(BandSource(patch_band(s2, "B04")), BandSource(patch_band(s2, "B08")),
                          str(out), block_pixels=32 * 32, cancel=cancel)
    assert out.read_bytes() == b"previous result"
    assert sorted(os.listdir(tmp_path)) == ["ndvi.tif"]


def test_ndvi_on_lossless_jp2_bands_as_in_a_safe_product(tmp_path):
    from osgeo import gdal

    s2 = bigearthnet_pairs()[2][0]
    paths = {}
    for band in ("B04", "B08"):
        paths[band] = str(tmp_path / f"T29UPU_20170617T113321_{band}_10m.jp2")
        gdal.Translate(paths[band], patch_band(s2, band), format="JP2OpenJPEG",
                       creationOptions=["QUALITY=100", "REVERSIBLE=YES"])
    got = read(indices.ndvi_file(BandSource(paths["B04"]), BandSource(paths["B08"]),
                                 str(tmp_path / "ndvi.tif")))
    np.testing.assert_allclose(got, ndvi64(read(patch_band(s2, "B04")),
                                           read(patch_band(s2, "B08"))), atol=1e-6)
