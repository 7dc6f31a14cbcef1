"""The S1S2 Toolkit Processing provider (id ``s1s2``)."""
from qgis.core import QgsApplication, QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .anglemask import AngleMask
from .base import ICON_PATH
from .calibrate import Calibrate
from .collocate import Collocate
from .collocateswath import CollocateSwath
from .dbconvert import DbConvert
from .focalmedian import FocalMedian
from .fusendvi import FuseNdvi
from .leefilter import LeeFilter
from .models import shipped_models
from .ndvi import Ndvi
from .refinedlee import RefinedLee
from .rvi4s1 import Rvi4s1
from .seaice import SeaIce
from .stackstatistics import StackStatistics
from .vvvhratio import VvVhRatio

# One line per algorithm; keep alphabetical.
ALGORITHM_CLASSES = [
    AngleMask,
    Calibrate,
    Collocate,
    CollocateSwath,
    DbConvert,
    FocalMedian,
    FuseNdvi,
    LeeFilter,
    Ndvi,
    RefinedLee,
    Rvi4s1,
    SeaIce,
    StackStatistics,
    VvVhRatio,
]


class S1S2Provider(QgsProcessingProvider):
    def id(self):
        return "s1s2"

    def name(self):
        return "S1S2 Toolkit"

    def longName(self):  # noqa: N802 - QGIS API
        return "S1S2 Toolkit: Sentinel-1 and Sentinel-2 processing"

    def icon(self):
        return QIcon(ICON_PATH)

    def loadAlgorithms(self):  # noqa: N802
        for cls in ALGORITHM_CLASSES:
            self.addAlgorithm(cls())
        self.load_models()

    def load_models(self):
        """The shipped models/*.model3 as algorithms of this provider (s1s2:fusionchain):
        in the toolbox, runnable by id from qgis_process, usable inside other models."""
        self._models = shipped_models()
        for model in self._models:
            self.addAlgorithm(model)
        registry = QgsApplication.processingRegistry()
        if registry.providerById(self.id()) is self:
            self._complete_models()
        else:  # being registered: the children's algorithms resolve once it is
            registry.providerAdded.connect(self._complete_models)

    def _complete_models(self, provider_id=None):
        if provider_id not in (None, self.id()):
            return
        try:
            QgsApplication.processingRegistry().providerAdded.disconnect(self._complete_models)
        except TypeError:  # not connected
            pass
        for model in self._models:
            model.complete()

    def supportedOutputRasterLayerExtensions(self):  # noqa: N802
        # The core writes tiled, compressed GeoTIFF only.
        return ["tif"]

    def defaultRasterFileExtension(self):  # noqa: N802
        return "tif"
