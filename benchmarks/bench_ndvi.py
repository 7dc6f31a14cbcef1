#!/usr/bin/env python3
"""NDVI on an 8192 x 8192 uint16 B04/B08 pair: the core and qgis_process against gdal_calc.py.

Generates the pair into a temporary folder (tiled DEFLATE GeoTIFF, NoData 0 declared,
as a converted S2 L2A tile: vegetation, bare soil, water where B04 > B08, a no-data
wedge of DN 0), then times, interleaved and repeated (median reported):

* ``core``: ``core.indices.ndvi_file`` in a fresh Python process;
* ``gdal_calc.py`` (Debian's gdal-bin / python3-gdal) with the same NDVI formula in
  float32 and the same output creation options as ours (tiled, DEFLATE ZLEVEL=1,
  PREDICTOR=3, NUM_THREADS=2): the like-for-like peer of the ratio; and with its
  defaults (uncompressed striped output, 4x the disk space), for information;
* ``qgis_process run s1s2:ndvi`` and ``qgis_process run native:createconstantrasterlayer``
  on a 1 x 1 px extent: the difference is ours net of qgis_process start-up.

Peak memory is the peak RSS of each child process (getrusage(RUSAGE_CHILDREN) in a
fresh wrapper per run). Goal (issue 3): time ratio ours / gdal_calc <= 0.8 and peak
<= 300 MB, through the core and through qgis_process (net). Also checks that both
tools computed the same NDVI.

    .venv/bin/python benchmarks/bench_ndvi.py [--size 8192] [--repeats 3] [--keep DIR]
"""
import argparse
import os
import shutil
import statistics
import sys
import time

# benchmarks/childrun.py (the script folder is on sys.path)
from childrun import PLUGINS, QgisRunner, measure, work_folder

import numpy as np
from osgeo import gdal, osr

sys.path.insert(0, PLUGINS)
gdal.UseExceptions()

CORE_SNIPPET = """
import sys
sys.path.insert(0, {plugins!r})
from s1s2_toolkit.core import BandSource
from s1s2_toolkit.core.indices import ndvi_file
ndvi_file(BandSource({red!r}), BandSource({nir!r}), {out!r}, boa_add_offset=0.0)
"""
OUTPUT_OPTIONS = ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "COMPRESS=DEFLATE",
                  "PREDICTOR=3", "ZLEVEL=1", "NUM_THREADS=2"]


def make_pair(folder, size):
    """Two uint16 bands with realistic structure, written strip by strip."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    paths = [os.path.join(folder, "B04.tif"), os.path.join(folder, "B08.tif")]
    options = ["TILED=YES", "COMPRESS=DEFLATE", "PREDICTOR=2", "NUM_THREADS=2"]
    datasets = []
    for path in paths:
        ds = gdal.GetDriverByName("GTiff").Create(path, size, size, 1, gdal.GDT_UInt16, options)
        ds.SetGeoTransform((300000.0, 10.0, 0.0, 5300040.0, 0.0, -10.0))
        ds.SetProjection(srs.ExportToWkt())
        ds.GetRasterBand(1).SetNoDataValue(0)
        datasets.append(ds)
    rng = np.random.default_rng(0)
    x = np.arange(size)[np.newaxis, :]
    for y0 in range(0, size, 512):
        y = np.arange(y0, min(y0 + 512, size))[:, np.newaxis]
        vegetation = 0.5 + 0.5 * np.sin(x / 310.0) * np.cos(y / 270.0)      # 0..1
        water = (np.sin(x / 900.0 + y / 1300.0) > 0.93)
        red = 300 + 2200 * (1 - vegetation) + rng.normal(0, 60, vegetation.shape)
        nir = 1500 + 3500 * vegetation + rng.normal(0, 90, vegetation.shape)
        red[water], nir[water] = 600, 250                                       # B04 > B08
        edge = x < (size // 8) * (1 - y / size)                                 # DN 0 wedge
        for ds, band in zip(datasets, (red, nir)):
            band = np.clip(band, 1, 65535).astype(np.uint16)
            band[edge] = 0
            ds.GetRasterBand(1).WriteArray(band, 0, y0)
    for ds in datasets:
        ds.FlushCache()
    return paths


def compare(ours, peer, nodata=-9999.0):
    """Largest |difference| and NoData agreement over a sample of rows."""
    ds_a, ds_b = gdal.Open(ours), gdal.Open(peer)  # keep the datasets alive while reading
    a, b = ds_a.GetRasterBand(1), ds_b.GetRasterBand(1)
    worst, same_mask = 0.0, True
    for y in range(0, a.YSize, max(1, a.YSize // 16)):
        ra, rb = a.ReadAsArray(0, y, a.XSize, 1), b.ReadAsArray(0, y, b.XSize, 1)
        rb = np.where(rb == nodata, np.nan, rb)
        same_mask &= bool(np.array_equal(np.isnan(ra), np.isnan(rb)))
        ok = np.isfinite(ra) & np.isfinite(rb)
        if ok.any():
            worst = max(worst, float(np.abs(ra[ok] - rb[ok]).max()))
    return worst, same_mask


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", help="keep the files in this folder")
    args = parser.parse_args()
    with work_folder(args.keep, "s1s2_ndvi_") as folder:
        t = time.perf_counter()
        red, nir = make_pair(folder, args.size)
        print(f"input: {args.size} x {args.size} uint16 B04/B08 pair written in "
              f"{time.perf_counter() - t:.1f} s")
        out = {name: os.path.join(folder, f"ndvi_{name}.tif")
               for name in ("core", "calc", "calc_plain", "qgis", "trivial")}
        gdal_calc = shutil.which("gdal_calc.py") or shutil.which("gdal_calc")
        formula = "(B.astype(numpy.float32) - A) / (B.astype(numpy.float32) + A)"
        calc = [sys.executable, gdal_calc, "-A", red, "-B", nir, "--type=Float32",
                "--NoDataValue=-9999", f"--calc={formula}", "--overwrite", "--quiet"]
        qgis = QgisRunner(os.path.join(folder, "qgis-config"))
        if not qgis.binary:
            raise SystemExit("qgis_process not found: this benchmark compares it too.")
        runs = {
            "core": lambda: measure([sys.executable, "-c", CORE_SNIPPET.format(
                plugins=PLUGINS, red=red, nir=nir, out=out["core"])]),
            "gdal_calc": lambda: measure(calc + [f"--outfile={out['calc']}"] +
                                         [f"--co={o}" for o in OUTPUT_OPTIONS]),
            "gdal_calc, default options": lambda: measure(
                calc + [f"--outfile={out['calc_plain']}"]),
            "qgis_process s1s2:ndvi": lambda: qgis.measure(
                "s1s2:ndvi", f"--RED={red}", "--RED_BAND=1", f"--NIR={nir}",
                "--NIR_BAND=1", "--BOA_ADD_OFFSET=0", f"--OUTPUT={out['qgis']}"),
            "qgis_process trivial native": lambda: qgis.measure(
                "native:createconstantrasterlayer",
                "--EXTENT=300000,300010,5300030,5300040 [EPSG:32633]",
                "--TARGET_CRS=EPSG:32633", "--PIXEL_SIZE=10", "--NUMBER=1",
                f"--OUTPUT={out['trivial']}"),
        }
        results = {name: [] for name in runs}
        for repeat in range(args.repeats):
            for name, run in runs.items():
                own = {"core": out["core"], "qgis_process s1s2:ndvi": out["qgis"]}.get(name)
                if own and os.path.exists(own):  # ours refuses nothing, but start clean
                    os.remove(own)
                results[name].append(run())
            print(f"repeat {repeat + 1}: " + ", ".join(
                f"{n} {r[-1][0]:.1f} s" for n, r in results.items()))

        def median(name, index):
            return statistics.median(r[index] for r in results[name])

        ours_t, calc_t = median("core", 0), median("gdal_calc", 0)
        q_t, triv_t = median("qgis_process s1s2:ndvi", 0), median("qgis_process trivial native", 0)
        ours_m, calc_m = median("core", 1), median("gdal_calc", 1)
        plain_t = median("gdal_calc, default options", 0)
        q_m, triv_m = median("qgis_process s1s2:ndvi", 1), median("qgis_process trivial native", 1)
        print(f"\n{'run (median of %d)' % args.repeats:<44} {'seconds':>8} {'peak RSS MB':>12} "
              f"{'CPU s':>7}")
        for name in runs:
            print(f"{name:<44} {median(name, 0):8.2f} {median(name, 1):12.0f} "
                  f"{median(name, 2):7.2f}")
        net_t, net_m = q_t - triv_t, q_m - triv_m
        net_cpu = median("qgis_process s1s2:ndvi", 2) - median("qgis_process trivial native", 2)
        print(f"{'qgis_process s1s2:ndvi net of start-up':<44} {net_t:8.2f} {net_m:12.0f} "
              f"{net_cpu:7.2f}")
        worst, same = compare(out["core"], out["calc"])
        print(f"\nNDVI core vs gdal_calc: max |diff| {worst:.2e}, same NoData: {same}")
        print(f"core:         time ratio ours/gdal_calc = {ours_t / calc_t:.2f} "
              f"(vs gdal_calc writing uncompressed: {ours_t / plain_t:.2f}); peak {ours_m:.0f} MB "
              f"vs gdal_calc {calc_m:.0f} MB")
        print(f"qgis_process: time ratio (net) ours/gdal_calc = {net_t / calc_t:.2f}; "
              f"peak {q_m:.0f} MB raw, {net_m:.0f} MB net of the trivial run ({triv_m:.0f} MB)")
        pair_core = statistics.median(c[0] / g[0] for c, g in zip(results["core"],
                                                                  results["gdal_calc"]))
        pair_qgis = statistics.median(
            (q[0] - t[0]) / g[0] for q, t, g in zip(results["qgis_process s1s2:ndvi"],
                                                    results["qgis_process trivial native"],
                                                    results["gdal_calc"]))
        print(f"median of the per-repeat ratios (neighbouring runs, robust to load drift): "
              f"core {pair_core:.2f}, qgis_process (net) {pair_qgis:.2f}")
        calc_cpu = median("gdal_calc", 2)
        print(f"CPU time ratio (load-independent work): core {median('core', 2) / calc_cpu:.2f}, "
              f"qgis_process (net) {net_cpu / calc_cpu:.2f}")
        ok = ours_t / calc_t <= 0.8 and net_t / calc_t <= 0.8 and ours_m <= 300 and net_m <= 300
        print(f"goal (ratio <= 0.8, peak <= 300 MB, both ways): {'MET' if ok else 'NOT MET'}")


if __name__ == "__main__":
    main()
