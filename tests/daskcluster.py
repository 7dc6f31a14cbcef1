"""A real dask.distributed cluster on loopback for the tests and benchmarks.

``dask scheduler`` and ``dask worker --nthreads 1`` run as separate processes
(no QGIS in them) that import the plugin as ``s1s2_toolkit`` from
``.build/plugins`` (PYTHONPATH), as an installed core would be imported.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
PLUGINS_DIR = os.path.join(os.path.dirname(TESTS_DIR), ".build", "plugins")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dask_command():
    """``dask`` of this interpreter's environment (the venv's console script)."""
    beside = os.path.join(os.path.dirname(sys.executable), "dask")
    return [beside] if os.path.exists(beside) else [shutil.which("dask") or "dask"]


class LocalCluster:
    """A scheduler and ``n_workers`` single-thread workers as subprocesses of this one."""

    def __init__(self, n_workers: int = 2, threads: int = 1, memory_limit: str = "0"):
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.folder = tempfile.mkdtemp(prefix="s1s2-dask-")
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (PLUGINS_DIR, os.environ.get("PYTHONPATH", "")) if p),
            DASK_DISTRIBUTED__WORKER__DAEMON="False")
        self.env.pop("S1S2_DASK_SCHEDULER", None)
        self.scheduler = None
        self.workers = []
        self.threads, self.memory_limit = threads, memory_limit
        try:
            self.scheduler = self._spawn("scheduler", "--host", "127.0.0.1", "--port",
                                         str(self.port), "--no-dashboard")
            for _ in range(n_workers):
                self.add_worker()
            self.wait_for_workers(n_workers)
        except BaseException:
            self.close()
            raise

    def _spawn(self, name, *args):
        log = open(os.path.join(self.folder, f"{name}-{time.monotonic_ns()}.log"), "w")
        return subprocess.Popen(dask_command() + [name, *args], env=self.env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)

    def add_worker(self):
        worker = self._spawn("worker", self.address, "--nthreads", str(self.threads),
                             "--nworkers", "1", "--host", "127.0.0.1", "--no-dashboard",
                             "--memory-limit", self.memory_limit, "--local-directory",
                             self.folder, "--death-timeout", "30")
        self.workers.append(worker)
        return worker

    def client(self, timeout=20):
        from distributed import Client
        return Client(self.address, timeout=timeout, set_as_default=False)

    def wait_for_workers(self, n, timeout=60):
        client = self.client()
        try:
            client.wait_for_workers(n, timeout=timeout)
        finally:
            client.close()

    def worker_pids(self):
        return [w.pid for w in self.workers if w.poll() is None]

    def kill_worker(self, index=0):
        os.kill(self.workers[index].pid, signal.SIGKILL)
        self.workers[index].wait(10)

    def kill_scheduler(self):
        os.kill(self.scheduler.pid, signal.SIGKILL)
        self.scheduler.wait(10)

    def close(self):
        for proc in self.workers + ([self.scheduler] if self.scheduler else []):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.workers + ([self.scheduler] if self.scheduler else []):
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def serve_cluster(n_workers: int = 2):
    """Generator for a pytest fixture: a started LocalCluster, closed and forgotten by the
    toolkit's client cache afterwards, whatever the test did."""
    from s1s2_toolkit.core import dask_engine

    cluster = LocalCluster(n_workers=n_workers)
    try:
        yield cluster
    finally:
        dask_engine.disconnect_all()
        cluster.close()
