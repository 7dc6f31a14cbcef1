"""Workers need only the core: `pip install` of the repository gives an importable
`s1s2_toolkit.core` that never imports qgis (checked in a clean interpreter)."""
import glob
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_pip_install_gives_a_qgis_free_core(tmp_path):
    target = str(tmp_path / "site")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q",
         "--target", target, ROOT], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert os.path.exists(os.path.join(target, "s1s2_toolkit", "core", "dask_engine.py"))
    modules = sorted(os.path.basename(p)[:-3] for p in glob.glob(
        os.path.join(target, "s1s2_toolkit", "core", "*.py")) if not p.endswith("__init__.py"))
    # A clean interpreter: the installed package first, the system's numpy/GDAL/pyproj after,
    # and an import hook that fails on any qgis import.
    script = f"""
import sys
sys.path[:] = [{target!r}] + [p for p in sys.path if p and 'plugins' not in p]
class NoQgis:
    def find_spec(self, name, path=None, target=None):
        if name == 'qgis' or name.startswith('qgis.'):
            raise ImportError('the core imported ' + name)
sys.meta_path.insert(0, NoQgis())
import importlib
import s1s2_toolkit
for name in {modules!r}:
    importlib.import_module('s1s2_toolkit.core.' + name)
from s1s2_toolkit.core import stream, scan
print(s1s2_toolkit.__file__)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=str(tmp_path),
                          env=dict(os.environ, PYTHONPATH=""))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().startswith(target)
    assert "dask_engine" in modules and "streaming" in modules
