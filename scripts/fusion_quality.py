#!/usr/bin/env python3
"""Print the README's fill-quality tables of s1s2:fusendvi (markdown).

Same computation as tests/test_fusion_quality.py (real cloud shapes and blocks on the six
BigEarthNet pairs) and tests/test_fusion_temporal.py (the eo-learn series, no S1).
Run: .venv/bin/python scripts/fusion_quality.py
"""
import os
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, ".build", "plugins"), os.path.join(ROOT, "tests")]

from test_fusion_quality import RUNS, all_cases, quality_table  # noqa: E402


def median(rows, key):
    return float(np.median([r[key] for r in rows]))


def summary(rows):
    real = [r for r in rows if r["mask"] != "blocks"]
    blocks = [r for r in rows if r["mask"] == "blocks"]
    better = np.mean([r["rmse"] < r["ols_rmse"] for r in real])
    coverage = sum(r["covered"] for r in rows) / sum(r["hidden"] for r in rows)
    print("| method (median over cases) | R^2 real shapes | R^2 blocks | RMSE real | "
          "RMSE / mean-fill RMSE |")
    print("|---|---|---|---|---|")
    print(f"| clear-pixel mean | - | - | {median(real, 'mean_rmse'):.3f} | 1.00 |")
    print(f"| local least squares (v1 default, no speckle filter) | {median(real, 'ols_r2'):.2f} "
          f"| {median(blocks, 'ols_r2'):.2f} | {median(real, 'ols_rmse'):.3f} | "
          f"{float(np.median([r['ols_rmse'] / r['mean_rmse'] for r in real])):.2f} |")
    print(f"| **regression kriging (default)** | **{median(real, 'r2'):.2f}** | "
          f"**{median(blocks, 'r2'):.2f}** | **{median(real, 'rmse'):.3f}** | "
          f"**{median(real, 'ratio'):.2f}** |")
    print(f"\nbetter than the local least squares in {100 * better:.0f} % of the {len(real)} "
          f"real-shape cases; 95 % interval coverage {100 * coverage:.1f} % of "
          f"{sum(r['hidden'] for r in rows)} hidden pixels (median per case "
          f"{100 * float(np.median([r['covered'] / r['hidden'] for r in rows])):.1f} %); "
          f"reported FIT_RMSE / true RMSE median "
          f"{float(np.median([r['fit_rmse'] / r['rmse'] for r in real])):.2f}\n")
    labels = ("<= 30 m", "30-100 m", "100-300 m", "> 300 m")
    cells = []
    for name in ("rk", "ols"):
        row = []
        for b in range(len(labels)):
            n = sum(r["by_distance"][name][b][0] for r in real)
            sse = sum(r["by_distance"][name][b][1] for r in real)
            row.append(f"{np.sqrt(sse / n):.3f} ({n} px)" if n else "-")
        cells.append(row)
    print("| RMSE by distance to the nearest clear pixel (real shapes, pooled) | "
          + " | ".join(labels) + " |")
    print("|---" * (len(labels) + 1) + "|")
    print("| regression kriging | " + " | ".join(cells[0]) + " |")
    print("| local least squares | " + " | ".join(cells[1]) + " |\n")
    print("| patch (S2) | R^2 real (median) | RMSE / mean-fill (median) | R^2 blocks | "
          "OLS R^2 real (median) |")
    print("|---|---|---|---|---|")
    for patch in sorted({r["patch"] for r in rows}):
        mine = [r for r in real if r["patch"] == patch]
        block = [r for r in blocks if r["patch"] == patch][0]
        print(f"| `{patch}` | {median(mine, 'r2'):.2f} | {median(mine, 'ratio'):.2f} | "
              f"{block['r2']:.2f} | {median(mine, 'ols_r2'):.2f} |")


def linear_table(workdir):
    rows = quality_table(workdir)
    titles = [RUNS[0][0], RUNS[1][0], "clear-pixel mean", RUNS[2][0], RUNS[3][0]]
    print("\n| patch (S2), blocks | " + " | ".join(titles) + " |")
    print("|---" * (len(titles) + 1) + "|")
    for row in rows:
        cells = [f"{row[t]:.3f}" for t in titles]
        print(f"| `{row['patch']}` | " + " | ".join(cells) + " |")


def temporal():
    from test_fusion_temporal import temporal_cases

    with tempfile.TemporaryDirectory() as workdir:
        rows = temporal_cases(workdir)
    print(f"\ntemporal (eo-learn, no S1, {len(rows)} cases): median R^2 "
          f"{median(rows, 'r2'):.2f}, RMSE {median(rows, 'rmse'):.3f} vs mean fill "
          f"{median(rows, 'mean_rmse'):.3f}; reference as is R^2 {median(rows, 'as_is_r2'):.2f}; "
          f"coverage {100 * sum(r['covered'] for r in rows) / sum(r['hidden'] for r in rows):.1f}"
          " %")


def main():
    with tempfile.TemporaryDirectory() as workdir:
        summary(all_cases(workdir))
        linear_table(workdir)
    if "--no-temporal" not in sys.argv:
        temporal()


if __name__ == "__main__":
    main()
