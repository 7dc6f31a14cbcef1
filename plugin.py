"""The QGIS plugin: registers the S1S2 Processing provider, nothing else."""
import sys

from qgis.core import QgsApplication

from .algorithms.provider import S1S2Provider


class S1S2Plugin:
    def __init__(self, iface):
        self.iface = iface
        self.provider = None

    def initProcessing(self):  # noqa: N802 - called by QGIS and qgis_process
        if self.provider is None:
            self.provider = S1S2Provider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):  # noqa: N802
        self.initProcessing()

    def unload(self):
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        dask_engine = sys.modules.get(__package__ + ".core.dask_engine")
        if dask_engine is not None:  # loaded only when a scheduler was used
            dask_engine.disconnect_all()
