"""One BLAS thread while blocks are computed, on every engine.

OpenBLAS splits some operations differently with more threads, which can move the
last bit of a result (seen in the kriging fill: one pixel in 810 000 differed by one
ulp between OPENBLAS_NUM_THREADS=1 and 2). Blocks already run on parallel threads
or processes, so extra BLAS threads only oversubscribe the cores; computing every
block with one BLAS thread makes the pixels independent of the machine's core count
and equal between the local engine and Dask workers (whose nannies set one thread).

OpenBLAS is found among the loaded libraries (Linux ``/proc/self/maps``); elsewhere,
or with another BLAS, this does nothing.
"""
import contextlib
import ctypes
import threading

_SYMBOLS = (("openblas_get_num_threads", "openblas_set_num_threads"),
            ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
            ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"))
_lock = threading.Lock()
_users = 0
_saved = []
_controls = None


def _find_controls():
    """[(get, set)] of every loaded OpenBLAS (numpy's and scipy's may differ)."""
    found, seen = [], set()
    try:
        with open("/proc/self/maps") as handle:
            paths = {line.split()[-1] for line in handle if "blas" in line.lower()
                     and line.split()[-1].startswith("/")}
    except OSError:
        return found
    for path in sorted(paths):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for get_name, set_name in _SYMBOLS:
            getter, setter = getattr(library, get_name, None), getattr(library, set_name, None)
            if getter is not None and setter is not None:
                key = ctypes.cast(setter, ctypes.c_void_p).value
                if key not in seen:
                    seen.add(key)
                    found.append((getter, setter))
                break
    return found


@contextlib.contextmanager
def one_blas_thread():
    """Run the ``with`` body with OpenBLAS on one thread (nested and thread-safe)."""
    global _users, _controls
    with _lock:
        if _controls is None:
            import numpy  # noqa: F401 - loads the BLAS to be found
            _controls = _find_controls()
        if _users == 0:
            _saved[:] = [getter() for getter, _ in _controls]
            for _, setter in _controls:
                setter(1)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                for (_, setter), count in zip(_controls, _saved):
                    setter(count)
