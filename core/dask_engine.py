"""The Dask engine: the block passes of :mod:`.streaming` on a ``dask.distributed`` cluster.

A pass is the same ``call(arrays, window)`` the local engine runs. Here:

* ``call`` (with everything it captured: model coefficients, component tables,
  a swath sampler) is scattered once to every worker;
* one task per window opens the inputs itself (a :class:`BlockReader` cached per
  worker thread for the pass), reads the padded window and returns ``call``'s
  result: output blocks of a :func:`stream` pass or the small per-block result
  of a :func:`scan` pass;
* the client consumes results in block order with the same ``consume`` as the
  local engine (the same writers, the same commit), with at most
  ``2 x worker threads`` tasks in flight, so a scene never passes whole through
  one process and the written file equals the local engine's.

Inputs must be reachable from the workers under the same names (local files on
one machine, a shared file system, ``/vsicurl/`` or ``/vsis3/``); small
in-memory VRTs (``/vsimem/s1s2*``) are shipped with the pass.
"""
import contextlib
import ctypes
import threading
import time
import uuid
from collections import deque
from concurrent.futures import CancelledError
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
from osgeo import gdal

import distributed
from dask.sizeof import sizeof

from .blas import one_blas_thread
from .errors import Cancelled, S1S2Error

CONNECT_TIMEOUT_S = 5      # an unreachable scheduler is an error after this long, not a hang
LOST_SCHEDULER_S = 10      # a run whose scheduler stays unreachable this long fails
POLL_S = 0.1               # how often cancel and the connection are checked while waiting
WORKER_GDAL_CACHE_MB = 96  # as the local engine: a strip of tiles, not 5 % of RAM
_VSIMEM_PREFIX = "/vsimem/s1s2"
# GDAL configuration the core sets around a pass that changes what a read returns
# (calibration reads MET Norway NetCDF rows as stored): the workers read with the same.
SHIPPED_CONFIG = ("GDAL_NETCDF_BOTTOMUP",)

_engines: Dict[str, "DaskEngine"] = {}
_engines_lock = threading.Lock()


def connect(address: str) -> "DaskEngine":
    """The engine of the scheduler at ``address`` (one client per address, reused)."""
    with _engines_lock:
        engine = _engines.get(address)
        if engine is not None and engine.client.status == "running":
            return engine
        try:
            client = distributed.Client(address, timeout=CONNECT_TIMEOUT_S,
                                        set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise S1S2Error(
                f"Cannot reach the Dask scheduler at '{address}' within {CONNECT_TIMEOUT_S} s "
                f"({exc}). Start it (dask scheduler; dask worker {address}) or clear the "
                "provider setting 'Dask scheduler address' / S1S2_DASK_SCHEDULER to run "
                "locally.") from None
        engine = _engines[address] = DaskEngine(client, address)
        return engine


def disconnect_all() -> None:
    """Close every client (tests, plugin unload)."""
    with _engines_lock:
        for engine in _engines.values():
            try:
                engine.client.close(timeout=2)
            except Exception:  # noqa: BLE001 - a dead scheduler cannot be closed politely
                pass
        _engines.clear()


class DaskEngine:
    """Runs block passes on the cluster behind ``client``; counts what it did in ``stats``."""

    def __init__(self, client, address: str):
        self.client = client
        self.address = address
        self.stats = {}
        self.reset_stats()

    def reset_stats(self) -> None:
        self.stats = {"passes": 0, "blocks": 0, "result_bytes": 0, "payload_bytes": 0}

    def workers(self) -> Tuple[int, int]:
        """(workers, threads) currently connected to the scheduler."""
        threads = self.client.nthreads()  # every worker (scheduler_info() lists only a few)
        return len(threads), sum(threads.values())

    def describe(self) -> str:
        workers, threads = self.workers()
        return (f"Engine: Dask scheduler {self.address}, {workers} worker(s), "
                f"{threads} thread(s).")

    def summary(self) -> str:
        s = self.stats
        return (f"Dask: {s['blocks']} blocks in {s['passes']} pass(es) on {self.address}; "
                f"{s['result_bytes'] / 2 ** 20:.1f} MB of results and "
                f"{s['payload_bytes'] / 2 ** 20:.1f} MB of pass set-up moved.")

    # -- one pass ---------------------------------------------------------------------
    def map_blocks(self, sources: Sequence, dtype, windows: Sequence, call: Callable,
                   consume: Callable, progress, cancel) -> None:
        """Compute ``call(read(window), window)`` on the workers, ``consume`` here in order."""
        workers, threads = self.workers()
        if workers == 0:
            raise S1S2Error(f"The Dask scheduler at {self.address} has no workers: start "
                            f"some (dask worker {self.address}).")
        token = uuid.uuid4().hex[:12]
        config = {key: gdal.GetConfigOption(key) for key in SHIPPED_CONFIG}
        payload = (call, _vsimem_files(sources), config)
        try:
            shared = self.client.scatter(payload, broadcast=True, hash=False)
        except Exception as exc:  # noqa: BLE001 - pickling errors come in many types
            if self.client.status != "running":
                raise self._lost() from None
            raise S1S2Error(f"Internal error: the block function cannot be sent to the Dask "
                            f"workers ({type(exc).__name__}: {exc}).") from None
        self.stats["passes"] += 1
        self.stats["payload_bytes"] += sizeof(payload) * workers
        sources, dtype = list(sources), np.dtype(dtype).name
        in_flight = max(2, 2 * threads)
        pending = deque()
        total, done = len(windows), 0
        if progress:
            progress(0.0)
        try:
            for i, window in enumerate(windows):
                _check_cancel(cancel)
                pending.append((window, self.client.submit(
                    _read_and_call, token, sources, dtype, shared, window,
                    key=f"s1s2-block-{token}-{i}", pure=False)))
                while len(pending) >= in_flight:
                    self._consume_head(pending, consume, cancel)
                    done += 1
                    if progress:
                        progress(100.0 * done / total)
            while pending:
                self._consume_head(pending, consume, cancel)
                done += 1
                if progress:
                    progress(100.0 * done / total)
        except BaseException:
            self._cancel([f for _, f in pending] + [shared])
            raise
        finally:
            pending.clear()
        self._cancel([shared])

    def _consume_head(self, pending: deque, consume: Callable, cancel) -> None:
        window, future = pending[0]
        result = self._wait(future, cancel)
        pending.popleft()
        self.stats["blocks"] += 1
        self.stats["result_bytes"] += sizeof(result)
        consume(window, result)

    def _wait(self, future, cancel):
        """The future's result; cancel, a lost scheduler and dead workers become S1S2Errors.

        Waits on a done-callback event, not ``result(timeout=...)``: a result timeout that
        races the task's completion can break distributed's sync() under load.
        """
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        lost_since = None
        while not done.wait(POLL_S):
            _check_cancel(cancel)
            if self.client.status != "running":
                lost_since = lost_since or time.monotonic()
                if time.monotonic() - lost_since > LOST_SCHEDULER_S:
                    raise self._lost()
            else:
                lost_since = None
        try:
            return future.result()
        except CancelledError:  # distributed cancels every future when the scheduler is lost
            raise self._lost() from None
        except distributed.KilledWorker as exc:
            raise S1S2Error(f"A block task killed its Dask worker(s) repeatedly ({exc}); "
                            "nothing was written. Check the workers' memory and logs.") from None
        except S1S2Error as exc:  # raised by the block on a worker: say where it ran
            raise S1S2Error(f"{exc} (on a Dask worker of {self.address}: the inputs must be "
                            "readable there under the same path)") from None

    def _lost(self) -> S1S2Error:
        return S1S2Error(f"Lost the connection to the Dask scheduler at {self.address} during "
                         "the run; nothing was written. Restart the scheduler and run again.")

    def _cancel(self, futures: List) -> None:
        if self.client.status != "running":
            return
        try:
            self.client.cancel(futures, force=True)
        except Exception:  # noqa: BLE001 - best effort: the scheduler may be gone
            pass


def _check_cancel(cancel) -> None:
    if cancel is not None and cancel():
        raise Cancelled()


def _vsimem_files(sources: Sequence) -> Tuple[Tuple[str, bytes], ...]:
    """The toolkit's in-memory files (VRT chains) when a source lives in /vsimem."""
    if not any(s.path.startswith("/vsimem/") for s in sources):
        return ()
    files = []
    for name in gdal.ReadDirRecursive("/vsimem/") or []:
        path = "/vsimem/" + name
        if not path.startswith(_VSIMEM_PREFIX) or path.endswith("/"):
            continue
        handle = gdal.VSIFOpenL(path, "rb")
        if handle is None:
            continue
        try:
            gdal.VSIFSeekL(handle, 0, 2)
            size = gdal.VSIFTellL(handle)
            gdal.VSIFSeekL(handle, 0, 0)
            files.append((path, bytes(gdal.VSIFReadL(1, size, handle))))
        finally:
            gdal.VSIFCloseL(handle)
    return tuple(files)


# -- on the workers ------------------------------------------------------------------------
_readers: Dict[Tuple[str, int], object] = {}
_readers_lock = threading.Lock()
_MAX_READERS = 16


def _read_and_call(token: str, sources: list, dtype: str, shared: tuple, window):
    """A block task: open (once per pass and thread) the inputs, read ``window``, call."""
    _tune_malloc()
    call, vsimem, config = shared
    with _thread_config(config):
        reader = _worker_reader(token, sources, dtype, vsimem)
        arrays = reader.read(window)
    with one_blas_thread():  # as the local engine: pixels independent of BLAS threading
        return call(arrays, window)


_malloc_tuned = []


def _tune_malloc() -> None:
    """Large numpy temporaries from the heap again, as in a plain Python process.

    The nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also pins glibc's
    mmap threshold at 128 kB: every temporary array became a fresh mmap, paid again in
    page faults (the kriging fill used twice the CPU of the local engine: 4 M minor
    faults instead of 0.2 M on a 1372^2 tile). These are glibc's own dynamic maxima.
    """
    if _malloc_tuned:
        return
    _malloc_tuned.append(True)
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 32 * 2 ** 20)
        libc.mallopt(_M_TRIM_THRESHOLD, 64 * 2 ** 20)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


@contextlib.contextmanager
def _thread_config(config: dict):
    """The client's GDAL configuration of the pass, for this worker thread only."""
    previous = {key: gdal.GetThreadLocalConfigOption(key, None) for key in config}
    for key, value in config.items():
        gdal.SetThreadLocalConfigOption(key, value)
    try:
        yield
    finally:
        for key, value in previous.items():
            gdal.SetThreadLocalConfigOption(key, value)


def _worker_reader(token, sources, dtype, vsimem):
    from .streaming import BlockReader
    key = (token, threading.get_ident())
    with _readers_lock:
        reader = _readers.get(key)
    if reader is not None:
        return reader
    if gdal.GetCacheMax() > WORKER_GDAL_CACHE_MB * 2 ** 20:
        gdal.SetCacheMax(WORKER_GDAL_CACHE_MB * 2 ** 20)
    for path, content in vsimem:
        gdal.FileFromMemBuffer(path, content)
    reader = BlockReader(sources, dtype)
    with _readers_lock:
        while len(_readers) >= _MAX_READERS:  # earlier passes' readers: close their files
            _readers.pop(next(iter(_readers)))
        _readers[key] = reader
    return reader
