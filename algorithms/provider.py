"""The S1S2 Toolkit Processing provider (id ``s1s2``)."""
from qgis.core import QgsApplication, QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .anglemask import AngleMask
from ..core.writer import SUPPORTED_EXTENSIONS
from .base import DASK_SETTING, ICON_PATH
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

    def load(self):
        """Registers the provider setting 'Dask scheduler address' as QGIS's own providers do
        (Settings > Options > Processing > Providers > S1S2 Toolkit)."""
        config = _processing_config()
        if config is not None:
            config_class, setting_class = config
            config_class.settingIcons[self.name()] = self.icon()
            config_class.addSetting(setting_class(
                self.name(), DASK_SETTING,
                "Dask scheduler address (e.g. tcp://127.0.0.1:8786; empty = run locally; "
                "the environment variable S1S2_DASK_SCHEDULER overrides it)", ""))
            config_class.readSettings()
        self.refreshAlgorithms()
        return True

    def unload(self):
        config = _processing_config()
        if config is not None and DASK_SETTING in config[0].settings:
            config[0].removeSetting(DASK_SETTING)

    def loadAlgorithms(self):  # noqa: N802
        for cls in ALGORITHM_CLASSES:
            self.addAlgorithm(cls())
        self.load_models()

    def load_models(self):
        """The shipped models/*.model3 as algorithms of this provider (s1s2:fusionchain):
        in the toolbox, runnable by id from qgis_process, usable inside other models."""
        self._models = shipped_models({a.group(): a.groupId() for a in self.algorithms()})
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
        # The core writes tiled, compressed GeoTIFF only (and refuses other names).
        return list(SUPPORTED_EXTENSIONS)

    def defaultRasterFileExtension(self):  # noqa: N802
        return "tif"


def _processing_config():
    """(ProcessingConfig, Setting) of QGIS's Processing plugin, or None without it (the
    setting is then read from QgsSettings only)."""
    try:
        from processing.core.ProcessingConfig import ProcessingConfig, Setting
    except ImportError:
        return None
    return ProcessingConfig, Setting
