#!/usr/bin/env python3
"""Print the README's per-patch fill-quality table of s1s2:fusendvi (markdown).

Same computation as tests/test_fusion_quality.py: the six bundled BigEarthNet
S1/S2 pairs, a synthetic SCL marking three blocks (29 %) as cloud, fill RMSE
against the true S2 NDVI under those blocks. Run: .venv/bin/python scripts/fusion_quality.py
"""
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, ".build", "plugins"), os.path.join(ROOT, "tests")]

from test_fusion_quality import RUNS, quality_table  # noqa: E402


def main():
    with tempfile.TemporaryDirectory() as workdir:
        rows = quality_table(workdir)
    titles = [RUNS[0][0], RUNS[1][0], "clear-pixel mean", RUNS[2][0], RUNS[3][0]]
    print("| patch (S2) | " + " | ".join(titles) + " | local + REFERENCE_NDVI | "
          "reported FIT_RMSE / BASELINE_RMSE / FIT_R2 |")
    print("|---" * (len(titles) + 3) + "|")
    for row in rows:
        cells = [f"{row[t]:.3f}" for t in titles]
        best = min(range(len(titles)), key=lambda i: row[titles[i]])
        cells[best] = f"**{cells[best]}**"
        print(f"| `{row['patch']}` | " + " | ".join(cells) + " | n/a (no second date) | "
              f"{row['FIT_RMSE']:.3f} / {row['BASELINE_RMSE']:.3f} / {row['FIT_R2']:.2f} |")


if __name__ == "__main__":
    main()
