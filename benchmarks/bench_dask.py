#!/usr/bin/env python3
"""The Dask engine against the local engine: stack statistics and fusion.

Jobs (issue 15):

* ``stack``: stack statistics (median + std) over 24 dates of 4096 x 4096 float32;
* ``fusion``: the default fusion (regression kriging) on four 5490 x 5490 tiles.

Each job runs in a fresh client process (a) on the local engine (2 threads), (b) on a
fresh cluster of 1 and (c) of 2 single-thread ``dask worker`` processes on 127.0.0.1.
Reported per run: wall time, CPU seconds and peak RSS of the client, of each worker and
of the scheduler (VmHWM and CPU times read from /proc at the end), and the bytes moved
between processes (block results sent to the client, the pass set-up sent to the
workers; the workers read their own windows from the files). Outputs of the cluster
runs are compared with the local run's (pixels must be identical). Goals (reported, not
asserted): 2 workers >= 1.7 x one worker; 2 workers within 1.15 x of local; worker
peak <= 500 MB. The machine's cores and load average are printed: on a shared machine
timings are noisy.

    .venv/bin/python benchmarks/bench_dask.py [--dates 24] [--size 4096] [--tiles 4]
        [--tile-size 5490] [--only stack|fusion] [--keep DIR]
"""
import argparse
import hashlib
import json
import os
import sys
import time

from childrun import measure, work_folder  # benchmarks/childrun.py (script folder on sys.path)

import numpy as np
from osgeo import gdal, osr

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGINS = os.path.join(ROOT, ".build", "plugins")
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, PLUGINS)
gdal.UseExceptions()

CLIENT = """
import json, sys
sys.path.insert(0, {plugins!r})
from s1s2_toolkit.core import BandSource
from s1s2_toolkit.core.engine import use_engine
with use_engine({address!r}) as engine:
    if engine != "local":
        engine.reset_stats()
{job}
    stats = dict(engine.stats) if engine != "local" else {{}}
with open({stats_path!r}, "w") as handle:
    json.dump(stats, handle)
"""
STACK_JOB = """
    from s1s2_toolkit.core.stackstats import stack_statistics_file
    stack_statistics_file([BandSource(p) for p in {paths!r}], {outputs!r})
"""
FUSION_JOB = """
    from s1s2_toolkit.core.fusion import fuse_ndvi_files
    for inputs, out, src in {tiles!r}:
        fuse_ndvi_files(*(BandSource(p) for p in inputs), out, src, s1_units="db",
                        boa_add_offset=0.0, cloud_classes=(3, 8, 9, 10))
"""


def make_stack(folder, dates, size):
    """``dates`` float32 rasters (tiled, DEFLATE): a seasonal signal, noise and NaN gaps."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    paths = []
    x = np.arange(size)[np.newaxis, :]
    for d in range(dates):
        path = os.path.join(folder, f"date{d:02d}.tif")
        ds = gdal.GetDriverByName("GTiff").Create(
            path, size, size, 1, gdal.GDT_Float32,
            ["TILED=YES", "COMPRESS=DEFLATE", "PREDICTOR=3", "ZLEVEL=1", "NUM_THREADS=2"])
        ds.SetGeoTransform((400000.0, 10.0, 0.0, 5200000.0, 0.0, -10.0))
        ds.SetProjection(srs.ExportToWkt())
        band = ds.GetRasterBand(1)
        band.SetNoDataValue(float("nan"))
        rng = np.random.default_rng(d)
        for y0 in range(0, size, 1024):
            y = np.arange(y0, min(y0 + 1024, size))[:, np.newaxis]
            value = 0.4 + 0.3 * np.sin(d / 4.0 + x / 500.0) * np.cos(y / 700.0)
            value = (value + rng.normal(0, 0.05, value.shape)).astype(np.float32)
            value[rng.random(value.shape) < 0.05] = np.nan   # clouds / gaps
            band.WriteArray(value, 0, y0)
        ds = None
        paths.append(path)
    return paths


def make_tiles(folder, tiles, size):
    from bench_fusion import SHARED_SCL, make_scene
    found = []
    for t in range(tiles):
        tile = os.path.join(folder, f"tile{t}")
        os.makedirs(tile, exist_ok=True)
        found.append(make_scene(tile, size, SHARED_SCL or None))
    return found


def proc_facts(pid):
    """(peak RSS MB, CPU seconds) of a live process, from /proc."""
    peak = 0.0
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                peak = float(line.split()[1]) / 1024.0
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return peak, (int(fields[11]) + int(fields[12])) / ticks


def worker_pids(proc):
    """The worker process(es) under a ``dask worker`` launcher (the nanny's child)."""
    import psutil
    parent = psutil.Process(proc.pid)
    children = parent.children(recursive=True)
    return [parent.pid] + [c.pid for c in children]


def pixels_digest(paths):
    digest = hashlib.sha256()
    for path in paths:
        ds = gdal.Open(path)
        for i in range(1, ds.RasterCount + 1):
            band = ds.GetRasterBand(i)
            for y in range(0, band.YSize, 1024):
                digest.update(band.ReadAsArray(0, y, band.XSize, min(1024, band.YSize - y))
                              .tobytes())
    return digest.hexdigest()


def run_job(name, job, outputs, folder, n_workers):
    """One run: ``n_workers`` = 0 is the local engine. Returns a dict of measurements."""
    from daskcluster import LocalCluster
    stats_path = os.path.join(folder, f"stats-{name}-{n_workers}.json")
    for path in outputs:
        if os.path.exists(path):
            os.remove(path)
    cluster = LocalCluster(n_workers=n_workers) if n_workers else None
    try:
        address = cluster.address if cluster else "local"
        script = CLIENT.format(plugins=PLUGINS, address=address, job=job, stats_path=stats_path)
        run = measure([sys.executable, "-c", script])
        row = {"job": name, "engine": f"dask {n_workers} worker(s)" if n_workers else "local",
               "wall": run.seconds, "client_cpu": run.cpu_seconds, "client_peak": run.peak_mb}
        if cluster:
            workers = []
            for proc in cluster.workers:
                facts = [proc_facts(pid) for pid in worker_pids(proc)]
                workers.append((max(f[0] for f in facts), sum(f[1] for f in facts)))
            row["worker_peak"] = [w[0] for w in workers]
            row["worker_cpu"] = [w[1] for w in workers]
            row["scheduler_peak"], row["scheduler_cpu"] = proc_facts(cluster.scheduler.pid)
        with open(stats_path) as handle:
            row["stats"] = json.load(handle)
    finally:
        if cluster:
            cluster.close()
    row["digest"] = pixels_digest(outputs)
    return row


def report(rows):
    print()
    print("| job | engine | wall s | client CPU s / peak MB | workers CPU s / peak MB | "
          "scheduler CPU s / peak MB | moved MB | same pixels |")
    print("|---|---|---|---|---|---|---|---|")
    local = {r["job"]: r for r in rows if r["engine"] == "local"}
    for r in rows:
        workers = " + ".join(f"{c:.1f}" for c in r.get("worker_cpu", [])) or "-"
        peaks = ", ".join(f"{p:.0f}" for p in r.get("worker_peak", [])) or "-"
        sched = (f"{r['scheduler_cpu']:.1f} / {r['scheduler_peak']:.0f}"
                 if "scheduler_cpu" in r else "-")
        moved = (r["stats"].get("result_bytes", 0) + r["stats"].get("payload_bytes", 0)) / 2 ** 20
        same = "yes" if r["digest"] == local[r["job"]]["digest"] else "NO"
        print(f"| {r['job']} | {r['engine']} | {r['wall']:.1f} | {r['client_cpu']:.1f} / "
              f"{r['client_peak']:.0f} | {workers} / {peaks} | {sched} | "
              f"{moved:.0f} | {same} |")
    for job in local:
        one = next((r for r in rows if r["job"] == job and r["engine"].startswith("dask 1")), None)
        two = next((r for r in rows if r["job"] == job and r["engine"].startswith("dask 2")), None)
        if one and two:
            worker_cpu = sum(two["worker_cpu"])
            serial = two["client_cpu"]
            print(f"{job}: 2 workers vs 1: {one['wall'] / two['wall']:.2f}x (goal >= 1.7); "
                  f"2 workers vs local: {two['wall'] / local[job]['wall']:.2f} x its wall time "
                  f"(goal <= 1.15); worker peak {max(two['worker_peak']):.0f} MB (goal <= 500); "
                  f"per block: workers {1000 * worker_cpu / max(two['stats']['blocks'], 1):.1f} "
                  f"ms CPU, client {1000 * serial / max(two['stats']['blocks'], 1):.1f} ms CPU "
                  f"({two['stats']['blocks']} blocks)")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dates", type=int, default=24)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--tiles", type=int, default=4)
    parser.add_argument("--tile-size", type=int, default=5490)
    parser.add_argument("--workers", default="0,1,2",
                        help="engines: 0 = local, N = N workers; '' only makes the inputs")
    parser.add_argument("--only", choices=("stack", "fusion"))
    parser.add_argument("--keep", help="keep (and reuse) the inputs in this folder")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, load average at start: {os.getloadavg()}")
    engines = [int(v) for v in args.workers.split(",") if v.strip()]  # '' = inputs only
    rows = []
    with work_folder(args.keep, "s1s2_dask_") as folder:
        if args.only in (None, "stack"):
            sub = os.path.join(folder, f"stack_{args.dates}x{args.size}")
            os.makedirs(sub, exist_ok=True)
            t = time.perf_counter()
            paths = sorted(os.path.join(sub, f) for f in os.listdir(sub)
                           if f.startswith("date"))
            if len(paths) != args.dates:
                paths = make_stack(sub, args.dates, args.size)
            print(f"stack: {args.dates} x {args.size}^2 ready in {time.perf_counter() - t:.1f} s")
            outputs = {"median": os.path.join(folder, "median.tif"),
                       "std": os.path.join(folder, "std.tif")}
            job = STACK_JOB.format(paths=paths, outputs=outputs)
            for n in engines:
                rows.append(run_job("stack statistics", job, list(outputs.values()), folder, n))
                print(rows[-1]["engine"], f"{rows[-1]['wall']:.1f} s", flush=True)
        if args.only in (None, "fusion"):
            sub = os.path.join(folder, f"tiles_{args.tiles}x{args.tile_size}")
            os.makedirs(sub, exist_ok=True)
            t = time.perf_counter()
            ready = all(os.path.exists(os.path.join(sub, f"tile{i}", "VH.tif"))
                        for i in range(args.tiles))
            if ready:
                tiles = [[os.path.join(sub, f"tile{i}", f"{b}.tif")
                          for b in ("B04", "B08", "SCL", "VV", "VH")] for i in range(args.tiles)]
            else:
                tiles = make_tiles(sub, args.tiles, args.tile_size)
            print(f"fusion: {args.tiles} tiles of {args.tile_size}^2 ready in "
                  f"{time.perf_counter() - t:.1f} s")
            work = [(inputs, os.path.join(folder, f"fused{i}.tif"),
                     os.path.join(folder, f"source{i}.tif")) for i, inputs in enumerate(tiles)]
            job = FUSION_JOB.format(tiles=work)
            outputs = [p for _, out, src in work for p in (out, src)]
            for n in engines:
                rows.append(run_job("fusion", job, outputs, folder, n))
                print(rows[-1]["engine"], f"{rows[-1]['wall']:.1f} s", flush=True)
    if rows:
        report(rows)
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
