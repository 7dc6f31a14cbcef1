"""SCL cloud mask: class parsing, metre buffer -> pixel ring, 20 m SCL onto the 10 m grid,
block-size independence."""
import os

import numpy as np
import pytest

from s1s2_toolkit.core import BandSource, Grid, S1S2Error
from s1s2_toolkit.core import indices, scl
from testkit import DATA_DIR, bigearthnet_pairs, patch_band, read, write


def brute_force_buffer(cloud, radius_px):
    """Every pixel whose centre is within radius_px of a cloud pixel's centre (O(n*m))."""
    rows, cols = np.nonzero(cloud)
    yy, xx = np.mgrid[:cloud.shape[0], :cloud.shape[1]]
    out = np.zeros(cloud.shape, bool)
    for r, c in zip(rows, cols):
        out |= (yy - r) ** 2 + (xx - c) ** 2 <= radius_px ** 2
    return out


def test_parse_classes():
    assert scl.parse_classes("3,8,9,10") == (3, 8, 9, 10)
    assert scl.parse_classes(" 10; 8-9  3 ") == (3, 8, 9, 10)
    assert scl.parse_classes("") == ()
    assert scl.parse_classes([9, 8]) == (8, 9)
    for bad, why in [("3,cloud", "'cloud'"), ("12", "12 is not an SCL class"),
                     ("9-8", "reversed"), ("3.5", "'3.5'")]:
        with pytest.raises(S1S2Error, match=why):
            scl.parse_classes(bad)


def test_buffer_pixels_from_metres():
    utm10 = Grid("", (500000.0, 10.0, 0.0, 5e6, 0.0, -10.0), 100, 100)
    assert [scl.buffer_pixels(m, utm10) for m in (0, 4, 10, 20, 25, 60)] == [0, 0, 1, 2, 3, 6]
    with pytest.raises(S1S2Error, match="CLOUD_BUFFER"):
        scl.buffer_pixels(-5, utm10)
    from osgeo import osr
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    # 0.0001 deg at 60 N: x ~ 5.57 m, y ~ 11.13 m -> mean ~ 8.35 m per pixel.
    geo = Grid(srs.ExportToWkt(), (10.0, 0.0001, 0.0, 60.0005, 0.0, -0.0001), 10, 10)
    assert scl.buffer_pixels(83.5, geo) == 10


def test_cloud_mask_ring_and_nan():
    block = np.full((15, 15), 4.0)
    block[7, 7] = 9.0
    block[0, 0] = np.nan
    block[14, 14] = 7.0  # unclassified: not in the default classes
    assert scl.cloud_mask(block, (3, 8, 9, 10), 0).sum() == 1
    ring = scl.cloud_mask(block, (3, 8, 9, 10), 2)
    assert ring.sum() == 13  # |dy|^2 + |dx|^2 <= 4: the 13-pixel digital disk
    np.testing.assert_array_equal(ring, brute_force_buffer(block == 9, 2))
    assert not ring[0, 0]  # NaN (NoData) is not cloud
    assert scl.cloud_mask(block, (7,), 1).sum() == 3  # corner: itself, up, left


def scl_20m_over(grid_10m_gt, shape_10m, rng):
    """A 20 m SCL covering a 10 m grid exactly, with clouds, shadow and water."""
    rows, cols = shape_10m[0] // 2, shape_10m[1] // 2
    classes = rng.choice([4, 5, 6, 4, 4, 5], size=(rows, cols)).astype(np.uint8)
    classes[5:8, 10:14] = 9
    classes[20, 30] = 3
    classes[40:42, 2:5] = 10
    classes[45, 50] = 7
    gt = (grid_10m_gt[0], 20.0, 0.0, grid_10m_gt[3], 0.0, -20.0)
    return classes, gt


def test_ndvi_with_20m_scl_masks_classes_and_metre_buffer(tmp_path):
    s2 = bigearthnet_pairs()[1][0]
    red_path, nir_path = patch_band(s2, "B04"), patch_band(s2, "B08")
    from osgeo import gdal
    ds = gdal.Open(red_path)
    gt, epsg_wkt = ds.GetGeoTransform(), ds.GetProjection()
    shape = (ds.RasterYSize, ds.RasterXSize)
    ds = None
    rng = np.random.default_rng(5)
    classes_20m, gt20 = scl_20m_over(gt, shape, rng)
    scl_path = str(tmp_path / "SCL_20m.tif")
    out = gdal.GetDriverByName("GTiff").Create(scl_path, classes_20m.shape[1],
                                               classes_20m.shape[0], 1, gdal.GDT_Byte)
    out.SetGeoTransform(gt20)
    out.SetProjection(epsg_wkt)
    out.GetRasterBand(1).WriteArray(classes_20m)
    out = None
    up = np.kron(classes_20m, np.ones((2, 2), np.uint8))  # nearest 20 m -> 10 m, exact
    red, nir = read(red_path), read(nir_path)
    plain = (nir - red) / (nir + red)

    got = read(indices.ndvi_file(BandSource(red_path), BandSource(nir_path),
                                 str(tmp_path / "a.tif"), scl=BandSource(scl_path)))
    cloud = np.isin(up, (3, 8, 9, 10))
    assert np.isnan(got[cloud]).all() and cloud.sum() == 4 * (12 + 1 + 6)
    np.testing.assert_allclose(got[~cloud], plain[~cloud], atol=1e-6)

    # 20 m buffer on the 10 m grid = 2 px ring; compare block-wise runs to brute force.
    for block_pixels in (24 * 24, 10 ** 6):
        got = read(indices.ndvi_file(BandSource(red_path), BandSource(nir_path),
                                     str(tmp_path / f"b{block_pixels}.tif"),
                                     scl=BandSource(scl_path), cloud_classes=(8, 9),
                                     cloud_buffer_m=20.0, block_pixels=block_pixels))
        masked = brute_force_buffer(np.isin(up, (8, 9)), 2)
        np.testing.assert_array_equal(np.isnan(got), masked)
        np.testing.assert_allclose(got[~masked], plain[~masked], atol=1e-6)


def test_scl_not_covering_the_bands_is_an_error(tmp_path):
    band = write(str(tmp_path / "b.tif"), np.full((40, 40), 1000, np.uint16))
    nir = write(str(tmp_path / "n.tif"), np.full((40, 40), 3000, np.uint16))
    far = write(str(tmp_path / "scl.tif"), np.full((20, 20), 4, np.uint8),
                geotransform=(600000.0, 20.0, 0.0, 5000000.0, 0.0, -20.0))
    with pytest.raises(S1S2Error, match="does not cover"):
        indices.ndvi_file(BandSource(band), BandSource(nir), str(tmp_path / "o.tif"),
                          scl=BandSource(far))


REAL_SCL = os.path.join(DATA_DIR, "openeo", "scl_crop_64.tif")


def test_real_scl_crop_default_classes_with_30m_buffer(tmp_path):
    """A real L2A SCL (openEO sample tile, 10 m, clouds, shadow, cirrus, snow) on its own grid."""
    from osgeo import gdal
    ds = gdal.Open(REAL_SCL)
    classes = ds.GetRasterBand(1).ReadAsArray()
    gt, wkt = ds.GetGeoTransform(), ds.GetProjection()
    ds = None
    assert {3, 4, 8, 9, 10}.issubset(set(np.unique(classes)))
    rows, cols = classes.shape
    red = (500 + 5 * np.arange(cols))[np.newaxis].repeat(rows, 0).astype(np.uint16)
    nir = np.full(classes.shape, 3000, np.uint16)
    paths = []
    for name, data in (("red", red), ("nir", nir)):
        out = gdal.GetDriverByName("GTiff").Create(str(tmp_path / f"{name}.tif"), cols, rows, 1,
                                                   gdal.GDT_UInt16)
        out.SetGeoTransform(gt)
        out.SetProjection(wkt)
        out.GetRasterBand(1).WriteArray(data)
        out = None
        paths.append(str(tmp_path / f"{name}.tif"))
    got = read(indices.ndvi_file(BandSource(paths[0]), BandSource(paths[1]),
                                 str(tmp_path / "ndvi.tif"), scl=BandSource(REAL_SCL),
                                 cloud_buffer_m=30.0, block_pixels=20 * 20))
    masked = brute_force_buffer(np.isin(classes, scl.DEFAULT_CLOUD_CLASSES), 3)
    assert 0.3 < masked.mean() < 0.95
    np.testing.assert_array_equal(np.isnan(got), masked)
    expected = (3000.0 - red) / (3000.0 + red)
    np.testing.assert_allclose(got[~masked], expected[~masked], rtol=1e-6)
