"""The Dask engine under faults: dead workers, a dead scheduler, cancel, no scheduler, no dask.

Each fault test has a cluster of its own (killing processes of the shared one would
break the other tests). The block function sleeps a little so that the run is still
going when the fault is injected from the progress callback.
"""
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from s1s2_toolkit.core import BandSource, Cancelled, OutputRaster, S1S2Error, stream
from s1s2_toolkit.core.engine import LOCAL, use_engine
from testkit import read, write

pytest.importorskip("distributed")
from daskcluster import free_port, serve_cluster  # noqa: E402

from s1s2_toolkit.core import dask_engine  # noqa: E402

BLOCK = 40 * 40


@pytest.fixture
def raster(tmp_path):
    values = np.random.default_rng(3).gamma(3.0, 0.05, (240, 200)).astype(np.float32)
    values[10:20, 30:50] = np.nan
    return write(str(tmp_path / "in.tif"), values)


def slow_sqrt(delay):
    def block(x):
        time.sleep(delay)
        return np.sqrt(x) * 3.0 + 1.0
    return block


def run(raster, out, engine, progress=None, cancel=None, delay=0.04):
    with use_engine(engine):
        return stream(slow_sqrt(delay), [BandSource(raster)], [OutputRaster(out)], halo=1,
                      block_pixels=BLOCK, progress=progress, cancel=cancel)[0]


def leftovers(folder):
    return sorted(f for f in os.listdir(folder) if ".part" in f or f.startswith("out"))


def at_percent(percent, action):
    """A progress callback calling ``action`` once when progress passes ``percent``."""
    fired = []

    def progress(value):
        if value >= percent and not fired:
            fired.append(value)
            action()
    progress.fired = fired
    return progress


@pytest.fixture
def own_cluster():
    yield from serve_cluster(n_workers=2)


def test_worker_killed_mid_run_completes_identically_or_fails_cleanly(raster, tmp_path,
                                                                       own_cluster):
    expected = read(run(raster, str(tmp_path / "local.tif"), LOCAL, delay=0))
    out = str(tmp_path / "out.tif")
    progress = at_percent(25, lambda: own_cluster.kill_worker(0))
    try:
        run(raster, out, own_cluster.address, progress=progress)
    except S1S2Error as exc:
        print("worker killed: the run failed cleanly:", exc)
        assert leftovers(tmp_path) == []  # failed cleanly: nothing written
    else:
        print("worker killed: the run completed (blocks rescheduled)")
        np.testing.assert_array_equal(read(out), expected)  # the blocks were rescheduled
        assert leftovers(tmp_path) == ["out.tif"]
    assert progress.fired, "the worker was killed during the run"
    assert own_cluster.workers[0].poll() is not None


def test_scheduler_killed_mid_run_is_a_clear_error_and_writes_nothing(raster, tmp_path,
                                                                      own_cluster):
    out = str(tmp_path / "out.tif")
    progress = at_percent(25, own_cluster.kill_scheduler)
    start = time.monotonic()
    with pytest.raises(S1S2Error, match="Dask scheduler"):
        run(raster, out, own_cluster.address, progress=progress)
    assert progress.fired
    assert time.monotonic() - start < 60
    assert leftovers(tmp_path) == []


def test_cancel_mid_run_writes_nothing_and_leaves_no_tasks(raster, tmp_path, own_cluster):
    out = str(tmp_path / "out.tif")
    with open(out, "wb") as handle:  # an earlier result survives a cancelled run
        handle.write(b"earlier")
    state = {"cancel": False}
    progress = at_percent(25, lambda: state.update(cancel=True))
    with pytest.raises(Cancelled):
        run(raster, out, own_cluster.address, progress=progress, cancel=lambda: state["cancel"])
    with open(out, "rb") as handle:
        assert handle.read() == b"earlier"
    assert [f for f in os.listdir(tmp_path) if ".part" in f] == []
    client = own_cluster.client()
    try:
        def ours(dask_scheduler):
            return [str(key) for key in dask_scheduler.tasks if "s1s2" in str(key)]
        deadline = time.monotonic() + 10
        while client.run_on_scheduler(ours) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.run_on_scheduler(ours) == []
    finally:
        client.close()


def test_unreachable_scheduler_is_a_clear_error_within_seconds(raster, tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    start = time.monotonic()
    with pytest.raises(S1S2Error, match="Cannot reach the Dask scheduler"):
        run(raster, str(tmp_path / "out.tif"), address)
    assert time.monotonic() - start < dask_engine.CONNECT_TIMEOUT_S + 5
    assert leftovers(tmp_path) == []


def test_without_dask_the_core_runs_locally_and_a_scheduler_says_what_to_install(tmp_path,
                                                                                 raster):
    script = f"""
import sys
sys.modules["distributed"] = None  # as if dask/distributed were not installed
sys.modules["dask"] = None
sys.path.insert(0, {os.path.join(os.path.dirname(os.path.dirname(__file__)), ".build", "plugins")!r})
import numpy as np
from s1s2_toolkit.core import BandSource, OutputRaster, S1S2Error, stream
from s1s2_toolkit.core.engine import use_engine
out = stream(np.sqrt, [BandSource({raster!r})], [OutputRaster({str(tmp_path / "ok.tif")!r})])
print("local ok", out[0])
try:
    with use_engine("tcp://127.0.0.1:1"):
        pass
except S1S2Error as exc:
    print("error:", exc)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "local ok" in proc.stdout
    assert "pip install" in proc.stdout and "dask" in proc.stdout
    np.testing.assert_array_equal(read(str(tmp_path / "ok.tif")),
                                  np.sqrt(read(raster)).astype(np.float32))


def test_damaged_input_on_a_worker_is_a_clear_error_and_keeps_the_previous_output(
        tmp_path, dask_cluster):
    from test_bad_inputs import damaged_raster
    source = damaged_raster(str(tmp_path / "damaged.tif"))
    out = str(tmp_path / "out.tif")
    with open(out, "wb") as handle:
        handle.write(b"earlier")
    with pytest.raises(S1S2Error, match="damaged.*on a Dask worker"):
        run(source, out, dask_cluster.address, delay=0)
    with open(out, "rb") as handle:
        assert handle.read() == b"earlier"
    assert [f for f in os.listdir(tmp_path) if ".part" in f] == []
