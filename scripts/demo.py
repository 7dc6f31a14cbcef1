#!/usr/bin/env python3
"""`make demo`: run the toolkit through the real `qgis_process` on the bundled data.

Writes GeoTIFFs (with their .qml styles) and PNG quicklooks to demo-output/.
Each algorithm adds one step (a function decorated with @step), run in order.
Bundled data: tests/data (Contains modified Copernicus Sentinel data).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
from osgeo import gdal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")
PLUGINS_DIR = os.path.join(ROOT, ".build", "plugins")
sys.path.insert(0, PLUGINS_DIR)

gdal.UseExceptions()
STEPS = []


def step(func):
    """Register a demo step: ``func(demo)`` runs algorithms and writes quicklooks."""
    STEPS.append(func)
    return func


def link_plugin():
    os.makedirs(PLUGINS_DIR, exist_ok=True)
    link = os.path.join(PLUGINS_DIR, "s1s2_toolkit")
    if not os.path.islink(link):
        os.symlink(os.path.relpath(ROOT, PLUGINS_DIR), link)


class Demo:
    """Runs algorithms through qgis_process and renders quicklooks into ``output``."""

    def __init__(self, output):
        self.output = os.path.abspath(output)
        os.makedirs(self.output, exist_ok=True)
        config = os.path.join(ROOT, ".build", "qgis-config")
        self.env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QGIS_PLUGINPATH=PLUGINS_DIR,
                        QGIS_CUSTOM_CONFIG_PATH=config)
        self.env.pop("QGIS_OPTS", None)  # Debian's wrapper flag that this QGIS rejects
        self.binary = shutil.which("qgis_process.bin") or shutil.which("qgis_process")
        if self.binary is None:
            sys.exit("qgis_process not found: run `make demo` (it installs QGIS) or install "
                     "the Debian packages qgis python3-qgis qgis-providers.")
        # Exit status 1 when already enabled: the `list` check below is what counts.
        subprocess.run([self.binary, "plugins", "enable", "s1s2_toolkit"], env=self.env,
                       capture_output=True)
        listing = subprocess.run([self.binary, "list"], env=self.env, capture_output=True,
                                 text=True).stdout
        if "s1s2:" not in listing:
            sys.exit("qgis_process does not list the S1S2 Toolkit provider; see the README.")
        self.report = []

    def path(self, name):
        return os.path.join(self.output, name)

    def run(self, algorithm, **parameters):
        """qgis_process --json run; returns the results dict. Lists repeat the parameter."""
        args = []
        for key, value in parameters.items():
            for item in (value if isinstance(value, (list, tuple)) else [value]):
                args.append(f"--{key}={item}")
        start = time.perf_counter()
        proc = subprocess.run([self.binary, "--json", "run", algorithm, *args], env=self.env,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"{algorithm} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        results = json.loads(proc.stdout[proc.stdout.index("{"):])["results"]
        print(f"  {algorithm:<24} {time.perf_counter() - start:5.1f} s")
        return results

    def quicklook(self, raster, png_name, style, band=1):
        """Render one band of ``raster`` through a core Ramp/Palette into a PNG."""
        from s1s2_toolkit.core.styles import colourize, write_png

        ds = gdal.Open(raster)
        b = ds.GetRasterBand(band)
        values = b.ReadAsArray().astype(np.float64)
        nodata = b.GetNoDataValue()
        if nodata is not None and not np.isnan(nodata):
            values[values == nodata] = np.nan
        alpha = np.where(np.isfinite(values), 255, 0)
        return write_png(self.path(png_name), colourize(values, style), alpha)

    def true_colour(self, red, green, blue, png_name, scale=3000.0, bands=(1, 1, 1)):
        """A true-colour PNG from three reflectance x 10000 bands (0..scale stretched)."""
        from s1s2_toolkit.core.styles import write_png

        datasets = [gdal.Open(p) for p in (red, green, blue)]  # alive while their bands are read
        planes = [ds.GetRasterBand(b).ReadAsArray().astype(np.float64)
                  for ds, b in zip(datasets, bands)]
        rgb = np.clip(np.stack(planes) / scale * 255.0, 0, 255).astype(np.uint8)
        return write_png(self.path(png_name), rgb)

    def note(self, line):
        print("  " + line)
        self.report.append(line)


# --- steps -----------------------------------------------------------------------------
S1_CHIP = os.path.join(DATA, "sen1floods11", "Spain_7370579_S1Hand.tif")


@step
def backscatter_in_db(demo):
    """Sen1Floods11 VV (dB) -> linear -> dB round trip, with quicklooks."""
    from s1s2_toolkit.core.styles import DB_RAMP

    linear = demo.run("s1s2:dbconvert", INPUT=S1_CHIP, BAND=1, DIRECTION=1,
                      OUTPUT=demo.path("s1_vv_linear.tif"))["OUTPUT"]
    db = demo.run("s1s2:dbconvert", INPUT=linear, BAND=1, DIRECTION=0,
                  OUTPUT=demo.path("s1_vv_db.tif"))["OUTPUT"]
    demo.quicklook(db, "s1_vv_db.png", DB_RAMP)


FUSION_S2 = os.path.join(DATA, "bigearthnet", "S2B_MSIL2A_20170924T93020_69_24")
FUSION_S1 = os.path.join(DATA, "bigearthnet", "S1A_IW_GRDH_1SDV_20170925T043256_35VPK_69_24")


def _fusion_band(folder, band):
    return os.path.join(folder, f"{os.path.basename(folder)}_{band}.tif")


def _synthetic_scl_20m(path, like):
    """A SYNTHETIC 20 m SCL for a BigEarthNet patch (BigEarthNet has no SCL): vegetation (4)
    with blocks of cloud (9, 8, 10) and a cloud shadow (3)."""
    ref = gdal.Open(like)
    x0, px, _, y0, _, py = ref.GetGeoTransform()
    scl = np.full((ref.RasterYSize // 2, ref.RasterXSize // 2), 4, np.uint8)
    for (r0, r1, c0, c1), value in (((10, 30, 15, 35), 9), ((37, 55, 3, 22), 8),
                                    ((35, 52, 40, 57), 10), ((30, 35, 15, 35), 3)):
        scl[r0:r1, c0:c1] = value
    ds = gdal.GetDriverByName("GTiff").Create(path, scl.shape[1], scl.shape[0], 1, gdal.GDT_Byte)
    ds.SetGeoTransform((x0, 2 * px, 0.0, y0, 0.0, 2 * py))
    ds.SetProjection(ref.GetProjection())
    ds.GetRasterBand(1).WriteArray(scl)
    ds.GetRasterBand(1).SetDescription("SCL (synthetic)")
    ds = None
    return path


@step
def ndvi_fusion(demo):
    """Main job: cloud-masked S2 NDVI filled from S1 by the fusion model (.model3), real pair."""
    from s1s2_toolkit.core.styles import FUSION_SOURCE_PALETTE, NDVI_RAMP, UNCERTAINTY_RAMP

    red, nir = _fusion_band(FUSION_S2, "B04"), _fusion_band(FUSION_S2, "B08")
    vv, vh = _fusion_band(FUSION_S1, "VV"), _fusion_band(FUSION_S1, "VH")
    scl = _synthetic_scl_20m(demo.path("fusion_synthetic_scl_20m.tif"), red)
    demo.note("fusion: BigEarthNet pair 35VPK 69_24 (S2 L2A 2017-09-24, S1 VV/VH dB "
              "2017-09-25); BigEarthNet has no SCL, so the SCL is SYNTHETIC (20 m, blocks of "
              "classes 9/8/10 as cloud, one of class 3 shadow; fusion_synthetic_scl_20m.tif)")
    fused = demo.path("fusion_ndvi_fused.tif")
    source = demo.path("fusion_ndvi_source.tif")
    # The shipped model by its provider id, units and cloud classes left to their defaults
    # (Auto detects the dB; 3,8,9,10 as everywhere).
    demo.run("s1s2:fusionchain", RED=red, NIR=nir, SCL=scl, VV=vv, VH=vh,
             **{"fusendvi:FUSED_NDVI": fused, "fusendvi:NDVI_SOURCE": source})
    gap = demo.run("s1s2:ndvi", RED=red, RED_BAND=1, NIR=nir, NIR_BAND=1, SCL=scl, SCL_BAND=1,
                   OUTPUT=demo.path("fusion_s2_ndvi_cloud_gap.tif"))
    recipe = demo.run("s1s2:fusendvi", RED=red, RED_BAND=1, NIR=nir, NIR_BAND=1, SCL=scl,
                      SCL_BAND=1, VV=vv, VV_BAND=1, VH=vh, VH_BAND=1, S1_UNITS=1,
                      SPECKLE_FILTER=0, MODEL=1, OUTPUT=demo.path("fusion_ndvi_recipe.tif"),
                      OUTPUT_SOURCE=demo.path("fusion_ndvi_recipe_source.tif"))
    demo.true_colour(red, _fusion_band(FUSION_S2, "B03"), _fusion_band(FUSION_S2, "B02"),
                     "fusion_true_colour.png", scale=1500.0)  # dark boreal forest
    demo.quicklook(gap["OUTPUT"], "fusion_s2_ndvi_cloud_gap.png", NDVI_RAMP)
    demo.quicklook(fused, "fusion_ndvi_fused.png", NDVI_RAMP)
    demo.quicklook(source, "fusion_ndvi_source.png", FUSION_SOURCE_PALETTE)

    # The fit as s1s2:fusendvi reported it (also in the fused raster's metadata) ...
    meta = gdal.Open(fused).GetMetadata()
    demo.note(f"fusion (model s1s2:fusionchain: collocate -> Refined Lee -> fusendvi, its "
              f"default model): "
              f"cloud fraction {float(meta['cloud_fraction']):.3f}, {meta['fit_n']} clear pixels; "
              f"coefficients {meta['coefficients']}")
    demo.note(f"fusion hold-out (checkerboard of clear-pixel cells): RMSE "
              f"{float(meta['fit_rmse']):.3f}, R2 {float(meta['fit_r2']):.2f}, clear-pixel mean "
              f"baseline RMSE {float(meta['baseline_rmse']):.3f}; recipe formula on the same "
              f"hold-out: RMSE {recipe['FIT_RMSE']:.3f}")
    # ... and the truth: the S2 NDVI under the synthetic clouds is known.
    b4 = gdal.Open(red).ReadAsArray().astype(np.float64)
    b8 = gdal.Open(nir).ReadAsArray().astype(np.float64)
    truth = (b8 - b4) / (b8 + b4)
    flags = gdal.Open(source).ReadAsArray()
    filled, clear = flags == 2, flags == 1

    def rmse(path):
        values = gdal.Open(path).ReadAsArray().astype(np.float64)
        return float(np.sqrt(np.mean((values[filled] - truth[filled]) ** 2)))

    mean_rmse = float(np.sqrt(np.mean((truth[filled] - truth[clear].mean()) ** 2)))
    # fusendvi itself (its default: regression kriging, no speckle filter) with the
    # uncertainty, on the same scene.
    kriging = demo.run("s1s2:fusendvi", RED=red, RED_BAND=1, NIR=nir, NIR_BAND=1, SCL=scl,
                       SCL_BAND=1, VV=vv, VV_BAND=1, VH=vh, VH_BAND=1, S1_UNITS=1,
                       OUTPUT=demo.path("fusion_ndvi_kriging.tif"),
                       OUTPUT_SOURCE=demo.path("fusion_ndvi_kriging_source.tif"),
                       OUTPUT_UNCERTAINTY=demo.path("fusion_ndvi_uncertainty.tif"))
    demo.quicklook(kriging["OUTPUT"], "fusion_ndvi_kriging.png", NDVI_RAMP)
    demo.quicklook(kriging["OUTPUT_UNCERTAINTY"], "fusion_ndvi_uncertainty.png",
                   UNCERTAINTY_RAMP)
    sigma = gdal.Open(kriging["OUTPUT_UNCERTAINTY"]).ReadAsArray().astype(np.float64)
    fill = gdal.Open(kriging["OUTPUT"]).ReadAsArray().astype(np.float64)
    covered = np.mean(np.abs(fill[filled] - truth[filled]) <= 1.96 * sigma[filled])
    demo.note(f"fusion fill RMSE against the true S2 NDVI under the synthetic clouds "
              f"({int(filled.sum())} px): regression kriging (v2 default) "
              f"{rmse(kriging['OUTPUT']):.3f} (hold-out FIT_RMSE {kriging['FIT_RMSE']:.3f}, "
              f"95 % interval of OUTPUT_UNCERTAINTY covers {100 * covered:.0f} %), model "
              f"s1s2:fusionchain (the same after Refined Lee) {rmse(fused):.3f}, clear-pixel "
              f"mean {mean_rmse:.3f}, recipe formula {rmse(recipe['OUTPUT']):.3f}")


STEPS.insert(0, STEPS.pop())  # the fusion is the demo's main job: run it first


@step
def calibration_and_sea_ice(demo):
    """S1 GRD calibration (real annotation, synthetic DN) and the sea-ice masks (57_38 snow)."""
    import tempfile

    from s1s2_toolkit.core.styles import DB_RAMP, ICE_PALETTE

    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from test_calibration_product import build_product

    # The bundled SAFE has real calibration/noise XML but no measurement TIFF: add a
    # patterned DN image (annotation scaled 1:10 to keep the demo quick).
    work = tempfile.mkdtemp(prefix="s1s2_demo_safe_")
    safe = build_product(work, scale=10, polarisations=("VH",))
    sigma0 = demo.run("s1s2:calibrate", INPUT=safe, POLARISATION=1, COEFFICIENT=0,
                      NOISE_REMOVAL=True, OUTPUT_DB=True, NEGATIVE=0,
                      OUTPUT=demo.path("s1_vh_sigma0_db.tif"))["OUTPUT"]
    demo.quicklook(sigma0, "s1_vh_sigma0_db.png", DB_RAMP)
    shutil.rmtree(work, ignore_errors=True)
    demo.note("calibrate: VH sigma0 (dB) of a synthetic-DN product in radar geometry, "
              "GCPs kept (s1_vh_sigma0_db.tif)")

    s2 = os.path.join(DATA, "bigearthnet", "S2B_MSIL2A_20180204T94161_57_38")
    s1 = os.path.join(DATA, "bigearthnet", "S1A_IW_GRDH_1SDV_20180204T043253_35VPK_57_38")
    res = demo.run("s1s2:seaice", S1=os.path.join(s1, os.path.basename(s1) + "_VH.tif"),
                   S2_GREEN=os.path.join(s2, os.path.basename(s2) + "_B03.tif"),
                   S2_GREEN_BAND=1, S1_THRESHOLD_DB=-20,
                   OUTPUT_S1_ICE=demo.path("seaice_s1.tif"),
                   OUTPUT_S2_ICE=demo.path("seaice_s2.tif"))
    demo.quicklook(res["OUTPUT_S1_ICE"], "seaice_s1.png", ICE_PALETTE)
    demo.quicklook(res["OUTPUT_S2_ICE"], "seaice_s2.png", ICE_PALETTE)
    demo.note("seaice (BigEarthNet 57_38 snow patch as stand-in, VH at -20 dB): "
              f"S1 ice {res['S1_ICE_CONCENTRATION']:.3f}, S2 ice {res['S2_ICE_CONCENTRATION']:.3f}, "
              f"agreement {res['AGREEMENT']:.3f}, features S1 {res['S1_FEATURES']} / "
              f"S2 {res['S2_FEATURES']}, time difference {res['TIME_DIFFERENCE_HOURS']:.2f} h")


def _mean_of(path):
    ds = gdal.Open(path)
    values = ds.GetRasterBand(1).ReadAsArray().astype(np.float64)
    return float(np.nanmean(values)), float(np.isfinite(values).mean())


@step
def ndvi_rvi4s1(demo):
    """NDVI (BigEarthNet L2A patch; Sen1Floods11 13-band L1C stack), RVI4S1 and VV/VH (dB)."""
    from s1s2_toolkit.core.styles import NDVI_RAMP, RATIO_DB_RAMP, RVI4S1_RAMP

    patch = os.path.join(DATA, "bigearthnet", "S2A_MSIL2A_20170613T101031_87_48")
    name = os.path.basename(patch)
    red, green, blue, nir = (os.path.join(patch, f"{name}_{b}.tif")
                             for b in ("B04", "B03", "B02", "B08"))
    demo.true_colour(red, green, blue, "ndvi_bigearthnet_87_48_rgb.png")
    ndvi = demo.run("s1s2:ndvi", RED=red, RED_BAND=1, NIR=nir, NIR_BAND=1,
                    OUTPUT=demo.path("ndvi_bigearthnet_87_48.tif"))["OUTPUT"]
    demo.quicklook(ndvi, "ndvi_bigearthnet_87_48.png", NDVI_RAMP)
    mean, valid = _mean_of(ndvi)
    demo.note(f"ndvi: BigEarthNet L2A patch 87_48 (2017, BOA_ADD_OFFSET 0): mean NDVI {mean:.3f}, "
              f"{100 * valid:.0f} % valid (ndvi_bigearthnet_87_48.tif)")

    s2_chip = os.path.join(DATA, "sen1floods11", "Spain_7370579_S2Hand.tif")
    demo.true_colour(s2_chip, s2_chip, s2_chip, "ndvi_sen1floods11_rgb.png", bands=(4, 3, 2))
    ndvi = demo.run("s1s2:ndvi", RED=s2_chip, RED_BAND=4, NIR=s2_chip, NIR_BAND=8,
                    OUTPUT=demo.path("ndvi_sen1floods11.tif"))["OUTPUT"]
    demo.quicklook(ndvi, "ndvi_sen1floods11.png", NDVI_RAMP)
    mean, valid = _mean_of(ndvi)
    demo.note(f"ndvi: Sen1Floods11 Spain chip, L1C stack bands 4/8: mean NDVI {mean:.3f}, "
              f"{100 * valid:.0f} % valid (ndvi_sen1floods11.tif)")

    rvi = demo.run("s1s2:rvi4s1", VV=S1_CHIP, VV_BAND=1, VH=S1_CHIP, VH_BAND=2, INPUT_UNITS=1,
                   OUTPUT=demo.path("rvi4s1_sen1floods11.tif"))["OUTPUT"]
    demo.quicklook(rvi, "rvi4s1_sen1floods11.png", RVI4S1_RAMP)
    mean, valid = _mean_of(rvi)
    demo.note(f"rvi4s1: Sen1Floods11 VV/VH (dB input): mean RVI4S1 {mean:.3f}, "
              f"{100 * valid:.0f} % valid (rvi4s1_sen1floods11.tif)")
    ratio = demo.run("s1s2:vvvhratio", VV=S1_CHIP, VV_BAND=1, VH=S1_CHIP, VH_BAND=2,
                     INPUT_UNITS=1, MODE=0,
                     OUTPUT=demo.path("vvvh_db_sen1floods11.tif"))["OUTPUT"]
    demo.quicklook(ratio, "vvvh_db_sen1floods11.png", RATIO_DB_RAMP)
    mean, _ = _mean_of(ratio)
    demo.note(f"vvvhratio: Sen1Floods11 VV_dB - VH_dB: mean {mean:.2f} dB "
              "(vvvh_db_sen1floods11.tif)")


@step
def collocation(demo):
    """Sen1Floods11 S1 (EPSG:4326) onto a UTM 30N 10 m grid (S2-like), in linear power."""
    from osgeo import osr

    from s1s2_toolkit.core.raster import Grid
    from s1s2_toolkit.core.styles import DB_RAMP

    # A target grid like an S2 tile's: UTM 30N, 10 m, inside the chip's footprint.
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32630)
    target = demo.path("utm30n_10m_grid.tif")
    ds = gdal.GetDriverByName("GTiff").Create(target, 400, 450, 1, gdal.GDT_Byte,
                                              ["SPARSE_OK=TRUE"])
    ds.SetGeoTransform((694510.0, 10.0, 0.0, 4221900.0, 0.0, -10.0))
    ds.SetProjection(srs.ExportToWkt())
    ds = None
    out = demo.run("s1s2:collocate", INPUT=S1_CHIP, BAND=0, TARGET=target, RESAMPLING=1,
                   LINEAR_UNITS=True, OUTPUT=demo.path("s1_on_utm30n.tif"))["OUTPUT"]
    demo.quicklook(out, "s1_on_utm30n_vv_db.png", DB_RAMP)
    same = Grid.of_path(out).geotransform == Grid.of_path(target).geotransform
    demo.note(f"collocate: Sen1Floods11 VV/VH (EPSG:4326, dB) -> UTM 30N 10 m, bilinear in "
              f"linear power; output geotransform identical to the target's: {same} "
              "(s1_on_utm30n.tif)")


def _speckle_index(path):
    """Median over 7x7 windows of std/mean of linear intensity read from a dB raster."""
    ds = gdal.Open(path)
    db = ds.GetRasterBand(1).ReadAsArray().astype(np.float64)
    linear = 10 ** (db / 10)
    view = np.lib.stride_tricks.sliding_window_view(linear, (7, 7))[::7, ::7]
    return float(np.nanmedian(view.std(axis=(2, 3), ddof=1) / view.mean(axis=(2, 3))))


@step
def refined_lee(demo):
    """Refined Lee (SNAP semantics) on the Sen1Floods11 VV chip: dB -> linear -> filter -> dB."""
    from s1s2_toolkit.core.styles import DB_RAMP

    before = S1_CHIP
    demo.quicklook(before, "refinedlee_before_vv_db.png", DB_RAMP)
    after = demo.run("s1s2:refinedlee", INPUT=S1_CHIP, BAND=1, INPUT_UNITS=1,
                     OUTPUT=demo.path("refinedlee_after_vv_db.tif"))["OUTPUT"]
    demo.quicklook(after, "refinedlee_after_vv_db.png", DB_RAMP)
    from s1s2_toolkit.core.styles import colourize, write_png
    planes = []
    for path in (before, after):
        dataset = gdal.Open(path)  # keep the dataset alive while its band is read
        planes.append(dataset.GetRasterBand(1).ReadAsArray().astype(np.float64))
    gap = np.full((planes[0].shape[0], 8), np.nan)
    write_png(demo.path("refinedlee_before_after_vv_db.png"),
              colourize(np.hstack([planes[0], gap, planes[1]]), DB_RAMP, (255, 255, 255)))
    demo.note(f"refinedlee: Sen1Floods11 VV (dB in, filtered in linear, dB out): median 7x7 "
              f"speckle index std/mean {_speckle_index(before):.2f} before, "
              f"{_speckle_index(after):.2f} after (refinedlee_before_after_vv_db.png)")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", default=os.path.join(ROOT, "demo-output"))
    parser.add_argument("--only", help="run only the steps whose name contains this text")
    args = parser.parse_args()
    link_plugin()
    demo = Demo(args.output)
    print(f"S1S2 Toolkit demo -> {demo.output}")
    for func in STEPS:
        if args.only and args.only not in func.__name__:
            continue
        print(f"- {func.__name__}: {(func.__doc__ or '').strip().splitlines()[0]}")
        func(demo)
    with open(demo.path("report.txt"), "w", encoding="utf-8") as handle:
        handle.write("S1S2 Toolkit demo report\nContains modified Copernicus Sentinel data.\n\n")
        handle.write("\n".join(demo.report) + "\n")
    print(f"Done: {len(os.listdir(demo.output))} files in {demo.output}")


if __name__ == "__main__":
    main()
