#!/usr/bin/env python3
"""NDVI fusion on an N x N scene (default 10980 = a full S2 tile): ours vs gdal_calc.py.

Generates B04/B08 (uint16, NoData 0), a 10 m SCL and S1 VV/VH (float32, dB) into a
temporary folder. The SCL tiles the real L2A SCL ``scl_native.tif`` of the shared data
(``--scl``; Kodiak Island, 4980 x 10980 px, about 40 % cloud classes 3/8/9/10 in real
shapes), or falls back to synthetic cloud blocks when it is absent. Then times,
interleaved and repeated (median reported), each in a fresh process:

* ``gdal_calc.py``: the Sentinel Hub recipe in one numpy expression (S2 NDVI where SCL
  is not 7-10, else 2.572 - 0.05047*toDb(VH) + ... with toDb = 10*ln(10)*linear): the
  like-for-like peer, a single per-pixel pass;
* ``core recipe``: ``fuse_ndvi_files(model="recipe")`` (two passes);
* ``core local + Refined Lee``: v1's default (least squares, Refined Lee in both passes);
* ``core regression kriging``: the v2 default (three passes; with OUTPUT_UNCERTAINTY).

Peak memory is the peak RSS of each child process (getrusage(RUSAGE_CHILDREN) in a
fresh wrapper per run). The machine's core count and load average are printed with the
results: timings on a shared machine are noisy. Also checks that ours and gdal_calc agree
in recipe mode.

    .venv/bin/python benchmarks/bench_fusion.py [--size 10980] [--repeats 1] [--keep DIR]
"""
import argparse
import os
import shutil
import statistics
import sys
import time

from childrun import measure, work_folder  # benchmarks/childrun.py (script folder on sys.path)

import numpy as np
from osgeo import gdal, osr

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGINS = os.path.join(ROOT, ".build", "plugins")
gdal.UseExceptions()

CORE_SNIPPET = """
import sys
sys.path.insert(0, {plugins!r})
from s1s2_toolkit.core import BandSource
from s1s2_toolkit.core.fusion import fuse_ndvi_files
r = fuse_ndvi_files(*(BandSource(p) for p in {inputs!r}), {out!r}, {src!r}, s1_units="db",
                    boa_add_offset=0.0, model={model!r}, speckle_filter={speckle!r},
                    cloud_classes={classes!r}, uncertainty_path={sigma!r})
print(r.report.fit_n, r.report.fit_rmse, r.report.baseline_rmse, file=sys.stderr)
"""
# The shared data folder next to the checkout (../shared or ../../shared for worktrees).
SHARED_SCL = next((p for p in (os.path.join(ROOT, *[".."] * up, "shared", "data", "openeo",
                                            "scl_native.tif") for up in (1, 2))
                   if os.path.exists(p)), "")
CLOUD_CLASSES = (3, 8, 9, 10)
RECIPE = ("numpy.where(numpy.isin(C, [7, 8, 9, 10]), "
          "2.572 - 0.05047 * (23.02585092994046 * 10 ** (E / 10.0)) "
          "+ 0.176 * (23.02585092994046 * 10 ** (D / 10.0)) "
          "+ 3.422 * ((10 ** (E / 10.0) - 10 ** (D / 10.0)) / (10 ** (E / 10.0) + 10 ** (D / 10.0))), "
          "(B.astype(numpy.float32) - A) / (B.astype(numpy.float32) + A))")
OUTPUT_OPTIONS = ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "COMPRESS=DEFLATE",
                  "PREDICTOR=3", "ZLEVEL=1", "NUM_THREADS=2"]


def scl_rows(scl_path, y0, rows, size):
    """Rows y0 .. y0+rows of the real SCL tiled to size x size (None without it)."""
    if not scl_path or not os.path.exists(scl_path):
        return None
    dataset = gdal.Open(scl_path)          # kept: a band outlives no dataset
    band = dataset.GetRasterBand(1)
    out = np.empty((rows, size), np.uint8)
    for i, y in enumerate(range(y0, y0 + rows)):
        line = band.ReadAsArray(0, y % band.YSize, band.XSize, 1)[0]
        out[i] = np.resize(line, size)        # repeats the row along x
    out[out == 0] = 4                         # no SCL NoData in the benchmark scene
    return out


def make_scene(folder, size, scl_path=None):
    """B04, B08, SCL (10 m), VV, VH (dB) with NDVI tied to VH; written strip by strip."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    specs = [("B04", gdal.GDT_UInt16), ("B08", gdal.GDT_UInt16), ("SCL", gdal.GDT_Byte),
             ("VV", gdal.GDT_Float32), ("VH", gdal.GDT_Float32)]
    datasets, paths = [], []
    for name, dtype in specs:
        path = os.path.join(folder, f"{name}.tif")
        ds = gdal.GetDriverByName("GTiff").Create(
            path, size, size, 1, dtype, ["TILED=YES", "COMPRESS=DEFLATE", "NUM_THREADS=2"])
        ds.SetGeoTransform((300000.0, 10.0, 0.0, 5300040.0, 0.0, -10.0))
        ds.SetProjection(srs.ExportToWkt())
        if name in ("B04", "B08"):
            ds.GetRasterBand(1).SetNoDataValue(0)
        datasets.append(ds)
        paths.append(path)
    rng = np.random.default_rng(0)
    x = np.arange(size)[np.newaxis, :]
    for y0 in range(0, size, 512):
        y = np.arange(y0, min(y0 + 512, size))[:, np.newaxis]
        veg = 0.5 + 0.45 * np.sin(x / 310.0) * np.cos(y / 270.0)
        vh = -22 + 10 * veg + rng.normal(0, 1.5, veg.shape)
        vv = vh + 6 + rng.normal(0, 1.0, veg.shape)
        ndvi = np.clip(veg + rng.normal(0, 0.05, veg.shape), -0.5, 0.95)
        red = 300 + 1500 * (1 - veg) + rng.normal(0, 40, veg.shape)
        nir = red * (1 + ndvi) / (1 - ndvi)
        scl = scl_rows(scl_path, y0, len(y), size)
        if scl is None:
            scl = np.where((np.sin(x / 700.0) * np.sin(y / 500.0)) > 0.6,
                           8 + (x + y) % 3, 4).astype(np.uint8)
        for ds, band in zip(datasets, (np.clip(red, 1, 65535).astype(np.uint16),
                                       np.clip(nir, 1, 65535).astype(np.uint16), scl,
                                       vv.astype(np.float32), vh.astype(np.float32))):
            ds.GetRasterBand(1).WriteArray(band, 0, y0)
    for ds in datasets:
        ds.FlushCache()
    return paths


def cloud_fraction(scl_path):
    """Share of pixels in CLOUD_CLASSES (read strip by strip)."""
    dataset = gdal.Open(scl_path)
    band = dataset.GetRasterBand(1)
    cloudy = 0
    for y in range(0, band.YSize, 1024):
        rows = min(1024, band.YSize - y)
        cloudy += int(np.isin(band.ReadAsArray(0, y, band.XSize, rows), CLOUD_CLASSES).sum())
    return cloudy / (band.XSize * band.YSize)


def compare(ours, peer, nodata=-9999.0):
    ds_a, ds_b = gdal.Open(ours), gdal.Open(peer)
    a, b = ds_a.GetRasterBand(1), ds_b.GetRasterBand(1)
    worst = 0.0
    for y in range(0, a.YSize, max(1, a.YSize // 16)):
        ra, rb = a.ReadAsArray(0, y, a.XSize, 1), b.ReadAsArray(0, y, b.XSize, 1)
        rb = np.where(rb == nodata, np.nan, rb)
        ok = np.isfinite(ra) & np.isfinite(rb)
        if ok.any():
            worst = max(worst, float(np.abs(ra[ok] - rb[ok]).max()))
    return worst


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=10980)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--scl", default=os.path.normpath(SHARED_SCL),
                        help="a real SCL raster tiled into the scene (default: the shared "
                             "scl_native.tif; synthetic blocks when absent)")
    parser.add_argument("--keep", help="keep the files in this folder")
    parser.add_argument("--only", help="run only the runs whose name contains this text "
                                       "(gdal_calc always runs: it is the peer)")
    args = parser.parse_args()
    with work_folder(args.keep, "s1s2_fusion_") as folder:
        t = time.perf_counter()
        inputs = make_scene(folder, args.size, args.scl)
        real = os.path.exists(args.scl or "")
        cloud = cloud_fraction(inputs[2])
        print(f"input: {args.size} x {args.size} B04/B08/SCL/VV/VH written in "
              f"{time.perf_counter() - t:.1f} s; SCL "
              f"{'tiled from ' + args.scl if real else 'synthetic blocks'}, "
              f"cloud (classes {','.join(map(str, CLOUD_CLASSES))}) {100 * cloud:.1f} %")
        red, nir, scl, vv, vh = inputs
        gdal_calc = shutil.which("gdal_calc.py") or shutil.which("gdal_calc")
        calc_out = os.path.join(folder, "calc.tif")
        calc = [sys.executable, gdal_calc, "-A", red, "-B", nir, "-C", scl, "-D", vv, "-E", vh,
                "--type=Float32", "--NoDataValue=-9999", f"--calc={RECIPE}", "--overwrite",
                "--quiet", f"--outfile={calc_out}"] + [f"--co={o}" for o in OUTPUT_OPTIONS]

        def core(name, model, speckle, classes=CLOUD_CLASSES, sigma=False):
            out = os.path.join(folder, f"{name}.tif")
            src = os.path.join(folder, f"{name}_source.tif")
            sigma = os.path.join(folder, f"{name}_sigma.tif") if sigma else None
            return out, lambda: measure([sys.executable, "-c", CORE_SNIPPET.format(
                plugins=PLUGINS, inputs=inputs, out=out, src=src, model=model,
                speckle=speckle, classes=tuple(classes), sigma=sigma)])

        recipe_out, recipe_run = core("recipe", "recipe", False, (7, 8, 9, 10))
        runs = {"gdal_calc.py recipe (1 pass)": lambda: measure(calc),
                "core recipe (2 passes)": recipe_run,
                "core local + Refined Lee (v1 default)": core("local_rl", "local", True)[1],
                "core regression kriging + uncertainty (v2 default)":
                    core("kriging", "kriging", False, sigma=True)[1]}
        if args.only:
            runs = {n: r for n, r in runs.items()
                    if args.only in n or n.startswith("gdal_calc")}
        results = {name: [] for name in runs}
        load_before = os.getloadavg()
        for repeat in range(args.repeats):
            for name, run in runs.items():
                results[name].append(run())
            print(f"repeat {repeat + 1}: " + ", ".join(
                f"{n} {r[-1][0]:.1f} s / {r[-1][1]:.0f} MB" for n, r in results.items()))

        def median(name, index):
            return statistics.median(r[index] for r in results[name])

        print(f"\nconditions: {os.cpu_count()} cores, load average before / after "
              f"{load_before} / {os.getloadavg()} (shared machine: timings are noisy)")
        print(f"\n{'run (median of %d)' % args.repeats:<52} {'seconds':>8} {'CPU s':>8} "
              f"{'peak RSS MB':>12}")
        for name in runs:
            print(f"{name:<52} {median(name, 0):8.2f} {median(name, 2):8.1f} "
                  f"{median(name, 1):12.0f}")
        peer = "gdal_calc.py recipe (1 pass)"
        for name in list(runs)[1:]:
            print(f"time ratio {name} / gdal_calc = {median(name, 0) / median(peer, 0):.2f}; "
                  f"peak {median(name, 1):.0f} MB vs {median(peer, 1):.0f} MB")
        v1, v2 = "core local + Refined Lee (v1 default)", \
            "core regression kriging + uncertainty (v2 default)"
        if v1 in runs and v2 in runs:
            print(f"time ratio v2 default / v1 default = {median(v2, 0) / median(v1, 0):.2f} "
                  f"(goal <= 2); CPU time ratio {median(v2, 2) / median(v1, 2):.2f}")
        if "core recipe (2 passes)" in runs:
            print(f"recipe fill, ours vs gdal_calc: max |diff| "
                  f"{compare(recipe_out, calc_out):.2e}")


if __name__ == "__main__":
    main()
