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

        planes = [gdal.Open(p).GetRasterBand(b).ReadAsArray().astype(np.float64)
                  for p, b in zip((red, green, blue), bands)]
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
