#!/usr/bin/env python3
"""Peak memory of the streaming core on a 20 000 x 20 000 float32 raster.

Generates a speckle-like linear backscatter GeoTIFF (tiled, DEFLATE) blockwise,
then converts it to dB (a) with the core (`convert_db_file`, 3 px halo on a
second run to exercise the halo path) and (b) with `gdal_calc.py` in the same
script, each in a fresh child process whose peak RSS is read from
``getrusage(RUSAGE_CHILDREN)``. Goal (issue 2): core peak < 1 GB.

    .venv/bin/python benchmarks/bench_streaming_memory.py [--size 20000] [--keep DIR]
"""
import argparse
import os
import shutil
import sys
import time

from childrun import measure, work_folder  # benchmarks/childrun.py (script folder on sys.path)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, ".build", "plugins"))

CORE_SNIPPET = """
import sys
sys.path.insert(0, {plugins!r})
from s1s2_toolkit.core import BandSource, OutputRaster, stream
from s1s2_toolkit.core.units import to_db
halo = {halo}
def func(x):
    return to_db(x)
stream(func, [BandSource({src!r})], [OutputRaster({dst!r}, bands=["db"])], halo=halo, scratch=1.0)
"""


def make_input(path, size):
    import numpy as np

    from s1s2_toolkit.core import Grid, OutputRaster, stream

    grid = Grid('PROJCS["WGS 84 / UTM zone 33N",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID['
                '"WGS 84",6378137,298.257223563]],PRIMEM["Greenwich",0],UNIT["degree",'
                '0.0174532925199433]],PROJECTION["Transverse_Mercator"],PARAMETER['
                '"latitude_of_origin",0],PARAMETER["central_meridian",15],PARAMETER['
                '"scale_factor",0.9996],PARAMETER["false_easting",500000],PARAMETER['
                '"false_northing",0],UNIT["metre",1],AUTHORITY["EPSG","32633"]]',
                (400000.0, 10.0, 0.0, 5200000.0, 0.0, -10.0), size, size)

    def pattern(window):
        rng = np.random.default_rng(window.yoff * 100003 + window.xoff)
        y, x = np.mgrid[window.yoff:window.yoff + window.ysize,
                        window.xoff:window.xoff + window.xsize]
        mean = 0.05 + 0.04 * np.sin(x / 700.0) * np.cos(y / 900.0)
        return (mean * rng.gamma(4.4, 1 / 4.4, mean.shape)).astype(np.float32)

    stream(pattern, [], [OutputRaster(path, bands=["sigma0"])], grid=grid, pass_window=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=20000)
    parser.add_argument("--keep", help="keep the files in this folder")
    args = parser.parse_args()
    with work_folder(args.keep, "s1s2_mem_") as folder:
        src = os.path.join(folder, "sigma0.tif")
        plugins = os.path.join(ROOT, ".build", "plugins")
        if not os.path.exists(src):
            t = time.perf_counter()
            make_input(src, args.size)
            print(f"input {args.size} x {args.size} float32 written in "
                  f"{time.perf_counter() - t:.1f} s "
                  f"({os.path.getsize(src) / 2**20:.0f} MB on disk)")
        rows = []
        for halo in (0, 3):
            dst = os.path.join(folder, f"db_core_halo{halo}.tif")
            snippet = CORE_SNIPPET.format(plugins=plugins, halo=halo, src=src, dst=dst)
            rows.append((f"core convert_db_file, halo {halo}",
                         *measure([sys.executable, "-c", snippet])[:2]))
        gdal_calc = shutil.which("gdal_calc.py") or shutil.which("gdal_calc")
        if gdal_calc:
            dst = os.path.join(folder, "db_gdal_calc.tif")
            rows.append(("gdal_calc.py 10*log10(A) (uncompressed)", *measure(
                [sys.executable, gdal_calc, "-A", src, f"--outfile={dst}", "--overwrite",
                 "--type=Float32", "--calc=10*log10(A)", "--quiet"])[:2]))
        print(f"\n{'run':<42} {'seconds':>8} {'peak RSS MB':>12}")
        for name, seconds, peak in rows:
            print(f"{name:<42} {seconds:8.1f} {peak:12.0f}")
        core_peak = max(r[2] for r in rows[:2])
        print(f"\ncore peak RSS {core_peak:.0f} MB (goal < 1024 MB): "
              f"{'OK' if core_peak < 1024 else 'OVER BUDGET'}")
        if gdal_calc:
            print(f"time ratio core(halo 0) / gdal_calc = {rows[0][1] / rows[2][1]:.2f}; "
                  f"memory ratio = {rows[0][2] / rows[2][2]:.2f}")


if __name__ == "__main__":
    main()
