"""The small shared base of every S1S2 Processing algorithm.

It maps Processing parameters to core inputs (raster layer + band ->
:class:`BandSource`), bridges progress and cancel to ``QgsProcessingFeedback``,
turns core errors into ``QgsProcessingException`` and styles outputs: a ``.qml``
sidecar next to the GeoTIFF (QGIS loads it as the default style, also after
``qgis_process``) plus a layer post-processor when the result is loaded.
No QgsProject or iface here: algorithms must run in the modeler and qgis_process.
"""
import contextlib
import logging
import math
import os
import re

from osgeo import gdal
from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingParameterBand,
    QgsProcessingParameterEnum,
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
from ..core.summary import summarise_band
from ..core.units import holds_db_values
from ..core.writer import check_extension, write_sidecar

PLUGIN_DIR = os.path.dirname(os.path.dirname(__file__))
# The provider setting "Dask scheduler address" (ProcessingConfig keeps it under this key).
DASK_SETTING = engines.ENV_VAR
DASK_SETTING_KEY = "Processing/Configuration/" + DASK_SETTING
ICON_PATH = os.path.join(PLUGIN_DIR, "icons", "s1s2.svg")


def icon_path(family):
    """``icons/<family>.svg`` (indices, sar_filter, collocation, fusion, calibration, sea_ice,
    sar, time_series), or the provider icon when there is none."""
    path = os.path.join(PLUGIN_DIR, "icons", f"{family}.svg")
    return path if os.path.exists(path) else ICON_PATH


# Band descriptions that name an input (matched as whole words, case-insensitive): an unset
# band parameter takes the band so described.
BAND_NAMES = {"RED": ("B4", "B04", "RED"), "NIR": ("B8", "B08", "NIR"), "SCL": ("SCL",),
              "VV": ("VV",), "VH": ("VH",), "S1": ("HV",), "S2_GREEN": ("B3", "B03", "GREEN"),
              "ANGLE": ("ANGLE", "INCIDENCE_ANGLE", "INCIDENCEANGLE")}

# One default SCL cloud-class list for every algorithm and model (core.scl), the recipes'
# lists named as alternatives.
CLOUD_CLASSES_HELP = (
    "SCL classes masked as cloud (CLOUD_CLASSES): default 3,8,9,10 (cloud shadow, cloud "
    "medium and high probability, thin cirrus). Alternatives: 7,8,9,10 (Sentinel Hub "
    "data-fusion recipe: unclassified instead of shadow), 8,9 (openEO NDVI notebook); ranges "
    "such as 8-10 are accepted.")

UNIT_LINEAR, UNIT_DB, UNIT_AUTO = "linear", "db", "auto"
UNIT_CHOICES = [(UNIT_LINEAR, "Linear power"), (UNIT_DB, "dB"), (UNIT_AUTO, "Auto (detect)")]
UNIT_TEXT = {UNIT_LINEAR: "linear power", UNIT_DB: "dB"}


def band_description(path, band):
    """The GDAL description of one band ('' when none)."""
    dataset = gdal.Open(path)
    return (dataset.GetRasterBand(band).GetDescription() or "").strip()


def band_named(path, names):
    """The first band whose description names one of ``names`` as a whole word (B8 does not
    match B8A), or None."""
    if not names:
        return None
    pattern = re.compile(r"(?<![A-Z0-9])(%s)(?![A-Z0-9])" % "|".join(map(re.escape, names)),
                         re.IGNORECASE)
    dataset = gdal.Open(path)
    for band in range(1, dataset.RasterCount + 1):
        if pattern.search(dataset.GetRasterBand(band).GetDescription() or ""):
            return band
    return None


def _holds_db(source, progress=None, cancel=None):
    return holds_db_values(source)


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
    # Raster inputs that may be complex (SAR SLC), read as intensity |z|^2; others refuse it.
    COMPLEX_AS_INTENSITY = ()
    DISPLAY_NAME = ""
    GROUP = ""
    GROUP_ID = ""
    HELP = ""
    ADVANCED = ()  # parameter ids shown under Advanced in the dialog
    ICON = "s1s2"  # the family icon: icons/<ICON>.svg
    TAGS = ()      # words a toolbox search should find, beyond the name and group

    def name(self):
        return self.ALGORITHM_NAME

    def displayName(self):  # noqa: N802 - QGIS API
        return self.tr(self.DISPLAY_NAME)

    def group(self):
        return self.tr(self.GROUP)

    def groupId(self):  # noqa: N802
        return self.GROUP_ID

    def shortHelpString(self):  # noqa: N802
        text = self.HELP
        if self.COMPLEX_AS_INTENSITY:
            text += (f"\n\nComplex input ({', '.join(self.COMPLEX_AS_INTENSITY)}: SAR SLC, "
                     "e.g. CInt16 or CFloat32) is read as its intensity |z|^2 (the log says so).")
        return self.tr(text)

    def icon(self):
        return QIcon(icon_path(self.ICON))

    def tags(self):
        return [self.tr(tag) for tag in self.TAGS]

    def createInstance(self):  # noqa: N802
        return type(self)()

    # -- the log: inputs used and a result summary -------------------------------------
    def prepareAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API
        """Keeps the run's feedback for the helpers' log lines (one instance per run)."""
        self._feedback = feedback
        self._inputs_used = []
        self._styled = []
        return True

    def note_input(self, line):
        """Log one input choice (band, units) now and again in the result summary."""
        if getattr(self, "_feedback", None) is not None:
            self._feedback.pushInfo(line)
        getattr(self, "_inputs_used", []).append(line)

    def postProcessAlgorithm(self, context, feedback):  # noqa: N802 - QGIS API
        """Styles that could not be written (warnings), then the result summary of every
        algorithm: inputs used, then for each raster output its size, valid pixels (count
        and %), NoData count and min / mean / max."""
        for warning in getattr(self, "_style_warnings", []):
            feedback.pushWarning(warning)
        self._style_warnings = []
        styled = getattr(self, "_styled", [])
        if styled:
            feedback.pushInfo("Result summary")
            for line in getattr(self, "_inputs_used", []):
                feedback.pushInfo(f"  input  {line}")
            for path in styled:
                try:
                    feedback.pushInfo(f"  output {os.path.basename(path)}: "
                                      f"{summarise_band(path).text()}")
                except RuntimeError as exc:  # the summary must never fail a finished run
                    feedback.pushInfo(f"  output {os.path.basename(path)}: no summary ({exc})")
        return {}

    def tr(self, text):
        return QCoreApplication.translate(type(self).__name__, text)

    # -- parameters -------------------------------------------------------------------
    def addParameter(self, definition, createOutput=True):  # noqa: N802,N803 - QGIS API
        """QGIS's addParameter, flagging the ids in ``ADVANCED`` as Advanced (the dialog
        folds them away) so that every way of adding a parameter honours the list."""
        if definition.name() in self.ADVANCED:
            definition.setFlags(definition.flags() |
                                QgsProcessingParameterDefinition.Flag.FlagAdvanced)
        return super().addParameter(definition, createOutput)

    def add_band_input(self, layer_id, band_id, description, default_band=None, optional=False,
                       band_names=None):
        """A raster layer parameter plus a band parameter bound to it.

        An unset band is chosen from the band descriptions (``band_names``, e.g.
        ("B4", "B04") for red; the default of ``BAND_NAMES[layer_id]``), else band 1 of a
        single-band raster, else ``default_band``; :meth:`band_source` logs which. The band
        parameter is flagged optional because QGIS 3.22's qgis_process does not apply a
        band parameter's default and refuses to run without an explicit band.
        """
        names = tuple(BAND_NAMES.get(layer_id, ()) if band_names is None else band_names)
        if default_band is None and not names:
            default_band = 1  # any raster (e.g. the input of a filter): band 1, logged
        self.addParameter(QgsProcessingParameterRasterLayer(
            layer_id, self.tr(description), optional=optional))
        band_label = f"{description}: band" + (" (not set: by band name)" if names else "")
        self.addParameter(QgsProcessingParameterBand(
            band_id, self.tr(band_label), defaultValue=default_band,
            parentLayerParameterName=layer_id, optional=True))
        self._band_names = dict(getattr(self, "_band_names", {}), **{band_id: names})

    def add_units_parameter(self, units_id, description="Input units"):
        """Linear power / dB / Auto (detect), default Auto; read with :meth:`units`.

        Auto is the last option so that 0 (linear) and 1 (dB) keep their meaning in scripts.
        """
        self.addParameter(QgsProcessingParameterEnum(
            units_id, self.tr(description), options=[self.tr(t) for _, t in UNIT_CHOICES],
            defaultValue=len(UNIT_CHOICES) - 1))

    def add_raster_output(self, output_id, description):
        self.addParameter(QgsProcessingParameterRasterDestination(output_id, self.tr(description)))

    def in_users_words(self, message):
        """A core message that starts with a parameter id ("CLOUD_CLASSES: ...") names the
        parameter as the dialog shows it, with the id: "SCL classes masked as cloud
        (CLOUD_CLASSES): ..."."""
        match = re.match(r"([A-Z][A-Z0-9_]*): ", message)
        if match and self.parameterDefinition(match.group(1)) is not None:
            return self.label(match.group(1)) + message[len(match.group(1)):]
        return message

    def label(self, name):
        """A parameter as the dialog shows it, with its id for qgis_process users:
        ``Sentinel-1 units (S1_UNITS)``."""
        definition = self.parameterDefinition(name)
        return f"{definition.description()} ({name})" if definition is not None else name

    def gdal_layer(self, parameters, context, layer_id):
        """The file-based (GDAL) raster layer of a parameter, or None when an optional one is
        unset; a missing required layer or another provider is a QgsProcessingException."""
        layer = self.parameterAsRasterLayer(parameters, layer_id, context)
        if layer is None:
            if self.parameterDefinition(layer_id).flags() & \
                    QgsProcessingParameterDefinition.Flag.FlagOptional:
                return None
            raise QgsProcessingException(self.tr(f"{self.label(layer_id)}: no raster layer given."))
        check_gdal_layer(layer, self.label(layer_id))
        return layer

    def band_source(self, parameters, context, layer_id, band_id=None, label=None, **options):
        """The BandSource of a raster layer parameter, or None when an optional one is unset.

        The band used, and why (chosen, named by the band descriptions, the only band), is
        logged and repeated in the result summary."""
        layer = self.gdal_layer(parameters, context, layer_id)
        if layer is None:
            return None
        path = gdal_path(layer.source())
        if band_id is None:
            band, why = 1, "band 1"
        else:
            chosen = (self.parameterAsInt(parameters, band_id, context)
                      if parameters.get(band_id) not in (None, "") else 0)
            band, why = (chosen, "as chosen") if chosen else \
                self.default_band(layer, path, band_id)
        if band > layer.bandCount():
            raise QgsProcessingException(self.tr(
                f"{self.label(band_id)}: band {band} requested but '{layer.name()}' has "
                f"{layer.bandCount()} band(s)."))
        description = band_description(path, band)
        named = f" '{description}'" if description else ""
        self.note_input(f"{self.label(layer_id)}: band {band}{named} of "
                        f"{os.path.basename(path)} ({why})")
        self.check_complex(path, band, layer_id)
        warning = role_contradiction(layer_id, path, band, description)
        if warning:
            self._warnings = getattr(self, "_warnings", []) + [warning]
        return BandSource(path, band, label or layer_id, **options)

    def default_band(self, layer, path, band_id):
        """(band, why) for an unset band parameter: the band whose description names it,
        the only band, or the parameter's default; else a QgsProcessingException."""
        names = getattr(self, "_band_names", {}).get(band_id, ())
        described = band_named(path, names)
        if described:
            return described, "named by its band description"
        if layer.bandCount() == 1:
            return 1, "the only band"
        default = self.parameterDefinition(band_id).defaultValue()
        if default not in (None, "", 0):
            return int(default), "the default band"
        wanted = "/".join(names) or "the band to use"
        raise QgsProcessingException(self.tr(
            f"{self.label(band_id)}: '{layer.name()}' has {layer.bandCount()} bands and no "
            f"band description names {wanted}; choose the band."))

    def units(self, parameters, context, units_id, sources):
        """'linear' or 'db' from a :meth:`add_units_parameter` choice; Auto detects it from
        ``sources`` (unit metadata, else mostly negative values mean dB) and logs it."""
        choice = UNIT_CHOICES[self.parameterAsEnum(parameters, units_id, context)][0]
        feedback = getattr(self, "_feedback", None) or QgsProcessingFeedback()
        if choice == UNIT_LINEAR:  # dB read as linear power gives plausible-looking nonsense
            for source in sources:
                if source is not None and self.run_core(feedback, _holds_db, source):
                    raise QgsProcessingException(self.tr(
                        f"{self.label(units_id)}: {source.name} holds dB values (unit metadata "
                        "'dB' or mostly negative values) but is read as linear power; choose "
                        "dB or Auto (detect)."))
        if choice != UNIT_AUTO:
            self.note_input(f"{self.label(units_id)}: {UNIT_TEXT[choice]} (as chosen)")
            return choice
        found = {}
        for source in sources:
            if source is not None:
                holds_db = self.run_core(feedback, _holds_db, source)
                found[source.name] = UNIT_DB if holds_db else UNIT_LINEAR
        if not found:
            self.note_input(f"{self.label(units_id)}: not used (no Sentinel-1 input)")
            return UNIT_LINEAR
        kinds = set(found.values())
        if len(kinds) > 1:
            detail = ", ".join(f"{name} {UNIT_TEXT[kind]}" for name, kind in found.items())
            raise QgsProcessingException(self.tr(
                f"{self.label(units_id)}: Auto found different units ({detail}); convert one "
                "input (Convert backscatter between linear and dB) or choose the units."))
        detected = kinds.pop() if kinds else UNIT_LINEAR
        self.note_input(f"{self.label(units_id)}: Auto (detect) found {UNIT_TEXT[detected]} "
                        f"in {', '.join(found)} (unit metadata, else the sign of the values)")
        return detected

    def check_complex(self, path, band, layer_id):
        """A complex band (SAR SLC): intensity |z|^2 where the algorithm takes SAR backscatter
        (its COMPLEX_AS_INTENSITY inputs; noted in the log), else a QgsProcessingException."""
        data_type = complex_type(path, band)
        if data_type is None:
            return
        if layer_id.split(" ")[0] not in self.COMPLEX_AS_INTENSITY:
            raise QgsProcessingException(
                f"{layer_id}: band {band} of '{path}' is complex ({data_type}); {self.name()} "
                "needs real values. Convert it first (the SAR algorithms read a complex band "
                "as its intensity |z|^2).")
        self._notes = getattr(self, "_notes", []) + [
            f"{layer_id}: band {band} is complex ({data_type}): its intensity |z|^2 is used."]

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
            raise QgsProcessingException(self.in_users_words(str(exc))) from None

    def output_path(self, parameters, context, output_id):
        path = self.parameterAsOutputLayer(parameters, output_id, context)
        if not path:
            raise QgsProcessingException(self.tr(f"{output_id}: no output file given."))
        check_output_extension(path, output_id)
        return path

    # -- running the core -------------------------------------------------------------
    @staticmethod
    def core_callbacks(feedback):
        """Plain progress/cancel callables for the core."""
        return {"progress": feedback.setProgress, "cancel": feedback.isCanceled}

    def run_core(self, feedback, func, *args, **kwargs):
        """Call a core function with progress/cancel bridged; core errors -> QgsProcessingException;
        the core's notes (the ``s1s2`` logger: values treated as NoData...) go to the log.

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
            for note in getattr(self, "_notes", []):
                feedback.pushInfo(note)
            for warning in getattr(self, "_warnings", []):
                feedback.pushWarning(warning)
            self._notes = self._warnings = []
            with engines.use_engine(engine), core_log_to(feedback):
                result = func(*args, **kwargs)
            if engine is not engines.LOCAL and engine.stats["passes"] > passes:
                feedback.pushInfo(engine.summary())
            return result
        except Cancelled as exc:
            raise QgsProcessingException(self.tr(str(exc))) from None
        except S1S2Error as exc:
            raise QgsProcessingException(self.tr(self.in_users_words(str(exc)))) from None
        except MemoryError:
            raise QgsProcessingException(self.tr(
                "Out of memory: close other programs or process a smaller extent.")) from None

    def style_output(self, context, output_path, style, band=1):
        """Write ``<output>.qml`` for ``style`` and apply it when the layer is loaded.

        A style that cannot be written is a warning (reported after the run), not a failure.
        """
        getattr(self, "_styled", []).append(output_path)  # for the result summary
        qml_path = qml_path_for(output_path)
        warning = write_sidecar(qml_path, qml_for(style, band))
        if warning is not None:
            self._style_warnings = getattr(self, "_style_warnings", []) + [warning]
            return None
        if context.willLoadLayerOnCompletion(output_path):
            details = context.layerToLoadOnCompletionDetails(output_path)
            details.setPostProcessor(StylePostProcessor.create(qml_path))
        return qml_path


class _FeedbackHandler(logging.Handler):
    def __init__(self, feedback):
        super().__init__(logging.INFO)
        self.feedback = feedback

    def emit(self, record):
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            self.feedback.pushWarning(message)
        else:
            self.feedback.pushInfo(message)


@contextlib.contextmanager
def core_log_to(feedback):
    """Forward the core's ``s1s2`` log records to a Processing feedback while running."""
    handler = _FeedbackHandler(feedback)
    logger = logging.getLogger("s1s2")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


# What a band description may say about the band, and what each role expects.
_BAND_NAME = re.compile(r"(?<![A-Z0-9])(B0?\d{1,2}A?|VV|VH|HH|HV|SCL)(?![A-Z0-9])")
EXPECTED_ROLES = {"RED": {"B4"}, "NIR": {"B8", "B8A"}, "S2_GREEN": {"B3"}, "SCL": {"SCL"},
                  "VV": {"VV"}, "VH": {"VH"}, "S1": {"HV"}}


def role_contradiction(layer_id, path, band, description):
    """A warning when the band's description names another band than the role expects
    (RED given a band described 'B8' or 'VH': swapped layers), else None."""
    expected = EXPECTED_ROLES.get(layer_id)
    if not expected:
        return None
    named = {re.sub(r"^B0(?=\d)", "B", name) for name in _BAND_NAME.findall(description.upper())}
    if not named or named & expected:
        return None
    return (f"{layer_id}: band {band} of '{path}' is described as '{description}', not "
            f"{' or '.join(sorted(expected))}: are the layers swapped?")


def complex_type(path, band):
    """GDAL's name of the band's data type when it is complex (CInt16, CFloat32...), else None."""
    try:
        dataset = gdal.Open(path)
        data_type = dataset.GetRasterBand(band).DataType
    except (RuntimeError, AttributeError):
        return None  # unreadable: the core says so with its own message
    return gdal.GetDataTypeName(data_type) if gdal.DataTypeIsComplex(data_type) else None


def check_output_extension(path, output_id):
    """QgsProcessingException unless ``path`` is a GeoTIFF name (.tif, .tiff). An existing
    file is left to the core's check, which first says whether it is one of the inputs."""
    if os.path.isfile(path):
        return
    try:
        check_extension(path, output_id)
    except S1S2Error as exc:
        raise QgsProcessingException(str(exc)) from None


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
    """The GDAL dataset name of a QGIS gdal-provider layer source (options after '|' dropped).

    A '|' can be part of a file name (``pipe|name.tif``): the longest '|'-joined prefix that
    exists on disk is the file; otherwise everything before the first '|'.
    """
    parts = layer_source.split("|")
    for end in range(len(parts), 1, -1):
        candidate = "|".join(parts[:end])
        if os.path.exists(candidate):
            return candidate
    return parts[0]
