"""Sea-ice masks: blockwise hole filling and feature counts against scipy on the whole
array, the NaN-aware median, a synthetic ice scene with known concentration, and the
BigEarthNet 57_38 snow patch (B03) as an S2 stand-in."""
import os

import numpy as np
import pytest
from scipy import ndimage

from testkit import BIGEARTHNET, patch_band, read, write

EIGHT = np.ones((3, 3), bool)
# tiles of 17 x 17 .. 64 x 64 px, strips, and a single block
BLOCK_SIZES = [17 * 17, 23 * 29, 40 * 40, 64 * 64, 10 ** 7]


def _ring(shape, centre, r0, r1):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    r = np.hypot(yy - centre[0], xx - centre[1])
    return (r >= r0) & (r < r1)


def water_scene(shape=(190, 230), seed=0):
    """Water with: noise, a big ring of water (its inside is a hole spanning many blocks),
    ring-shaped ice inside it, thin diagonal lines crossing block corners, NoData pixels."""
    rng = np.random.default_rng(seed)
    water = rng.random(shape) < 0.45
    water |= _ring(shape, (95, 115), 70, 78)
    water &= ~_ring(shape, (95, 115), 30, 34)           # ring of ice crossing seams
    water[_ring(shape, (95, 115), 0, 12)] = True        # water lake inside the ice ring
    for k in range(0, 120):                              # diagonal ice line: 8-connected only
        water[20 + k, 40 + k] = False
        water[20 + k, 41 + k] = True
        water[21 + k, 40 + k] = True
    water[:, -1] = True                                  # water along one image edge
    return water


def test_blockwise_fill_holes_equals_scipy(tmp_path):
    from s1s2_toolkit.core.raster import BandSource
    from s1s2_toolkit.core.seaice import s2_ice_mask_file

    water = water_scene()
    b03 = np.where(water, 1200, 4000).astype(np.uint16)
    b03[100:103, 0:5] = 0                                # NoData (DN 0)
    path = write(str(tmp_path / "b03.tif"), b03, dtype="uint16")
    valid = b03 > 0
    expected_water = ndimage.binary_fill_holes(water & valid)
    assert expected_water.sum() > (water & valid).sum() + 1000  # there are big holes
    want = np.where(expected_water, 0.0, 1.0)
    want[~valid] = np.nan
    for block_pixels in BLOCK_SIZES:
        out = s2_ice_mask_file(BandSource(path, 1, "B03", zero_is_nodata=True),
                               str(tmp_path / f"ice_{block_pixels}.tif"), 2500, True,
                               block_pixels=block_pixels)
        np.testing.assert_array_equal(read(out), want, err_msg=str(block_pixels))
    out = s2_ice_mask_file(BandSource(path, 1, "B03", zero_is_nodata=True),
                           str(tmp_path / "nofill.tif"), 2500, False, block_pixels=40 * 40)
    nofill = np.where(water, 0.0, 1.0)
    nofill[~valid] = np.nan
    np.testing.assert_array_equal(read(out), nofill)


@pytest.mark.parametrize("seed", [1, 2])
def test_blockwise_fill_holes_random_blobs(tmp_path, seed):
    """Smoothed noise: many nested holes and islands of all sizes crossing seams."""
    from s1s2_toolkit.core.raster import BandSource
    from s1s2_toolkit.core.seaice import s2_ice_mask_file

    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal((150, 170)), 3)
    water = field < np.quantile(field, 0.5)
    path = write(str(tmp_path / "b.tif"), np.where(water, 100, 9000).astype(np.uint16),
                 dtype="uint16")
    want = np.where(ndimage.binary_fill_holes(water), 0.0, 1.0)
    assert (want != np.where(water, 0.0, 1.0)).any()
    for block_pixels in BLOCK_SIZES[:3]:
        out = s2_ice_mask_file(BandSource(path, 1, "B03"), str(tmp_path / "o.tif"), 2500,
                               True, block_pixels=block_pixels)
        np.testing.assert_array_equal(read(out), want)


def test_blockwise_feature_count_equals_scipy_label(tmp_path):
    from s1s2_toolkit.core.seaice import mask_statistics

    water = water_scene(seed=3)
    ice = ~water
    mask1 = np.where(ice, 1, 0).astype(np.uint8)
    mask1[5:9, 5:9] = 255
    rng = np.random.default_rng(4)
    mask2 = np.where(rng.random(ice.shape) < 0.3, 1, 0).astype(np.uint8)  # many tiny features
    p1 = write(str(tmp_path / "m1.tif"), mask1, nodata=255, dtype="uint8")
    p2 = write(str(tmp_path / "m2.tif"), mask2, nodata=255, dtype="uint8")
    n1 = ndimage.label(mask1 == 1, EIGHT)[1]
    n2 = ndimage.label(mask2 == 1, EIGHT)[1]
    assert n1 != ndimage.label(mask1 == 1)[1]  # 8- and 4-connectivity differ here
    v1, v2 = mask1 != 255, mask2 != 255
    both = v1 & v2
    for block_pixels in BLOCK_SIZES:
        st = mask_statistics(p1, p2, block_pixels=block_pixels)
        assert (st["S1_FEATURES"], st["S2_FEATURES"]) == (n1, n2), block_pixels
        assert st["S1_ICE_CONCENTRATION"] == pytest.approx((mask1 == 1).sum() / v1.sum())
        assert st["S2_ICE_CONCENTRATION"] == pytest.approx((mask2 == 1).sum() / v2.sum())
        assert st["AGREEMENT"] == pytest.approx((both & (mask1 == mask2)).sum() / both.sum())


def test_nan_median_matches_nanmedian_reference():
    from s1s2_toolkit.core.seaice import nan_median_filter

    rng = np.random.default_rng(5)
    x = rng.gamma(1.0, 0.01, (40, 47)).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = np.nan
    x[10:14, 20:30] = np.nan
    padded = np.pad(x.astype(np.float64), 2, constant_values=np.nan)
    with np.errstate(all="ignore"):
        ref = ndimage.generic_filter(padded, np.nanmedian, size=5, mode="constant",
                                     cval=np.nan)[2:-2, 2:-2]
    ref[np.isnan(x)] = np.nan
    got = nan_median_filter(x, 5)
    np.testing.assert_allclose(got, ref, rtol=1e-6, equal_nan=True)


def synthetic_ice_scene(tmp_path):
    """Rectangular floes on open water; S1 HV -18 dB ice / -35 dB water, S2 B03 5000 / 900.

    Floes touching the image border survive S2 hole filling; floes enclosed by water
    are holes of the water mask and are filled (the recipe's behaviour).
    """
    shape = (160, 200)
    ice = np.zeros(shape, bool)
    floes = [(0, 30, 0, 50), (20, 60, 80, 120), (100, 160, 150, 200), (90, 120, 20, 70),
             (70, 80, 130, 140)]
    for y0, y1, x0, x1 in floes:
        ice[y0:y1, x0:x1] = True
    hv_db = np.where(ice, -18.0, -35.0).astype(np.float32)
    hv = write(str(tmp_path / "S1A_EW_GRDM_1SDH_20210403T122536_hv.tif"),
               10 ** (hv_db / 10), epsg=32633, dtype="float32")
    b03 = write(str(tmp_path / "S2A_MSIL2A_20210403T152536_B03.tif"),
                np.where(ice, 5000, 900).astype(np.uint16), epsg=32633, dtype="uint16")
    return hv, b03, ice, floes


def test_synthetic_scene_known_concentration(tmp_path):
    from s1s2_toolkit.core.raster import BandSource
    from s1s2_toolkit.core.seaice import sea_ice

    hv, b03, ice, floes = synthetic_ice_scene(tmp_path)
    total = ice.size
    # 5 x 5 median of a rectangle >= 5 px wide: each of its corners not on the image
    # edge loses the corner pixel and its two edge neighbours (9 and 12 of 25 are ice)
    lost = 0
    for y0, y1, x0, x1 in floes:
        for cy, cx in ((y0, x0), (y0, x1), (y1, x0), (y1, x1)):
            inside_y = 0 < cy < 160
            inside_x = 0 < cx < 200
            lost += 3 if (inside_y and inside_x) else 0
    s1_ice = ice.sum() - lost
    s2_ice = sum((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in floes
                 if y0 == 0 or x0 == 0 or y1 == 160 or x1 == 200)
    out1, out2 = str(tmp_path / "s1ice.tif"), str(tmp_path / "s2ice.tif")
    numbers = sea_ice(hv, BandSource(b03, 1, "B03", zero_is_nodata=True), out1, out2,
                      block_pixels=37 * 37)
    assert numbers["S1_ICE_CONCENTRATION"] == pytest.approx(s1_ice / total)
    assert numbers["S2_ICE_CONCENTRATION"] == pytest.approx(s2_ice / total)
    assert numbers["S1_FEATURES"] == 5 and numbers["S2_FEATURES"] == 2
    m1, m2 = read(out1), read(out2)
    assert numbers["AGREEMENT"] == pytest.approx((m1 == m2).mean())
    assert numbers["TIME_DIFFERENCE_HOURS"] == pytest.approx(3.0)  # from the file names
    nofill = sea_ice(hv, BandSource(b03, 1, "B03", zero_is_nodata=True), out1, out2,
                     fill_holes=False, s1_threshold_db=-40.0, block_pixels=37 * 37)
    assert nofill["S2_ICE_CONCENTRATION"] == pytest.approx(ice.sum() / total)
    assert nofill["S1_ICE_CONCENTRATION"] == pytest.approx(1.0)  # everything above -40 dB


def test_s1_in_db_and_on_another_grid_is_collocated(tmp_path):
    """dB input detected from its values; S1 on a coarser grid is resampled onto S2's."""
    from s1s2_toolkit.core.raster import BandSource
    from s1s2_toolkit.core.seaice import sea_ice

    hv, b03, ice, _ = synthetic_ice_scene(tmp_path)
    coarse = np.where(ice[::2, ::2], -18.0, -35.0).astype(np.float32)
    hv_db = write(str(tmp_path / "hv_db_20m.tif"), coarse,
                  geotransform=(500000.0, 20.0, 0.0, 5000000.0, 0.0, -20.0), dtype="float32")
    out1, out2 = str(tmp_path / "a.tif"), str(tmp_path / "b.tif")
    numbers = sea_ice(hv_db, BandSource(b03, 1, "B03"), out1, out2)
    m1 = read(out1)
    assert m1.shape == ice.shape
    assert numbers["S1_ICE_CONCENTRATION"] == pytest.approx(ice.mean(), abs=0.02)
    assert ((m1 == 1) == ice).mean() > 0.98  # only floe edges differ after resampling
    assert numbers["TIME_DIFFERENCE_HOURS"] is None  # no time for hv_db_20m.tif


def test_bigearthnet_snow_patch_as_s2_stand_in(tmp_path):
    """Real B03 of a Finnish winter patch (mean 3251 DN) and its S1 VH (dB) stand-in."""
    from s1s2_toolkit.core.raster import BandSource
    from s1s2_toolkit.core.seaice import sea_ice

    s2_dir = os.path.join(BIGEARTHNET, "S2B_MSIL2A_20180204T94161_57_38")
    s1_dir = os.path.join(BIGEARTHNET, "S1A_IW_GRDH_1SDV_20180204T043253_35VPK_57_38")
    b03_path, vh_path = patch_band(s2_dir, "B03"), patch_band(s1_dir, "VH")
    b03, vh = read(b03_path), read(vh_path)
    out1, out2 = str(tmp_path / "s1.tif"), str(tmp_path / "s2.tif")
    numbers = sea_ice(vh_path, BandSource(b03_path, 1, "B03", zero_is_nodata=True), out1, out2,
                      s1_threshold_db=-20.0, block_pixels=30 * 30)
    # independent whole-array references
    s2_ice = ~ndimage.binary_fill_holes(b03 < 2500)
    assert numbers["S2_ICE_CONCENTRATION"] == pytest.approx(s2_ice.mean())
    assert 0.3 < numbers["S2_ICE_CONCENTRATION"] < 0.9  # a real mix of snow and dark
    assert numbers["S2_FEATURES"] == ndimage.label(s2_ice, EIGHT)[1]
    padded = np.pad(vh, 2, constant_values=np.nan)
    med = ndimage.generic_filter(padded, np.nanmedian, size=5)[2:-2, 2:-2]
    s1_ice = med >= -20.0  # the median of dB values = dB of the median (odd windows inside)
    inner = (slice(2, -2), slice(2, -2))
    np.testing.assert_array_equal(read(out1)[inner] == 1, s1_ice[inner])
    np.testing.assert_array_equal(read(out2), np.where(s2_ice, 1.0, 0.0))
    # BigEarthNet metadata: S1 2018-02-04T04:32:53, S2 2018-02-04 09:41:56
    assert numbers["TIME_DIFFERENCE_HOURS"] == pytest.approx(5 + 9 / 60 + 3 / 3600)


def test_bad_parameters(tmp_path):
    from s1s2_toolkit.core.errors import S1S2Error
    from s1s2_toolkit.core.raster import BandSource
    from s1s2_toolkit.core.seaice import sea_ice

    hv, b03, _, _ = synthetic_ice_scene(tmp_path)
    with pytest.raises(S1S2Error, match="odd"):
        sea_ice(hv, BandSource(b03), str(tmp_path / "a.tif"), str(tmp_path / "b.tif"),
                s1_median_size=4)
    with pytest.raises(S1S2Error, match="different files"):
        sea_ice(hv, BandSource(b03), str(tmp_path / "a.tif"), str(tmp_path / "a.tif"))
    nogeo = str(tmp_path / "nogeo.tif")
    from osgeo import gdal
    ds = gdal.GetDriverByName("GTiff").Create(nogeo, 10, 10, 1, gdal.GDT_Float32)
    ds.GetRasterBand(1).Fill(0.01)
    ds = None
    with pytest.raises(S1S2Error, match="no georeferencing"):
        sea_ice(nogeo, BandSource(b03), str(tmp_path / "a.tif"), str(tmp_path / "b.tif"))


def _as_hv_product(safe):
    """Relabel the VH image of a built product as HV (file names and <polarisation>)."""
    for folder, _, files in os.walk(safe):
        for name in files:
            if "-vh-" not in name:
                continue
            path = os.path.join(folder, name)
            if name.endswith(".xml"):
                with open(path, "rb") as handle:
                    data = handle.read().replace(b"<polarisation>VH<", b"<polarisation>HV<")
                with open(path, "wb") as handle:
                    handle.write(data)
            os.rename(path, os.path.join(folder, name.replace("-vh-", "-hv-")))
    return safe


def test_safe_product_calibrated_on_the_fly_equals_two_steps(tmp_path):
    """S1 given as a SAFE product == calibrate (HV sigma0, floor) then seaice on the result;
    the GCP-georeferenced radar-geometry image is collocated onto an EPSG:4326 S2 grid."""
    from test_calibration_product import build_product

    from s1s2_toolkit.core.calibration import calibrate
    from s1s2_toolkit.core.raster import BandSource
    from s1s2_toolkit.core.seaice import sea_ice

    safe = _as_hv_product(build_product(str(tmp_path / "p"), scale=10, polarisations=("VH",)))
    green = write(str(tmp_path / "b03.tif"), np.full((150, 200), 1000, np.uint16),
                  geotransform=(33.3, 0.002, 0.0, -18.0, 0.0, -0.002), epsg=4326,
                  dtype="uint16")
    a1, a2 = str(tmp_path / "a1.tif"), str(tmp_path / "a2.tif")
    on_the_fly = sea_ice(safe, BandSource(green), a1, a2, s1_threshold_db=-25.0)
    sigma0 = calibrate(safe, "HV", str(tmp_path / "hv.tif"), negative="floor")
    b1, b2 = str(tmp_path / "b1.tif"), str(tmp_path / "b2.tif")
    two_steps = sea_ice(sigma0, BandSource(green), b1, b2, s1_threshold_db=-25.0)
    m1 = read(a1)
    np.testing.assert_array_equal(m1, read(b1))
    assert np.isfinite(m1).mean() > 0.99  # the S2 grid lies inside the swath
    assert 0.05 < on_the_fly["S1_ICE_CONCENTRATION"] < 0.95
    for key in ("S1_ICE_CONCENTRATION", "S1_FEATURES", "AGREEMENT"):
        assert on_the_fly[key] == two_steps[key]
    assert on_the_fly["S2_ICE_CONCENTRATION"] == 0.0  # B03 1000 everywhere: open water
    assert on_the_fly["TIME_DIFFERENCE_HOURS"] is None  # no time for b03.tif


def test_cancel_and_all_nodata(tmp_path):
    from s1s2_toolkit.core.errors import Cancelled
    from s1s2_toolkit.core.raster import BandSource
    from s1s2_toolkit.core.seaice import sea_ice

    hv, b03, _, _ = synthetic_ice_scene(tmp_path)
    out1, out2 = str(tmp_path / "c1.tif"), str(tmp_path / "c2.tif")
    with pytest.raises(Cancelled):
        sea_ice(hv, BandSource(b03), out1, out2, cancel=lambda: True)
    left = [n for n in os.listdir(tmp_path) if n.startswith((".", "c1", "c2"))]
    assert left == []  # no output, no partial file, no work folder
    empty = write(str(tmp_path / "empty_b03.tif"), np.zeros((160, 200), np.uint16),
                  dtype="uint16")
    numbers = sea_ice(hv, BandSource(empty, 1, "B03", zero_is_nodata=True), out1, out2)
    assert numbers["S2_ICE_CONCENTRATION"] is None and numbers["AGREEMENT"] is None
    assert numbers["S2_FEATURES"] == 0 and (read(out2) != read(out2)).all()  # all NoData
    assert numbers["S1_ICE_CONCENTRATION"] is not None
