"""Wall time, CPU time and peak memory of one command, each in a fresh child process.

Shared by the benchmark scripts. A small wrapper process runs the command and
reports ``getrusage(RUSAGE_CHILDREN)`` of that command alone, so the peak RSS is
the tool's own, not the benchmark script's. Also the scripts' work folder and the
``qgis_process`` runner.
"""
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections import namedtuple

PLUGINS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       ".build", "plugins")

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


@contextlib.contextmanager
def work_folder(keep, prefix):
    """The benchmark's folder: ``keep`` (created, left in place) or a temporary one that
    is removed afterwards, also when the benchmark fails."""
    folder = keep or tempfile.mkdtemp(prefix=prefix)
    os.makedirs(folder, exist_ok=True)
    try:
        yield folder
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


class QgisRunner:
    """``qgis_process run`` with this checkout's plugin enabled in a throw-away profile.

    ``binary`` is None when no qgis_process is installed (callers skip their rows).
    """

    def __init__(self, config_dir):
        self.binary = shutil.which("qgis_process.bin") or shutil.which("qgis_process")
        self.env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QGIS_PLUGINPATH=PLUGINS,
                        QGIS_CUSTOM_CONFIG_PATH=config_dir)
        self.env.pop("QGIS_OPTS", None)
        if self.binary:
            subprocess.run([self.binary, "plugins", "enable", "s1s2_toolkit"], env=self.env,
                           capture_output=True)

    def measure(self, *args) -> Run:
        return measure([self.binary, "run", *args], env=self.env)
