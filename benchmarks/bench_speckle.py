#!/usr/bin/env python3
"""Refined Lee (s1s2:refinedlee) against Orfeo ToolBox's plain 7x7 Lee, file to file.

Input: an 8192 x 8192 float32 speckled GeoTIFF (tiled, uncompressed; gamma speckle
with 4.4 looks on a pattern of flat fields and edges). Runs, interleaved, each in a
fresh child process whose wall time, CPU time and peak RSS are measured:

* ``otbcli_Despeckle -in IN -out OUT float -filter lee -filter.lee.rad 3`` (Debian
  ``otb-bin``: installed here with apt-get when missing and running as root);
* the core API: ``core.speckle.refined_lee_file`` (2 threads, default 256 MB budget);
* ``qgis_process run s1s2:refinedlee`` and, in the same round, a trivial native
  algorithm (``native:createconstantrasterlayer`` on a 10 x 10 raster) whose time and
  memory are qgis_process's own start-up, subtracted to give the net figure.

Goal (issue 4): Refined Lee in at most half of OTB's time, peak memory <= 500 MB.
The machine is shared: the median of the repeats is reported.

    .venv/bin/python benchmarks/bench_speckle.py [--size 8192] [--repeats 3] [--keep DIR]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

import childrun  # benchmarks/childrun.py: the script folder is on sys.path

PLUGINS = childrun.PLUGINS
sys.path.insert(0, PLUGINS)

CORE_SNIPPET = """
import sys
sys.path.insert(0, {plugins!r})
from s1s2_toolkit.core import BandSource
from s1s2_toolkit.core.speckle import refined_lee_file
refined_lee_file(BandSource({src!r}), {dst!r})
"""

def ensure_otb():
    """Path of otbcli_Despeckle; installs Debian's otb-bin when missing and root."""
    found = shutil.which("otbcli_Despeckle")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("otbcli_Despeckle missing: apt-get install -y otb-bin")
        subprocess.run(["apt-get", "install", "-y", "otb-bin"], check=False,
                       stdout=subprocess.DEVNULL)
        found = shutil.which("otbcli_Despeckle")
    if not found:
        print("Orfeo ToolBox not found: install it with `sudo apt-get install -y otb-bin` "
              "and run this benchmark again.")
    return found


def make_input(path, size):
    """Speckled linear intensity: flat fields (0.02..0.3) in 512 px checkers and disks."""
    import numpy as np
    from osgeo import gdal, osr

    ds = gdal.GetDriverByName("GTiff").Create(path, size, size, 1, gdal.GDT_Float32,
                                              ["TILED=YES", "BIGTIFF=IF_SAFER"])
    ds.SetGeoTransform((400000.0, 10.0, 0.0, 5200000.0, 0.0, -10.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    ds.SetProjection(srs.ExportToWkt())
    band = ds.GetRasterBand(1)
    band.SetNoDataValue(float("nan"))
    rng = np.random.default_rng(0)
    step = 512
    for y0 in range(0, size, step):
        rows = min(step, size - y0)
        y, x = np.mgrid[y0:y0 + rows, 0:size]
        base = np.where((x // 512 + y // 512) % 2 == 0, 0.02, 0.3)
        base = np.where((x % 300 - 150) ** 2 + (y % 300 - 150) ** 2 < 80 ** 2, 0.1, base)
        band.WriteArray((base * rng.gamma(4.4, 1 / 4.4, base.shape)).astype(np.float32), 0, y0)
    ds = None


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", help="keep the files in this folder")
    parser.add_argument("--skip-qgis", action="store_true", help="core API and OTB only")
    args = parser.parse_args()
    otb = ensure_otb()
    with childrun.work_folder(args.keep, "s1s2_speckle_") as folder:
        run_rounds(args, folder, otb)


def run_rounds(args, folder, otb):
    src = os.path.join(folder, "speckled.tif")
    qgis = None if args.skip_qgis else childrun.QgisRunner(os.path.join(folder, "qgis-config"))
    if qgis is not None and not qgis.binary:
        print("qgis_process not found: the qgis_process rows are skipped.")
        qgis = None
    if not os.path.exists(src):
        t = time.perf_counter()
        make_input(src, args.size)
        print(f"input {args.size} x {args.size} float32 written in "
              f"{time.perf_counter() - t:.1f} s")
    runs = {}

    def record(name, run):
        figures = (run.seconds, run.cpu_seconds, run.peak_mb)  # the order reported here
        runs.setdefault(name, []).append(figures)
        print(f"  {name:<34} {figures[0]:7.1f} s wall {figures[1]:7.1f} s CPU "
              f"{figures[2]:7.0f} MB")

    for repeat in range(args.repeats):
        print(f"round {repeat + 1}/{args.repeats}")
        if otb:
            dst = os.path.join(folder, "otb_lee.tif")
            record("otbcli_Despeckle lee rad 3", childrun.measure(
                [otb, "-in", src, "-out", dst, "float", "-filter", "lee",
                 "-filter.lee.rad", "3"]))
        dst = os.path.join(folder, "core_refinedlee.tif")
        record("core refined_lee_file", childrun.measure(
            [sys.executable, "-c", CORE_SNIPPET.format(plugins=PLUGINS, src=src, dst=dst)]))
        if qgis:
            dst = os.path.join(folder, "qgis_refinedlee.tif")
            record("qgis_process s1s2:refinedlee", qgis.measure(
                "s1s2:refinedlee", f"--INPUT={src}", "--BAND=1", f"--OUTPUT={dst}"))
            record("qgis_process trivial (start-up)", qgis.measure(
                "native:createconstantrasterlayer",
                "--EXTENT=0,100,0,100 [EPSG:32633]", "--TARGET_CRS=EPSG:32633",
                "--PIXEL_SIZE=10", "--NUMBER=1",
                f"--OUTPUT={os.path.join(folder, 'constant.tif')}"))

    med = {name: tuple(statistics.median(f[i] for f in figures) for i in range(3))
           for name, figures in runs.items()}
    print(f"\nmedian of {args.repeats} ({args.size} x {args.size} float32, 2 cores)")
    print(f"{'run':<34} {'wall s':>8} {'CPU s':>8} {'peak MB':>8}")
    for name, (wall, cpu, peak) in med.items():
        print(f"{name:<34} {wall:8.1f} {cpu:8.1f} {peak:8.0f}")
    core = med["core refined_lee_file"]
    verdict = []
    if otb:
        ref = med["otbcli_Despeckle lee rad 3"]
        ratio = core[0] / ref[0]
        print(f"\ncore API:     Refined Lee / OTB Lee time = {ratio:.2f} "
              f"(goal <= 0.5), CPU ratio {core[1] / ref[1]:.2f}; peak {core[2]:.0f} MB "
              f"(goal <= 500) vs OTB {ref[2]:.0f} MB")
        verdict.append(ratio <= 0.5 and core[2] <= 500)
        if qgis:
            q, trivial = med["qgis_process s1s2:refinedlee"], \
                med["qgis_process trivial (start-up)"]
            net = q[0] - trivial[0]
            print(f"qgis_process: net of start-up ({trivial[0]:.1f} s, {trivial[2]:.0f} MB) "
                  f"{net:.1f} s, ratio {net / ref[0]:.2f} (goal <= 0.5); peak {q[2]:.0f} MB "
                  f"total, {q[2] - trivial[2]:.0f} MB above start-up")
            verdict.append(net / ref[0] <= 0.5 and q[2] - trivial[2] <= 500)
        print("goal met" if all(verdict) else "GOAL NOT MET")


if __name__ == "__main__":
    main()
