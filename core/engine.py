"""Which engine runs the block passes of :func:`stream` and :func:`scan`.

Every algorithm is a sequence of passes over its rasters (block maps with a
halo, whole-scene reductions of small per-block results). The passes are
written once, against :mod:`.streaming`; the engine only decides where the
blocks are computed:

* the local engine (default): a small thread pool in this process;
* the Dask engine (:mod:`.dask_engine`): block tasks on a ``dask.distributed``
  cluster that read their own windows, the results written here in block order.

The engine of a call is its ``engine=`` argument, else the *current engine* of
the calling context (a context variable), set with :func:`use_engine` by the
Processing wrappers from the provider setting or ``S1S2_DASK_SCHEDULER``.
"""
import contextlib
import contextvars
import os
from typing import Optional

from .errors import S1S2Error

ENV_VAR = "S1S2_DASK_SCHEDULER"
LOCAL = "local"

_current = contextvars.ContextVar("s1s2_engine", default=LOCAL)


def current_engine():
    """The engine of the calling context: ``LOCAL`` or a :class:`DaskEngine`."""
    return _current.get()


@contextlib.contextmanager
def use_engine(engine):
    """Run the ``with`` body on ``engine`` (``LOCAL``, a DaskEngine or a scheduler address)."""
    if isinstance(engine, str) or engine is None:
        engine = engine_for(engine)
    token = _current.set(engine)
    try:
        yield engine
    finally:
        _current.reset(token)


def resolve(engine=None):
    """``engine`` if given (an address is connected to), else the current engine."""
    if engine is None:
        return current_engine()
    if isinstance(engine, str):
        return engine_for(engine)
    return engine


def scheduler_address(setting: Optional[str] = None) -> str:
    """The scheduler to use: ``S1S2_DASK_SCHEDULER`` when set, else ``setting``; '' = local."""
    address = os.environ.get(ENV_VAR, "").strip()
    return address or (setting or "").strip()


def engine_for(address: Optional[str]):
    """``LOCAL`` for an empty address, else the (cached) Dask engine of that scheduler.

    Raises S1S2Error when dask/distributed are missing or the scheduler cannot be
    reached within a few seconds.
    """
    address = (address or "").strip()
    if not address or address.lower() == LOCAL:
        return LOCAL
    try:
        from . import dask_engine
    except ImportError as exc:
        raise S1S2Error(
            f"A Dask scheduler ({address}) is set but the Dask engine cannot be loaded "
            f"({exc}). Install dask and distributed into QGIS's Python (python3 -m pip install "
            f"'dask>=2024.8' 'distributed>=2024.8'), or clear the provider setting 'Dask "
            f"scheduler address' and the environment variable {ENV_VAR} to run locally."
        ) from None
    return dask_engine.connect(address)


def describe(engine) -> str:
    """One line saying where a run goes (for the Processing log)."""
    if engine is LOCAL or engine == LOCAL:
        return "Engine: local (this process, block streaming)."
    return engine.describe()
