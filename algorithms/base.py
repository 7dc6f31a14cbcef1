"""The small shared base of every S1S2 Processing algorithm.

It maps Processing parameters to core inputs (raster layer + band ->
:class:`BandSource`), bridges progress and cancel to ``QgsProcessingFeedback``,
turns core errors into ``QgsProcessingException`` and styles outputs: a ``.qml``
sidecar next to the GeoTIFF (QGIS loads it as the default style, also after
``qgis_process``) plus a layer post-processor when the result is loaded.
No QgsProject or iface here: algorithms must run in the modeler and qgis_process.
"""
import math
import os

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingParameterBand,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsSettings,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from ..core import engine as engines
from ..core.errors import Cancelled, S1S2Error
from ..core.raster import BandSource
from ..core.scl import parse_classes
from ..core.styles import qml_for
from ..core.writer import write_sidecar

PLUGIN_DIR = os.path.dirname(os.path.dirname(__file__))
# The provider setting "Dask scheduler address" (ProcessingConfig keeps it under this key).
DASK_SETTING = engines.ENV_VAR
DASK_SETTING_KEY = "Processing/Configuration/" + DASK_SETTING
ICON_PATH = os.path.join(PLUGIN_DIR, "icons", "s1s2.svg")


class StylePostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Applies a ``.qml`` style to an output layer when QGIS loads it.

    QGIS does not take ownership of post-processors, so instances are kept in
    ``_alive`` until they have run (the QuickOSM pattern).
    """

    _alive = []

    def __init__(self, qml_path):
        super().__init__()
        self.qml_path = qml_path

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 - QGIS API
        if layer is not None and layer.isValid():
            message, ok = layer.loadNamedStyle(self.qml_path)
            if not ok:
                feedback.reportError(f"Could not apply the style {self.qml_path}: {message}")
            layer.triggerRepaint()
        if self in StylePostProcessor._alive:
            StylePostProcessor._alive.remove(self)

    @classmethod
    def create(cls, qml_path):
        processor = cls(qml_path)
        cls._alive.append(processor)
        return processor


def qml_path_for(raster_path):
    return os.path.splitext(raster_path)[0] + ".qml"


class S1S2Algorithm(QgsProcessingAlgorithm):
    """Base class: subclasses set the class constants and implement
    ``initAlgorithm`` and ``processAlgorithm`` with the helpers below."""

    ALGORITHM_NAME = ""
    DISPLAY_NAME = ""
    GROUP = ""
    GROUP_ID = ""
    HELP = ""

    def name(self):
        return self.ALGORITHM_NAME

    def displayName(self):  # noqa: N802 - QGIS API
        return self.tr(self.DISPLAY_NAME)

    def group(self):
        return self.tr(self.GROUP)

    def groupId(self):  # noqa: N802
        return self.GROUP_ID

    def shortHelpString(self):  # noqa: N802
        return self.tr(self.HELP)

    def icon(self):
        return QIcon(ICON_PATH)

    def createInstance(self):  # noqa: N802
        return type(self)()

    def tr(self, text):
        return QCoreApplication.translate(type(self).__name__, text)

    # -- parameters -------------------------------------------------------------------
    def add_band_input(self, layer_id, band_id, description, default_band=1, optional=False):
        """A raster layer parameter plus a band parameter bound to it.

        The band parameter is flagged optional so that an unset band means its
        default: QGIS 3.22's qgis_process does not apply a band parameter's
        default and would otherwise refuse to run without an explicit band.
        """
        self.addParameter(QgsProcessingParameterRasterLayer(
            layer_id, self.tr(description), optional=optional))
        self.addParameter(QgsProcessingParameterBand(
            band_id, self.tr(f"{description}: band"), defaultValue=default_band,
            parentLayerParameterName=layer_id, optional=True))

    def add_raster_output(self, output_id, description):
        self.addParameter(QgsProcessingParameterRasterDestination(output_id, self.tr(description)))

    def gdal_layer(self, parameters, context, layer_id):
        """The file-based (GDAL) raster layer of a parameter, or None when an optional one is
        unset; a missing required layer or another provider is a QgsProcessingException."""
        layer = self.parameterAsRasterLayer(parameters, layer_id, context)
        if layer is None:
            if self.parameterDefinition(layer_id).flags() & \
                    QgsProcessingParameterDefinition.Flag.FlagOptional:
                return None
            raise QgsProcessingException(self.tr(f"{layer_id}: no raster layer given."))
        check_gdal_layer(layer, layer_id)
        return layer

    def band_source(self, parameters, context, layer_id, band_id=None, label=None, **options):
        """The BandSource of a raster layer parameter, or None when an optional one is unset."""
        layer = self.gdal_layer(parameters, context, layer_id)
        if layer is None:
            return None
        band = 1
        if band_id is not None:
            default = self.parameterDefinition(band_id).defaultValue()
            band = int(default) if default else 1
            if parameters.get(band_id) not in (None, ""):
                band = self.parameterAsInt(parameters, band_id, context) or band
        if band > layer.bandCount():
            raise QgsProcessingException(self.tr(
                f"{band_id}: band {band} requested but '{layer.name()}' has "
                f"{layer.bandCount()} band(s)."))
        return BandSource(gdal_path(layer.source()), band, label or layer_id, **options)

    def parameterAsInt(self, parameters, name, context):  # noqa: N802 - QGIS API
        """QGIS's value, but a band, window or count that is not a whole number (2.5, 'abc')
        or a band below 1 is an error naming the parameter instead of being rounded."""
        check_whole_number(self.parameterDefinition(name), parameters.get(name))
        return super().parameterAsInt(parameters, name, context)

    @staticmethod
    def optional_number(parameters, name):
        """The value of an optional number parameter, or None when it is unset.

        An unset optional number means "decide from the data" (e.g. BOA_ADD_OFFSET
        read from the product), which parameterAsDouble cannot tell from 0.
        """
        value = parameters.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if hasattr(value, "isNull") and value.isNull():  # a NULL QVariant
            return None
        try:
            return float(value)
        except (TypeError, ValueError):
            raise QgsProcessingException(f"{name}: {value!r} is not a number.") from None

    def cloud_classes(self, parameters, context, name):
        """SCL classes of a comma-separated text parameter; bad text -> QgsProcessingException."""
        try:
            return tuple(parse_classes(self.parameterAsString(parameters, name, context)))
        except S1S2Error as exc:
            raise QgsProcessingException(str(exc)) from None

    def output_path(self, parameters, context, output_id):
        path = self.parameterAsOutputLayer(parameters, output_id, context)
        if not path:
            raise QgsProcessingException(self.tr(f"{output_id}: no output file given."))
        return path

    # -- running the core -------------------------------------------------------------
    @staticmethod
    def core_callbacks(feedback):
        """Plain progress/cancel callables for the core."""
        return {"progress": feedback.setProgress, "cancel": feedback.isCanceled}

    def run_core(self, feedback, func, *args, **kwargs):
        """Call a core function with progress/cancel bridged; core errors -> QgsProcessingException.

        The core's passes run on the engine chosen by S1S2_DASK_SCHEDULER or the provider
        setting (empty: local); the log says where the run went.
        """
        kwargs.update(self.core_callbacks(feedback))
        try:
            engine = engines.engine_for(engines.scheduler_address(dask_scheduler_setting()))
            if not getattr(self, "_engine_logged", False):
                self._engine_logged = True
                feedback.pushInfo(engines.describe(engine))
                if engine is not engines.LOCAL:
                    engine.reset_stats()
            passes = engine.stats["passes"] if engine is not engines.LOCAL else 0
            with engines.use_engine(engine):
                result = func(*args, **kwargs)
            if engine is not engines.LOCAL and engine.stats["passes"] > passes:
                feedback.pushInfo(engine.summary())
            return result
        except Cancelled as exc:
            raise QgsProcessingException(self.tr(str(exc))) from None
        except S1S2Error as exc:
            raise QgsProcessingException(self.tr(str(exc))) from None
        except MemoryError:
            raise QgsProcessingException(self.tr(
                "Out of memory: close other programs or process a smaller extent.")) from None

    def style_output(self, context, output_path, style, band=1):
        """Write ``<output>.qml`` for ``style`` and apply it when the layer is loaded.

        A style that cannot be written is a warning (reported after the run), not a failure.
        """
        qml_path = qml_path_for(output_path)
        warning = write_sidecar(qml_path, qml_for(style, band))
        if warning is not None:
            self._style_warnings = getattr(self, "_style_warnings", []) + [warning]
            return None
        if context.willLoadLayerOnCompletion(output_path):
            details = context.layerToLoadOnCompletionDetails(output_path)
            details.setPostProcessor(StylePostProcessor.create(qml_path))
        return qml_path

    def postProcessAlgorithm(self, context, feedback):  # noqa: N802 - QGIS API
        for warning in getattr(self, "_style_warnings", []):
            feedback.pushWarning(warning)
        self._style_warnings = []
        return {}


def check_whole_number(definition, value):
    """QgsProcessingException unless ``value`` (as given: number or text) is a whole number;
    band parameters start at 1 (at 0 where 0 is their default, meaning 'all bands')."""
    if definition is None or value is None or isinstance(value, bool):
        return
    name = definition.name()
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return
        try:
            value = float(text)
        except ValueError:
            raise QgsProcessingException(f"{name}: '{text}' is not a whole number.") from None
    if not isinstance(value, (int, float)):
        return  # expressions, model outputs...: QGIS evaluates them
    if not (math.isfinite(value) and float(value).is_integer()):
        raise QgsProcessingException(f"{name}: {value:g} is not a whole number.")
    if isinstance(definition, QgsProcessingParameterBand):
        lowest = 0 if definition.defaultValue() == 0 else 1
        if value < lowest:
            raise QgsProcessingException(
                f"{name}: band {int(value)} does not exist; bands are numbered from 1.")


def dask_scheduler_setting():
    """The provider setting 'Dask scheduler address' ('' = local)."""
    value = QgsSettings().value(DASK_SETTING_KEY, "")
    return str(value or "").strip()


def check_gdal_layer(layer, name):
    """QgsProcessingException unless ``layer`` is read by GDAL (the core opens files)."""
    if layer.providerType() != "gdal":
        raise QgsProcessingException(
            f"{name}: '{layer.name()}' is a {layer.providerType()} layer; only file-based "
            "(GDAL) rasters are supported. Save it as a GeoTIFF first.")


def gdal_path(layer_source):
    """The GDAL dataset name of a QGIS gdal-provider layer source (options after '|' dropped)."""
    return layer_source.split("|")[0]
