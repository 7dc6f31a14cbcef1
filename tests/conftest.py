"""Shared test set-up.

The repository root is the plugin folder; installed it is named ``s1s2_toolkit``.
Tests import it under that name through ``.build/plugins/s1s2_toolkit`` (a
symlink to the root), which is also the QGIS_PLUGINPATH of qgis_process runs.
"""
import os
import sys

import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS_DIR)
PLUGINS_DIR = os.path.join(ROOT, ".build", "plugins")


def _link_plugin():
    os.makedirs(PLUGINS_DIR, exist_ok=True)
    link = os.path.join(PLUGINS_DIR, "s1s2_toolkit")
    if not os.path.islink(link):
        os.symlink(os.path.relpath(ROOT, PLUGINS_DIR), link)


_link_plugin()
for path in (PLUGINS_DIR, TESTS_DIR):
    if path not in sys.path:
        sys.path.insert(0, path)

from testkit import DATA_DIR, QgisProcess  # noqa: E402


@pytest.fixture(scope="session")
def data_dir():
    return DATA_DIR


@pytest.fixture(scope="session")
def qgis_process(tmp_path_factory):
    """Runs ``qgis_process --json run`` with the plugin installed and enabled."""
    return QgisProcess(str(tmp_path_factory.mktemp("qgis-config")), PLUGINS_DIR)


_KEEP_ALIVE = []  # QGIS does not keep the Python side of a provider alive: we must


@pytest.fixture
def s1s2_provider(qgis_processing):
    """The S1S2 provider registered in the pytest-qgis application."""
    from qgis.core import QgsApplication

    from s1s2_toolkit.algorithms.provider import S1S2Provider

    registry = QgsApplication.processingRegistry()
    provider = registry.providerById("s1s2")
    if provider is None:
        provider = S1S2Provider()
        _KEEP_ALIVE.append(provider)
        registry.addProvider(provider)
    return provider


@pytest.fixture(scope="session")
def dask_cluster():
    """A real dask scheduler and two single-thread workers on 127.0.0.1 (torn down always)."""
    pytest.importorskip("distributed")
    from daskcluster import serve_cluster

    yield from serve_cluster(n_workers=2)
