#!/usr/bin/env python3
"""Benchmark: s1s2 calibration of a full-size GRD (25 931 x 16 854 px) vs Orfeo ToolBox.

The product is the bundled real SAFE (tests/data/s1_safe: real calibration, noise and
annotation XML) plus a synthetic uint16 VH measurement TIFF of the declared size, built
in a temporary folder. Tools, each in a fresh process (wall time, peak RSS):

* ours:  core.calibration.calibrate (sigma0, thermal-noise removal, 256 MB budget, 2 threads)
* peer:  otbcli SARCalibration -lut sigma -removenoise 1 -ram 256 (Debian otb-bin)
* floor: gdal_calc.py "A*A/500^2" on the same TIFF (no LUT at all: I/O + arithmetic only)

Runs are interleaved, ``--repeats`` times (default 3); the medians are printed. Usage:
    .venv/bin/python benchmarks/bench_calibrate.py [--repeats N] [--keep DIR]
"""
import argparse
import os
import shutil
import statistics
import sys

import childrun  # benchmarks/childrun.py: the script folder is on sys.path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, ".build", "plugins"), os.path.join(ROOT, "tests")]

OURS = """
import sys
sys.path.insert(0, {plugins!r})
from s1s2_toolkit.core.calibration import calibrate
calibrate({safe!r}, "VH", {out!r}, coefficient="sigma0", noise_removal=True)
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", help="build/keep the product in this folder")
    args = parser.parse_args()
    with childrun.work_folder(args.keep, "s1s2_bench_calibrate_") as work:
        run_tools(args, work)


def run_tools(args, work):
    from test_calibration_product import build_product

    safes = [os.path.join(work, n) for n in os.listdir(work) if n.endswith(".SAFE")]
    if safes and os.listdir(os.path.join(safes[0], "measurement")):
        safe = safes[0]
    else:
        print("building the full-size product ...", flush=True)
        safe = build_product(work, scale=1, polarisations=("VH",))
    from s1s2_toolkit.core.s1annotation import SafeProduct
    measurement = SafeProduct(safe).measurement_path("VH")
    out_dir = os.path.join(work, "out")
    os.makedirs(out_dir, exist_ok=True)
    tools = {
        "s1s2 calibrate": [sys.executable, "-c", OURS.format(
            plugins=childrun.PLUGINS, safe=safe,
            out=os.path.join(out_dir, "ours.tif"))],
    }
    if shutil.which("otbcli"):
        tools["otb SARCalibration"] = [
            "otbcli", "SARCalibration", "-in", measurement, "-out",
            os.path.join(out_dir, "otb.tif") + "?&gdal:co:TILED=YES&gdal:co:COMPRESS=DEFLATE",
            "-lut", "sigma", "-removenoise", "1", "-ram", "256"]
    if shutil.which("gdal_calc.py"):
        tools["gdal_calc (no LUT)"] = [
            "gdal_calc.py", "--quiet", "--overwrite", "-A", measurement, "--type=Float32",
            "--calc=A.astype(float32)*A/250000.0", "--co=TILED=YES", "--co=COMPRESS=DEFLATE",
            f"--outfile={os.path.join(out_dir, 'calc.tif')}"]
    env = dict(os.environ, OTB_MAX_RAM_HINT="256")
    results = {name: [] for name in tools}
    for repeat in range(args.repeats):
        for name, cmd in tools.items():
            seconds, rss = childrun.measure(cmd, env)[:2]
            results[name].append((seconds, rss))
            print(f"  run {repeat + 1}: {name:<20} {seconds:7.1f} s  peak RSS {rss:7.0f} MB",
                  flush=True)
    print("\nFull-size GRD 25931 x 16854 px (437 Mpx) sigma0 with noise removal, medians of "
          f"{args.repeats}:")
    ours = statistics.median(s for s, _ in results["s1s2 calibrate"])
    for name, runs in results.items():
        seconds = statistics.median(s for s, _ in runs)
        rss = statistics.median(r for _, r in runs)
        print(f"  {name:<20} {seconds:7.1f} s  peak RSS {rss:7.0f} MB   time ratio ours/this "
              f"{ours / seconds:5.2f}")


if __name__ == "__main__":
    main()
