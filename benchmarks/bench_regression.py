#!/usr/bin/env python3
"""Two checkouts of the toolkit side by side: the core runs of bench_ndvi, bench_speckle and
bench_streaming_memory (their own snippets and inputs), and the ndvi / refinedlee
algorithms through qgis_process, interleaved round by round (ABBA order) in fresh child
processes. Reports the median wall, CPU and peak RSS per checkout and the CPU ratio
(the steadier figure on a shared machine). The peers of those scripts are left out: they do
not change between checkouts.

    .venv/bin/python benchmarks/bench_regression.py OTHER_CHECKOUT [--rounds 3]
        [--ndvi-size 4096] [--speckle-size 4096] [--db-size 8192] [--keep DIR]

Each checkout needs ``.build/plugins/s1s2_toolkit`` (a symlink to itself; the tests make it).
"""
import argparse
import os
import statistics
import sys

import childrun  # benchmarks/childrun.py: the script folder is on sys.path
import bench_ndvi
import bench_speckle
import bench_streaming_memory

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def plugins_of(checkout):
    path = os.path.join(os.path.abspath(checkout), ".build", "plugins")
    if not os.path.isdir(os.path.join(path, "s1s2_toolkit")):
        raise SystemExit(f"{path}/s1s2_toolkit missing: run the tests once in {checkout}")
    return path


def make_inputs(folder, args):
    paths = {"speckle": os.path.join(folder, "speckled.tif"),
             "sigma0": os.path.join(folder, "sigma0.tif")}
    paths["red"], paths["nir"] = bench_ndvi.make_pair(folder, args.ndvi_size)
    bench_speckle.make_input(paths["speckle"], args.speckle_size)
    bench_streaming_memory.make_input(paths["sigma0"], args.db_size)
    return paths


def runs_for(plugins, paths, folder, tag):
    """name -> command-running callable for one checkout."""
    out = lambda name: os.path.join(folder, f"{tag}_{name}.tif")  # noqa: E731
    py = sys.executable
    qgis = childrun.QgisRunner(os.path.join(folder, f"qgis-config-{tag}"))
    qgis.env["QGIS_PLUGINPATH"] = plugins
    return {
        "core ndvi_file": lambda: childrun.measure([py, "-c", bench_ndvi.CORE_SNIPPET.format(
            plugins=plugins, red=paths["red"], nir=paths["nir"], out=out("ndvi"))]),
        "core refined_lee_file": lambda: childrun.measure([py, "-c",
            bench_speckle.CORE_SNIPPET.format(plugins=plugins, src=paths["speckle"],
                                              dst=out("lee"))]),
        "core stream to_db, halo 3": lambda: childrun.measure([py, "-c",
            bench_streaming_memory.CORE_SNIPPET.format(plugins=plugins, halo=3,
                                                       src=paths["sigma0"], dst=out("db"))]),
        "qgis_process s1s2:ndvi": lambda: qgis.measure(
            "s1s2:ndvi", f"--RED={paths['red']}", "--RED_BAND=1", f"--NIR={paths['nir']}",
            "--NIR_BAND=1", "--BOA_ADD_OFFSET=0", f"--OUTPUT={out('qndvi')}"),
        "qgis_process s1s2:refinedlee": lambda: qgis.measure(
            "s1s2:refinedlee", f"--INPUT={paths['speckle']}", "--BAND=1",
            f"--OUTPUT={out('qlee')}"),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("other", help="the other checkout (e.g. a worktree of an older commit)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ndvi-size", type=int, default=4096)
    parser.add_argument("--speckle-size", type=int, default=4096)
    parser.add_argument("--db-size", type=int, default=8192)
    parser.add_argument("--keep", help="keep the files in this folder")
    args = parser.parse_args()
    checkouts = {"this": plugins_of(HERE), "other": plugins_of(args.other)}
    with childrun.work_folder(args.keep, "s1s2_regress_") as folder:
        paths = make_inputs(folder, args)
        runs = {tag: runs_for(plugins, paths, folder, tag) for tag, plugins in checkouts.items()}
        results = {(tag, name): [] for tag in runs for name in runs[tag]}
        for round_ in range(args.rounds):
            order = ["other", "this"] if round_ % 2 == 0 else ["this", "other"]
            for name in runs["this"]:
                for tag in order:
                    run = runs[tag][name]()
                    results[(tag, name)].append(run)
                    print(f"round {round_ + 1} {tag:<5} {name:<30} {run.seconds:6.2f} s wall "
                          f"{run.cpu_seconds:6.2f} s CPU {run.peak_mb:6.0f} MB", flush=True)
        print(f"\nmedian of {args.rounds} ({os.getloadavg()[0]:.1f} load at the end)")
        print(f"{'run':<30} {'checkout':<6} {'wall s':>7} {'CPU s':>7} {'peak MB':>8}")
        for name in runs["this"]:
            med = {}
            for tag in ("other", "this"):
                figures = results[(tag, name)]
                med[tag] = [statistics.median(getattr(r, f) for r in figures)
                            for f in ("seconds", "cpu_seconds", "peak_mb")]
                print(f"{name:<30} {tag:<6} {med[tag][0]:7.2f} {med[tag][1]:7.2f} "
                      f"{med[tag][2]:8.0f}")
            print(f"{'':<30} this/other: wall {med['this'][0] / med['other'][0]:.3f}, "
                  f"CPU {med['this'][1] / med['other'][1]:.3f}, "
                  f"peak {med['this'][2] / med['other'][2]:.3f}")


if __name__ == "__main__":
    main()
