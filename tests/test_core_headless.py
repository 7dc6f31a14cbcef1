"""The core must import and run with qgis unimportable (headless, no QGIS installed)."""
import subprocess
import sys
import textwrap

from testkit import PLUGINS_DIR

BLOCKER = textwrap.dedent("""
    import importlib.abc, sys

    class BlockQgis(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "qgis" or name.startswith("qgis."):
                raise ImportError("qgis is blocked in this test")
            return None

    sys.meta_path.insert(0, BlockQgis())
    sys.path.insert(0, {plugins!r})
""")


def run_blocked(code):
    script = BLOCKER.format(plugins=PLUGINS_DIR) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)


def test_blocker_really_blocks_qgis():
    proc = run_blocked("import qgis.core")
    assert proc.returncode != 0
    assert "qgis is blocked" in proc.stderr


def test_every_core_module_imports_without_qgis():
    proc = run_blocked("""
        import pkgutil, importlib
        import s1s2_toolkit.core as core
        names = [m.name for m in pkgutil.iter_modules(core.__path__)]
        for name in names:
            importlib.import_module("s1s2_toolkit.core." + name)
        assert "qgis" not in sys.modules
        print("imported", len(names))
    """)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.split()[-1]) >= 5


def test_core_runs_a_conversion_without_qgis(tmp_path):
    proc = run_blocked(f"""
        import numpy as np
        from osgeo import gdal
        from s1s2_toolkit.core import BandSource
        from s1s2_toolkit.core.units import convert_db_file
        drv = gdal.GetDriverByName("GTiff")
        ds = drv.Create({str(tmp_path / 'in.tif')!r}, 37, 23, 1, gdal.GDT_Float32)
        ds.SetGeoTransform((0, 1, 0, 0, 0, -1))
        data = np.linspace(0.001, 2.0, 37 * 23, dtype=np.float32).reshape(23, 37)
        ds.GetRasterBand(1).WriteArray(data); ds = None
        convert_db_file(BandSource({str(tmp_path / 'in.tif')!r}), {str(tmp_path / 'out.tif')!r})
        out = gdal.Open({str(tmp_path / 'out.tif')!r}).ReadAsArray()
        assert np.allclose(out, 10 * np.log10(data.astype(np.float64)), atol=1e-5)
        assert "qgis" not in sys.modules
        print("ok")
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
