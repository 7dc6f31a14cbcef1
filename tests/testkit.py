"""Small helpers shared by the tests: data paths, raster I/O, qgis_process runner."""
import json
import os
import shutil
import subprocess

import numpy as np
from osgeo import gdal, osr

gdal.UseExceptions()

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
DATA_DIR = os.path.join(TESTS_DIR, "data")
PLUGINS_DIR = os.path.join(os.path.dirname(TESTS_DIR), ".build", "plugins")
BIGEARTHNET = os.path.join(DATA_DIR, "bigearthnet")
SEN1FLOODS11 = os.path.join(DATA_DIR, "sen1floods11")
S1_CHIP = os.path.join(SEN1FLOODS11, "Spain_7370579_S1Hand.tif")
S2_CHIP = os.path.join(SEN1FLOODS11, "Spain_7370579_S2Hand.tif")


def read(path, band=1):
    """Band as float64 with declared NoData as NaN."""
    ds = gdal.Open(path)
    b = ds.GetRasterBand(band)
    arr = b.ReadAsArray().astype(np.float64)
    nd = b.GetNoDataValue()
    if nd is not None and not np.isnan(nd):
        arr[arr == nd] = np.nan
    return arr


def write(path, array, geotransform=(500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0), epsg=32633,
          nodata=None, dtype=None, options=("TILED=YES",)):
    """Write a 2-D or (bands, rows, cols) array as GeoTIFF; returns the path."""
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[np.newaxis]
    gdal_type = gdal.GDT_Float32
    if dtype is not None or array.dtype != np.float64:
        gdal_type = {np.dtype("uint8"): gdal.GDT_Byte, np.dtype("uint16"): gdal.GDT_UInt16,
                     np.dtype("int16"): gdal.GDT_Int16, np.dtype("float32"): gdal.GDT_Float32,
                     np.dtype("float64"): gdal.GDT_Float64}[np.dtype(dtype or array.dtype)]
    ds = gdal.GetDriverByName("GTiff").Create(path, array.shape[2], array.shape[1],
                                              array.shape[0], gdal_type, list(options))
    ds.SetGeoTransform(geotransform)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds.SetProjection(srs.ExportToWkt())
    for i, plane in enumerate(array, start=1):
        band = ds.GetRasterBand(i)
        if nodata is not None:
            band.SetNoDataValue(nodata)
        band.WriteArray(plane)
    ds = None
    return path


def bigearthnet_pairs():
    """[(s2_dir, s1_dir)] of the six bundled co-located patches, matched by row/col suffix."""
    names = sorted(os.listdir(BIGEARTHNET))
    s2 = [n for n in names if n.startswith("S2")]
    s1 = [n for n in names if n.startswith("S1")]
    pairs = []
    for s2_name in s2:
        suffix = "_".join(s2_name.split("_")[-2:])
        match = [n for n in s1 if n.endswith("_" + suffix)]
        pairs.append((os.path.join(BIGEARTHNET, s2_name), os.path.join(BIGEARTHNET, match[0])))
    return pairs


def patch_band(patch_dir, band):
    """Path of ``<patch>_<band>.tif`` inside a BigEarthNet patch folder."""
    return os.path.join(patch_dir, f"{os.path.basename(patch_dir)}_{band}.tif")


def qgis_process_binary():
    return shutil.which("qgis_process.bin") or shutil.which("qgis_process")


class QgisProcess:
    """Runs algorithms through the real qgis_process executable with the plugin enabled.

    Uses a private QGIS profile folder (QGIS_CUSTOM_CONFIG_PATH) so the user's
    profile is untouched; Debian's qgis_process wrapper is bypassed
    (qgis_process.bin) because it passes a flag this QGIS rejects.
    """

    def __init__(self, config_dir, plugins_dir):
        self.env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QGIS_PLUGINPATH=plugins_dir,
                        QGIS_CUSTOM_CONFIG_PATH=config_dir)
        self.env.pop("QGIS_OPTS", None)
        self.binary = qgis_process_binary()
        # Exit status 1 when already enabled; the tests' runs fail loudly if it is not.
        subprocess.run([self.binary, "plugins", "enable", "s1s2_toolkit"], env=self.env,
                       capture_output=True, timeout=120)

    def command(self, *args, timeout=600):
        return subprocess.run([self.binary, *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def run(self, algorithm, check=True, **parameters):
        """``qgis_process --json run``; returns the parsed JSON (results under 'results').

        A list value is passed as a repeated parameter (multiple layers).
        """
        args = []
        for key, value in parameters.items():
            for item in (value if isinstance(value, (list, tuple)) else [value]):
                args.append(f"--{key}={item}")
        proc = self.command("--json", "run", algorithm, *args)
        if check and proc.returncode != 0:
            raise AssertionError(f"qgis_process {algorithm} failed ({proc.returncode}):\n"
                                 f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        if proc.returncode != 0:
            return {"returncode": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}
        text = proc.stdout[proc.stdout.index("{"):]
        result = json.loads(text)
        result["returncode"] = 0
        return result
