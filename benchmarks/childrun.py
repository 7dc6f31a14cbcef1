"""Wall time, CPU time and peak memory of one command, each in a fresh child process.

Shared by the benchmark scripts. A small wrapper process runs the command and
reports ``getrusage(RUSAGE_CHILDREN)`` of that command alone, so the peak RSS is
the tool's own, not the benchmark script's.
"""
import subprocess
import sys
from collections import namedtuple

Run = namedtuple("Run", "seconds peak_mb cpu_seconds")

_WRAPPER = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
            "p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
            "stderr=subprocess.PIPE, text=True); dt = time.perf_counter() - t; "
            "sys.exit(p.stderr[-3000:]) if p.returncode else None; "
            "r = resource.getrusage(resource.RUSAGE_CHILDREN); "
            "print(dt, r.ru_maxrss / 1024.0, r.ru_utime + r.ru_stime)")


def measure(args, env=None) -> Run:
    """Run ``args``; (wall seconds, peak RSS MB, CPU seconds). A failure stops the benchmark."""
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, *args], capture_output=True,
                          text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"{args[:3]} failed:\n{proc.stderr}")
    return Run(*(float(v) for v in proc.stdout.split()[-3:]))
