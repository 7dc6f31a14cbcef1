"""s1s2:ndvi - NDVI from Sentinel-2 B04/B08 with an optional SCL cloud mask."""
from qgis.core import (
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..core.indices import (
    DEFAULT_QUANTIFICATION,
    NEGATIVE_CLAMP,
    NEGATIVE_KEEP,
    NEGATIVE_MASK,
    ndvi_file,
    resolve_boa_add_offset,
)
from ..core.scl import DEFAULT_CLOUD_CLASSES
from ..core.styles import NDVI_RAMP
from .base import CLOUD_CLASSES_HELP, S1S2Algorithm


def _resolved_offset(sources, progress=None, cancel=None):
    return resolve_boa_add_offset(sources, None)


class Ndvi(S1S2Algorithm):
    RED = "RED"
    RED_BAND = "RED_BAND"
    NIR = "NIR"
    NIR_BAND = "NIR_BAND"
    SCL = "SCL"
    SCL_BAND = "SCL_BAND"
    CLOUD_CLASSES = "CLOUD_CLASSES"
    CLOUD_BUFFER = "CLOUD_BUFFER"
    BOA_ADD_OFFSET = "BOA_ADD_OFFSET"
    QUANTIFICATION_VALUE = "QUANTIFICATION_VALUE"
    NEGATIVE_REFLECTANCE = "NEGATIVE_REFLECTANCE"
    OUTPUT = "OUTPUT"
    # (core mode, label); the order is the enum order, mask first (the default).
    NEGATIVE_MODES = [(NEGATIVE_MASK, "Mask: NoData where RED or NIR reflectance <= 0"),
                      (NEGATIVE_CLAMP, "Clamp: reflectance <= 0 set to 0"),
                      (NEGATIVE_KEEP, "Keep: raw arithmetic (NDVI may leave [-1, 1])")]

    ALGORITHM_NAME = "ndvi"
    DISPLAY_NAME = "NDVI (Sentinel-2, SCL cloud mask)"
    GROUP = "Sentinel-2"
    GROUP_ID = "sentinel2"
    ICON = "indices"
    TAGS = ("Sentinel-2", "NDVI", "vegetation", "index", "cloud", "SCL", "mask", "optical")
    ADVANCED = ("CLOUD_BUFFER", "BOA_ADD_OFFSET", "QUANTIFICATION_VALUE", "NEGATIVE_REFLECTANCE")
    HELP = (
        "Normalised Difference Vegetation Index of Sentinel-2 L2A (or L1C) bands:\n"
        "NDVI = (NIR - RED) / (NIR + RED), NIR = B08, RED = B04, on reflectance = "
        "(DN + BOA_ADD_OFFSET) / QUANTIFICATION_VALUE.\n\n"
        "Inputs: single-band files (B04.tif / B08.tif, JP2 of a SAFE product; band 1) or a "
        "multiband stack (unset bands are taken from the band descriptions: B4/B04 for red, "
        "B8/B08 for near infrared; the log names the bands used). Arithmetic is done in "
        "float32, never in uint16. DN 0 (S2 NoData) and NoData give NoData; NIR + RED = 0 "
        "gives NoData.\n\n"
        "BOA_ADD_OFFSET: leave it empty to read it from the product metadata (MTD_MSIL2A.xml: "
        "BOA_ADD_OFFSET; MTD_MSIL1C.xml: RADIO_ADD_OFFSET) when the inputs lie inside a .SAFE "
        "product, else 0. Products of processing baseline 04.00 and later (from 2022-01-25) "
        "use -1000, earlier ones 0. The offset changes NDVI; QUANTIFICATION_VALUE (10000) "
        "cancels out of the ratio and is kept for the record.\n\n"
        "SCL (optional): the L2A Scene Classification band, at 20 m or 10 m; it is resampled "
        "with nearest neighbour onto the band grid. Pixels whose class is in CLOUD_CLASSES "
        "become NoData, plus every pixel whose centre lies within CLOUD_BUFFER metres "
        "of a masked pixel's centre (rounded to whole 10 m pixels). SCL NoData is not "
        "treated as cloud. " + CLOUD_CLASSES_HELP + " An empty CLOUD_CLASSES masks no class "
        "(the SCL is then unused; the log says so).\n\n"
        "NEGATIVE_REFLECTANCE: DN + BOA_ADD_OFFSET can be <= 0 (dark water in baseline >= "
        "04.00 products, a wrong offset), which gives NDVI far outside [-1, 1]. 'Mask' "
        "(default) makes such pixels NoData, as Earth Engine's normalizedDifference does; "
        "'Clamp' sets the reflectance to 0; 'Keep' does the raw arithmetic (to reproduce other "
        "tools). The log says how many pixels were concerned and warns when more than 1 % of "
        "the valid pixels were (check BOA_ADD_OFFSET).\n\n"
        "Sources: the Sentinel Hub NDVI / data-fusion custom script (formula and the 11-stop "
        "colour ramp of the output style) and the openEO NDVI notebook (SCL cloud mask); "
        "ESA Sentinel-2 L2A product specification (offsets). Output: float32 GeoTIFF, NoData "
        "NaN.")

    def initAlgorithm(self, config=None):  # noqa: N802 - QGIS API
        self.add_band_input(self.RED, self.RED_BAND, "Red band (B04)")
        self.add_band_input(self.NIR, self.NIR_BAND, "Near-infrared band (B08)")
        self.add_band_input(self.SCL, self.SCL_BAND, "Scene classification (SCL)", optional=True)
        self.addParameter(QgsProcessingParameterString(
            self.CLOUD_CLASSES, self.tr("SCL classes masked as cloud"),
            defaultValue=",".join(str(c) for c in DEFAULT_CLOUD_CLASSES), optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.CLOUD_BUFFER, self.tr("Cloud buffer (metres)"),
            QgsProcessingParameterNumber.Type.Double, defaultValue=0.0, minValue=0.0))
        self.addParameter(QgsProcessingParameterNumber(
            self.BOA_ADD_OFFSET, self.tr("BOA_ADD_OFFSET (empty: read from the product, else 0)"),
            QgsProcessingParameterNumber.Type.Double, defaultValue=None, optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.QUANTIFICATION_VALUE, self.tr("QUANTIFICATION_VALUE"),
            QgsProcessingParameterNumber.Type.Double, defaultValue=DEFAULT_QUANTIFICATION,
            minValue=1e-9))
        self.addParameter(QgsProcessingParameterEnum(
            self.NEGATIVE_REFLECTANCE, self.tr("Reflectance <= 0 (NEGATIVE_REFLECTANCE)"),
            options=[self.tr(label) for _, label in self.NEGATIVE_MODES], defaultValue=0))
        self.add_raster_output(self.OUTPUT, "NDVI")

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        red = self.band_source(parameters, context, self.RED, self.RED_BAND)
        nir = self.band_source(parameters, context, self.NIR, self.NIR_BAND)
        scl = self.band_source(parameters, context, self.SCL, self.SCL_BAND)
        classes = self.cloud_classes(parameters, context, self.CLOUD_CLASSES)
        buffer_m = self.parameterAsDouble(parameters, self.CLOUD_BUFFER, context)
        offset = self.optional_number(parameters, self.BOA_ADD_OFFSET)
        quantification = self.parameterAsDouble(parameters, self.QUANTIFICATION_VALUE, context)
        negative = self.NEGATIVE_MODES[self.parameterAsEnum(
            parameters, self.NEGATIVE_REFLECTANCE, context)][0]
        output = self.output_path(parameters, context, self.OUTPUT)
        if scl is None and buffer_m > 0:
            feedback.pushInfo("CLOUD_BUFFER is ignored: no SCL given.")
        if scl is not None and not classes:
            feedback.pushWarning("CLOUD_CLASSES is empty: no SCL class is masked, the SCL is "
                                 "not used.")
        if offset is None:
            offset = self.run_core(feedback, _resolved_offset, [red, nir])
            feedback.pushInfo(f"BOA_ADD_OFFSET = {offset:g} (from the product metadata when the "
                              "inputs lie in a .SAFE product, else 0)")
        self.run_core(feedback, ndvi_file, red, nir, output, scl=scl, cloud_classes=classes,
                      cloud_buffer_m=buffer_m, boa_add_offset=offset,
                      quantification=quantification, negative_reflectance=negative,
                      log=feedback.pushInfo, warn=feedback.pushWarning)
        self.style_output(context, output, NDVI_RAMP)
        return {self.OUTPUT: output}
