#!/usr/bin/env python3
"""Collocation benchmarks, each tool in a fresh child process (time, peak RSS), interleaved.

A. Swath -> grid: a 2000 x 2000 swath (real S1 IW geometry from the bundled geolocation
   tie points, 20 m spacing, synthetic values) onto a 4000 x 4000 UTM 10 m grid, nearest
   within 50 m: core ``swath_to_grid`` vs pyresample ``kd_tree.resample_nearest`` (the MET
   Norway recipe). Outputs are asserted identical (NaN in the same places). Goal: >= 3x.
B. Raster warp: a 6144 x 6144 EPSG:4326 float32 dB raster (the Sen1Floods11 S1 chip tiled)
   onto a UTM 30N 10 m grid, bilinear, float32 tiled DEFLATE GeoTIFF: core
   ``collocate_to_grid`` vs the ``gdalwarp`` command line with the same options. Goal:
   <= 1.1x gdalwarp's time. The dB path (interpolation in linear power) is timed too.

    .venv/bin/python benchmarks/bench_collocate.py [--repeats 3] [--swath 2000] [--raster 6144]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGINS = os.path.join(ROOT, ".build", "plugins")
TESTS = os.path.join(ROOT, "tests")
sys.path.insert(0, PLUGINS)

SWATH_SETUP = """
import sys, numpy as np
sys.path[:0] = [{plugins!r}, {tests!r}]
from test_swath import swath_geometry, utm_grid
n = {n}
lon, lat = swath_geometry(line0=2000, pixel0=6000, n=n, step=2)
values = np.random.default_rng(0).gamma(2.0, 0.05, lon.shape)
values[::37, ::41] = np.nan
grid = utm_grid(lon, lat, 2 * n, 2 * n, dx=4000.0, dy=-3000.0)
"""
SWATH_OURS = SWATH_SETUP + """
from s1s2_toolkit.core.swath import swath_to_grid
import time; t = time.perf_counter()
out = swath_to_grid(lon, lat, values, grid, 50.0)
print("TIME", time.perf_counter() - t)
np.save({out!r}, out.astype(np.float32))
"""
SWATH_PYRESAMPLE = SWATH_SETUP + """
from pyresample import geometry, kd_tree
import time; t = time.perf_counter()
gt = grid.geotransform
area = geometry.AreaDefinition("t", "t", "t", grid.crs_wkt, grid.width, grid.height,
                               (gt[0], gt[3] + gt[5] * grid.height, gt[0] + gt[1] * grid.width, gt[3]))
out = kd_tree.resample_nearest(geometry.SwathDefinition(lons=lon, lats=lat), values, area, 50.0,
                               fill_value=np.nan)
print("TIME", time.perf_counter() - t)
np.save({out!r}, out.astype(np.float32))
"""
RASTER_OURS = """
import sys, time
sys.path.insert(0, {plugins!r})
from s1s2_toolkit.core.collocate import collocate_to_grid
from s1s2_toolkit.core.raster import Grid
grid = Grid.of_path({target!r})
t = time.perf_counter()
collocate_to_grid({src!r}, grid, {out!r}, resampling="bilinear", linear_units={linear!r})
"""


def run_child(args):
    """(seconds, peak RSS MB, CPU seconds of the whole process) of one fresh child process.

    Seconds: the resampling time the child reports ("TIME s", same set-up excluded for both
    tools), else the wall time including start-up (command-line tools)."""
    wrapper = ("import resource, subprocess, sys, time; t=time.perf_counter(); "
               "p=subprocess.run(sys.argv[1:], check=True, capture_output=True, text=True); "
               "w=time.perf_counter()-t; "
               "r=[l for l in p.stdout.splitlines() if l.startswith('TIME')]; "
               "u=resource.getrusage(resource.RUSAGE_CHILDREN); "
               "print(r[-1] if r else 'TIME %f' % w, u.ru_maxrss / 1024.0, u.ru_utime + u.ru_stime)")
    out = subprocess.run([sys.executable, "-c", wrapper, *args], check=True, capture_output=True,
                         text=True).stdout.split()
    return float(out[1]), float(out[2]), float(out[3])


def report(name, ours, peer, peer_name):
    t_ours, t_peer = statistics.median(o[0] for o in ours), statistics.median(p[0] for p in peer)
    m_ours, m_peer = max(o[1] for o in ours), max(p[1] for p in peer)
    print(f"{name}: ours {t_ours:.2f} s (peak {m_ours:.0f} MB) | {peer_name} {t_peer:.2f} s "
          f"(peak {m_peer:.0f} MB) | {peer_name}/ours time ratio {t_peer / t_ours:.2f}, "
          f"ours/{peer_name} {t_ours / t_peer:.2f}")
    c_ours, c_peer = statistics.median(o[2] for o in ours), statistics.median(p[2] for p in peer)
    print(f"  runs ours {[round(o[0], 2) for o in ours]} {peer_name} {[round(p[0], 2) for p in peer]}; "
          f"CPU seconds of the whole process (user+sys, median): ours {c_ours:.1f}, "
          f"{peer_name} {c_peer:.1f}", flush=True)


def bench_swath(tmp, n, repeats):
    import numpy as np

    ours_npy, ref_npy = os.path.join(tmp, "ours.npy"), os.path.join(tmp, "ref.npy")
    ours, peer = [], []
    for _ in range(repeats):
        peer.append(run_child([sys.executable, "-c", SWATH_PYRESAMPLE.format(
            plugins=PLUGINS, tests=TESTS, n=n, out=ref_npy)]))
        ours.append(run_child([sys.executable, "-c", SWATH_OURS.format(
            plugins=PLUGINS, tests=TESTS, n=n, out=ours_npy)]))
    a, b = np.load(ours_npy), np.load(ref_npy)
    assert np.array_equal(a, b, equal_nan=True), "outputs differ from pyresample"
    print(f"A. swath {n} x {n} -> grid {2 * n} x {2 * n}, radius 50 m: identical to pyresample "
          f"({np.isfinite(a).mean():.1%} of the target filled); times exclude the shared set-up "
          "(building the test geometry), peak RSS includes it", flush=True)
    report("   swath", ours, peer, "pyresample")


def make_raster(tmp, size):
    import numpy as np
    from osgeo import gdal, osr
    from pyproj import Transformer

    chip = os.path.join(ROOT, "tests", "data", "sen1floods11", "Spain_7370579_S1Hand.tif")
    ds = gdal.Open(chip)
    vv = ds.GetRasterBand(1).ReadAsArray()
    reps = size // vv.shape[0]
    gt = ds.GetGeoTransform()
    src = os.path.join(tmp, "s1_4326.tif")
    out = gdal.GetDriverByName("GTiff").Create(src, vv.shape[1] * reps, vv.shape[0] * reps, 1,
                                               gdal.GDT_Float32, ["TILED=YES", "COMPRESS=DEFLATE",
                                                                  "PREDICTOR=3", "ZLEVEL=1"])
    out.SetGeoTransform(gt)
    out.SetProjection(ds.GetProjection())
    band = out.GetRasterBand(1)
    band.SetNoDataValue(float("nan"))
    for row in range(reps):
        band.WriteArray(np.tile(vv, (1, reps)), 0, row * vv.shape[0])
    out = None
    # target: UTM 30N, 10 m, the source footprint minus a margin
    w, h = vv.shape[1] * reps, vv.shape[0] * reps
    x, y = Transformer.from_crs(4326, 32630, always_xy=True).transform(
        [gt[0], gt[0] + w * gt[1]], [gt[3], gt[3] + h * gt[5]])
    x0, y1 = np.ceil(min(x) / 10) * 10 + 500, np.floor(max(y) / 10) * 10 - 500
    width = int((max(x) - x0 - 500) // 10)
    height = int((y1 - min(y) - 500) // 10)
    target = os.path.join(tmp, "target.tif")
    t = gdal.GetDriverByName("GTiff").Create(target, width, height, 1, gdal.GDT_Byte,
                                             ["SPARSE_OK=TRUE"])
    t.SetGeoTransform((x0, 10.0, 0.0, y1, 0.0, -10.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32630)
    t.SetProjection(srs.ExportToWkt())
    t = None
    return src, target, (x0, y1 - 10 * height, x0 + 10 * width, y1), width, height


def bench_raster(tmp, size, repeats):
    import numpy as np
    from osgeo import gdal

    src, target, bounds, width, height = make_raster(tmp, size)
    ours_tif, peer_tif = os.path.join(tmp, "ours.tif"), os.path.join(tmp, "gdalwarp.tif")
    gdalwarp = ["gdalwarp", "-q", "-overwrite", "-t_srs", "EPSG:32630", "-te", *map(repr, bounds),
                "-tr", "10", "10", "-r", "bilinear", "-ot", "Float32", "-wt", "Float32",
                # the kernel and transformer accuracy collocate pins (core/collocate.py)
                "-et", "0.005", "-wo", "XSCALE=1", "-wo", "YSCALE=1",
                "-srcnodata", "nan", "-dstnodata", "nan", "-multi", "-wo", "NUM_THREADS=2",
                "-wm", "256", "-co", "TILED=YES", "-co", "BLOCKXSIZE=256", "-co", "BLOCKYSIZE=256",
                "-co", "COMPRESS=DEFLATE", "-co", "PREDICTOR=3", "-co", "ZLEVEL=1",
                "-co", "NUM_THREADS=2", "-co", "BIGTIFF=IF_SAFER", src, peer_tif]
    ours, peer, ours_db = [], [], []
    for _ in range(repeats):
        for path in (ours_tif, peer_tif):
            if os.path.exists(path):
                os.remove(path)
        peer.append(run_child(gdalwarp))
        ours.append(run_child([sys.executable, "-c", RASTER_OURS.format(
            plugins=PLUGINS, target=target, src=src, out=ours_tif, linear=False)]))
        os.remove(ours_tif)
        ours_db.append(run_child([sys.executable, "-c", RASTER_OURS.format(
            plugins=PLUGINS, target=target, src=src, out=ours_tif, linear=True)]))
    os.remove(ours_tif)
    ours_again = run_child([sys.executable, "-c", RASTER_OURS.format(
        plugins=PLUGINS, target=target, src=src, out=ours_tif, linear=False)])
    a = gdal.Open(ours_tif).ReadAsArray()
    b = gdal.Open(peer_tif).ReadAsArray()
    same = np.array_equal(a, b, equal_nan=True)
    print(f"B. raster {size} x {size} EPSG:4326 -> {width} x {height} UTM 30N 10 m, bilinear: "
          f"output identical to gdalwarp: {same} (max |diff| "
          f"{np.nanmax(np.abs(a - b)) if not same else 0.0}); times are wall times of the "
          "whole process (Python start-up included for ours)", flush=True)
    report("   warp (dB values as they are)", ours + [ours_again], peer, "gdalwarp")
    report("   warp in linear power (dB input)", ours_db, peer, "gdalwarp")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--swath", type=int, default=2000)
    parser.add_argument("--raster", type=int, default=6144)
    parser.add_argument("--only", choices=["swath", "raster"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.path.join(ROOT, ".build")) as tmp:
        if args.only != "raster":
            bench_swath(tmp, args.swath, args.repeats)
        if args.only != "swath":
            bench_raster(tmp, args.raster, args.repeats)


if __name__ == "__main__":
    main()
