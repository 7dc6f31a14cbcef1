"""The Dask engine from QGIS: qgis_process with S1S2_DASK_SCHEDULER, and the provider setting.

The same algorithm runs through qgis_process locally and with S1S2_DASK_SCHEDULER set
to the session's real cluster; outputs equal bit for bit, numbers to 1e-9 relative,
and the log says where the run went.
"""
import copy
import os
import time

import numpy as np
import pytest
from osgeo import gdal

from testkit import BIGEARTHNET, patch_band, write

distributed = pytest.importorskip("distributed")
from daskcluster import free_port  # noqa: E402

S2_DIR = os.path.join(BIGEARTHNET, "S2A_MSIL2A_20170613T101031_87_48")
S1_DIR = os.path.join(BIGEARTHNET, "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48")


def with_scheduler(qgis_process, address):
    """A copy of the qgis_process runner whose runs go to ``address`` ('' = local); QGIS's
    Python finds dask/distributed where this interpreter has them."""
    runner = copy.copy(qgis_process)
    site = os.path.dirname(os.path.dirname(distributed.__file__))
    runner.env = dict(qgis_process.env, PYTHONPATH=os.pathsep.join(
        p for p in (site, qgis_process.env.get("PYTHONPATH", "")) if p))
    runner.env.pop("S1S2_DASK_SCHEDULER", None)
    if address:
        runner.env["S1S2_DASK_SCHEDULER"] = address
    return runner


def pixels(path):
    ds = gdal.Open(path)
    return [ds.GetRasterBand(i).ReadAsArray().tobytes() for i in range(1, ds.RasterCount + 1)]


def run_both(qgis_process, address, tmp_path, algorithm, outputs, **parameters):
    """Run locally and on the cluster; returns (local results, cluster results, cluster log)."""
    runs = {}
    for name, where in (("local", ""), ("dask", address)):
        folder = tmp_path / name
        folder.mkdir()
        params = dict(parameters, **{key: str(folder / file) for key, file in outputs.items()})
        runner = with_scheduler(qgis_process, where)
        proc = runner.command("run", algorithm, *[f"--{k}={v}" for k, v in params.items()])
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        runs[name] = (proc.stdout, folder)
    for file in outputs.values():
        assert pixels(str(runs["local"][1] / file)) == pixels(str(runs["dask"][1] / file)), file
    return runs["local"][0], runs["dask"][0]


def numbers_of(log):
    """The 'NAME:\tvalue' result lines of a qgis_process run as floats where they are numbers."""
    found = {}
    for line in log.splitlines():
        if ":\t" in line:
            key, value = line.split(":\t", 1)
            try:
                found[key.strip()] = float(value)
            except ValueError:
                pass
    return found


def assert_same_numbers(local_log, dask_log, names):
    local, remote = numbers_of(local_log), numbers_of(dask_log)
    for name in names:
        assert name in local and name in remote, name
        assert remote[name] == pytest.approx(local[name], rel=1e-9, abs=0.0), name


def test_qgis_process_seaice_on_the_cluster(qgis_process, dask_cluster, tmp_path):
    local, remote = run_both(
        qgis_process, dask_cluster.address, tmp_path, "s1s2:seaice",
        {"OUTPUT_S1_ICE": "s1.tif", "OUTPUT_S2_ICE": "s2.tif"},
        S1=patch_band(S1_DIR, "VH"), S1_BAND=1, S2_GREEN=patch_band(S2_DIR, "B03"),
        S2_GREEN_BAND=1, S1_THRESHOLD_DB=-20)
    assert f"Dask scheduler {dask_cluster.address}, 2 worker(s)" in remote
    assert "Engine: local" in local
    assert_same_numbers(local, remote, ["S1_ICE_CONCENTRATION", "S2_ICE_CONCENTRATION",
                                        "S1_FEATURES", "S2_FEATURES", "AGREEMENT"])


def test_qgis_process_fusendvi_on_the_cluster(qgis_process, dask_cluster, tmp_path):
    from test_fusion import synthetic_scene
    scene, _ = synthetic_scene(tmp_path)
    local, remote = run_both(
        qgis_process, dask_cluster.address, tmp_path, "s1s2:fusendvi",
        {"OUTPUT": "fused.tif", "OUTPUT_SOURCE": "source.tif"},
        RED=scene["red"], NIR=scene["nir"], SCL=scene["scl"], VV=scene["vv"], VH=scene["vh"],
        SPECKLE_FILTER=0)
    assert "blocks in" in remote and "Dask:" in remote
    assert_same_numbers(local, remote, ["CLOUD_FRACTION", "FIT_N", "FIT_R2", "FIT_RMSE",
                                        "COEF_INTERCEPT"])


def test_qgis_process_unreachable_scheduler_is_a_clear_error(qgis_process, tmp_path):
    runner = with_scheduler(qgis_process, f"tcp://127.0.0.1:{free_port()}")
    out = str(tmp_path / "rvi.tif")
    values = np.random.default_rng(1).gamma(3.0, 0.05, (60, 70)).astype(np.float32)
    vv, vh = write(str(tmp_path / "vv.tif"), values), write(str(tmp_path / "vh.tif"), values / 4)
    start = time.monotonic()
    proc = runner.command("run", "s1s2:rvi4s1", f"--VV={vv}", f"--VH={vh}", f"--OUTPUT={out}")
    assert proc.returncode != 0
    assert "Cannot reach the Dask scheduler" in proc.stdout + proc.stderr
    assert time.monotonic() - start < 40  # QGIS start-up included; the connect gives up in 5 s
    assert not os.path.exists(out)


def test_provider_setting_sends_runs_to_the_cluster(s1s2_provider, dask_cluster, tmp_path,
                                                    monkeypatch):
    """The 'Dask scheduler address' provider setting (ProcessingConfig/QgsSettings)."""
    import processing
    from processing.core.ProcessingConfig import ProcessingConfig
    from qgis.core import QgsProcessingFeedback, QgsSettings

    from s1s2_toolkit.algorithms.base import DASK_SETTING, DASK_SETTING_KEY

    monkeypatch.delenv("S1S2_DASK_SCHEDULER", raising=False)
    s1s2_provider.load()
    assert DASK_SETTING in ProcessingConfig.settings  # shown under Providers > S1S2 Toolkit
    values = np.random.default_rng(4).gamma(3.0, 0.05, (90, 80)).astype(np.float32)
    vv, vh = write(str(tmp_path / "vv.tif"), values), write(str(tmp_path / "vh.tif"), values / 3)

    class Log(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.lines = []

        def pushInfo(self, text):  # noqa: N802 - QGIS API
            self.lines.append(text)

    outputs = {}
    for where in ("", dask_cluster.address):
        QgsSettings().setValue(DASK_SETTING_KEY, where)
        feedback = Log()
        out = str(tmp_path / f"rvi_{'dask' if where else 'local'}.tif")
        try:
            processing.run("s1s2:rvi4s1", {"VV": vv, "VH": vh, "OUTPUT": out},
                           feedback=feedback)
        finally:
            QgsSettings().setValue(DASK_SETTING_KEY, "")
        outputs[where] = (pixels(out), "\n".join(feedback.lines))
    assert outputs[""][0] == outputs[dask_cluster.address][0]
    assert "Engine: local" in outputs[""][1]
    assert f"Dask scheduler {dask_cluster.address}" in outputs[dask_cluster.address][1]
