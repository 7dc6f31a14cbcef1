"""s1s2:seaice through qgis_process and processing.run, including a NetCDF S1 product
calibrated on the fly and placed on the S2 grid through its lon/lat GCPs."""
import os

import numpy as np
import pytest
from scipy import ndimage

from testkit import BIGEARTHNET, patch_band, read, write

S2_DIR = os.path.join(BIGEARTHNET, "S2B_MSIL2A_20180204T94161_57_38")
S1_DIR = os.path.join(BIGEARTHNET, "S1A_IW_GRDH_1SDV_20180204T043253_35VPK_57_38")
NUMBER_OUTPUTS = ["S1_ICE_CONCENTRATION", "S2_ICE_CONCENTRATION", "AGREEMENT", "S1_FEATURES",
                  "S2_FEATURES", "TIME_DIFFERENCE_HOURS"]


def test_seaice_parameters(s1s2_provider):
    alg = s1s2_provider.algorithm("seaice")
    names = [p.name() for p in alg.parameterDefinitions()]
    for name in ["S1", "S2_GREEN", "S2_GREEN_BAND", "S1_THRESHOLD_DB", "S1_MEDIAN_SIZE",
                 "S2_THRESHOLD", "FILL_HOLES", "OUTPUT_S1_ICE", "OUTPUT_S2_ICE"]:
        assert name in names
    outputs = [o.name() for o in alg.outputDefinitions()]
    for name in NUMBER_OUTPUTS:
        assert name in outputs
    assert alg.parameterDefinition("S1_THRESHOLD_DB").defaultValue() == -30.0
    assert alg.parameterDefinition("S2_THRESHOLD").defaultValue() == 2500.0


def test_seaice_qgis_process_bigearthnet(qgis_process, tmp_path):
    b03 = patch_band(S2_DIR, "B03")
    vh = patch_band(S1_DIR, "VH")
    out1, out2 = str(tmp_path / "s1_ice.tif"), str(tmp_path / "s2_ice.tif")
    result = qgis_process.run("s1s2:seaice", S1=vh, S1_BAND=1, S2_GREEN=b03, S2_GREEN_BAND=1,
                              S1_THRESHOLD_DB=-20, OUTPUT_S1_ICE=out1, OUTPUT_S2_ICE=out2)
    res = result["results"]
    ice = ~ndimage.binary_fill_holes(read(b03) < 2500)
    assert res["S2_ICE_CONCENTRATION"] == pytest.approx(ice.mean())
    assert res["S2_FEATURES"] == ndimage.label(ice, np.ones((3, 3)))[1]
    m1, m2 = read(out1), read(out2)
    assert res["S1_ICE_CONCENTRATION"] == pytest.approx((m1 == 1).mean())
    assert res["AGREEMENT"] == pytest.approx((m1 == m2).mean())
    assert res["TIME_DIFFERENCE_HOURS"] == pytest.approx(5.150833, abs=1e-5)
    assert os.path.exists(os.path.join(tmp_path, "s2_ice.qml"))
    from osgeo import gdal
    ds = gdal.Open(out2)
    band = ds.GetRasterBand(1)
    assert band.DataType == gdal.GDT_Byte and band.GetNoDataValue() == 255


def _netcdf_hv(path, shape, hv_db, lon, lat):
    """A MET Norway-like product whose calibrated HV sigma0 equals 10^(hv_db/10)."""
    import netCDF4

    lut = np.full(shape, 400.0)
    noise = np.full(shape, 100.0)
    amplitude = np.sqrt(10 ** (hv_db / 10) * lut ** 2 + noise)  # (A^2 - noise) / LUT^2
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("y", shape[0])
        nc.createDimension("x", shape[1])
        for name, data in (("Amplitude_HV", amplitude), ("sigmaNought_HV", lut),
                           ("noiseCorrectionMatrix_HV", noise), ("lon", lon), ("lat", lat)):
            nc.createVariable(name, "f8", ("y", "x"))[:] = data
        nc.time_coverage_start = "2021-04-03T12:25:36Z"
        nc.time_coverage_end = "2021-04-03T12:26:30Z"
    return path


def test_seaice_netcdf_s1_calibrated_on_the_fly(s1s2_provider, tmp_path):
    """Ice left of lon 10.05, water right; the S2 grid (EPSG:4326) covers the swath."""
    import processing

    shape = (60, 80)
    y, x = np.mgrid[0:shape[0], 0:shape[1]]
    lon, lat = 10.0 + (x + 0.5) * 0.001, 70.08 - (y + 0.5) * 0.001
    hv_db = np.where(lon < 10.05, -15.0, -36.0)
    nc = _netcdf_hv(str(tmp_path / "S1A_EW_GRDM_1SDH_hv.nc"), shape, hv_db, lon, lat)
    s2_grid = (10.01, 0.0005, 0.0, 70.07, 0.0, -0.0005)  # 100 x 100 px inside the swath
    green = write(str(tmp_path / "S2A_MSIL2A_20210403T132536_B03.tif"),
                  np.full((100, 100), 4000, np.uint16), geotransform=s2_grid, epsg=4326,
                  dtype="uint16")
    out1, out2 = str(tmp_path / "a.tif"), str(tmp_path / "b.tif")
    res = processing.run("s1s2:seaice", {"S1_PRODUCT": nc, "S2_GREEN": green, "S2_GREEN_BAND": 1,
                                         "OUTPUT_S1_ICE": out1, "OUTPUT_S2_ICE": out2})
    m1 = read(out1)
    cols_lon = 10.01 + (np.arange(100) + 0.5) * 0.0005
    want_ice = np.broadcast_to(cols_lon < 10.05, (100, 100))
    away = np.abs(cols_lon - 10.05) > 0.003  # beyond the median / interpolation reach
    np.testing.assert_array_equal((m1 == 1)[:, away], want_ice[:, away])
    assert res["S1_ICE_CONCENTRATION"] == pytest.approx(0.8, abs=0.02)  # lon < 10.05
    assert res["S2_ICE_CONCENTRATION"] == 1.0
    assert res["TIME_DIFFERENCE_HOURS"] == pytest.approx(1.0)
