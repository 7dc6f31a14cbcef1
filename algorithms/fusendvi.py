"""s1s2:fusendvi - cloud-masked S2 NDVI filled from Sentinel-1, with its accuracy reported."""
import math

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..core import fusion
from ..core.scl import DEFAULT_CLOUD_CLASSES
from ..core.styles import FUSION_SOURCE_PALETTE, NDVI_RAMP
from .base import CLOUD_CLASSES_HELP, S1S2Algorithm


def _parse_numbers(text, name):
    try:
        return [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise QgsProcessingException(
            f"{name}: {text!r} is not a comma-separated list of numbers.") from None


class FuseNdvi(S1S2Algorithm):
    RED = "RED"
    RED_BAND = "RED_BAND"
    NIR = "NIR"
    NIR_BAND = "NIR_BAND"
    SCL = "SCL"
    SCL_BAND = "SCL_BAND"
    VV = "VV"
    VV_BAND = "VV_BAND"
    VH = "VH"
    VH_BAND = "VH_BAND"
    S1_UNITS = "S1_UNITS"
    BOA_ADD_OFFSET = "BOA_ADD_OFFSET"
    CLOUD_CLASSES = "CLOUD_CLASSES"
    CLOUD_BUFFER = "CLOUD_BUFFER"
    SPECKLE_FILTER = "SPECKLE_FILTER"
    MODEL = "MODEL"
    COEFFICIENTS = "COEFFICIENTS"
    REFERENCE_NDVI = "REFERENCE_NDVI"
    OUTPUT = "OUTPUT"
    OUTPUT_SOURCE = "OUTPUT_SOURCE"

    CLOUD_FRACTION = "CLOUD_FRACTION"
    FIT_N = "FIT_N"
    FIT_R2 = "FIT_R2"
    FIT_RMSE = "FIT_RMSE"
    BASELINE_RMSE = "BASELINE_RMSE"
    COEFFICIENT_OUTPUTS = tuple("COEF_" + n for n in
                                fusion.PREDICTOR_NAMES + (fusion.REFERENCE_NAME,))

    SPECKLE = [(False, "None"), (True, "Refined Lee (7x7, SNAP semantics)")]
    MODELS = [(fusion.MODEL_LOCAL, "Local regression on the scene's clear pixels"),
              (fusion.MODEL_RECIPE, "Recipe formula reproduced exactly (Sentinel Hub script, "
                                    "toDb = 10*ln(10)*x)"),
              (fusion.MODEL_CUSTOM, "Custom coefficients")]

    ALGORITHM_NAME = "fusendvi"
    DISPLAY_NAME = "Cloud-masked NDVI fusion (S2 filled from S1)"
    GROUP = "Sentinel-1 + Sentinel-2"
    GROUP_ID = "fusion"
    ICON = "fusion"
    TAGS = ("fusion", "NDVI", "cloud", "gap filling", "Sentinel-1", "Sentinel-2", "SAR", "radar",
            "regression", "vegetation")
    ADVANCED = ("CLOUD_BUFFER", "BOA_ADD_OFFSET", "SPECKLE_FILTER", "COEFFICIENTS",
                "REFERENCE_NDVI")
    HELP = (
        "Sentinel-2 NDVI where the Scene Classification (SCL) says clear; under cloud (SCL in "
        "CLOUD_CLASSES, plus CLOUD_BUFFER metres) and where S2 is NoData, an NDVI predicted from "
        "Sentinel-1. OUTPUT_SOURCE tells which: 1 = Sentinel-2, 2 = Sentinel-1, 0 = no data from "
        "either source (uint8 with NoData 0 declared, unlike the toolkit's other uint8 rasters "
        "which use 255: here 0 is 'nothing').\n\n"
        "S2 NDVI = (NIR - RED) / (NIR + RED) on reflectance (DN + BOA_ADD_OFFSET) / 10000, "
        "identical to s1s2:ndvi. Predictors from S1 in dB (10*log10 of linear power): VH_dB, "
        "VV_dB and NRPB = (VH_dB - VV_dB) / (VH_dB + VV_dB) (Filgueiras et al. 2019, Remote "
        "Sens. 11, 1441), optionally an earlier cloud-free REFERENCE_NDVI of the same place "
        "(same grid).\n\n"
        "MODEL\n"
        "- Local regression (default): least squares of S2 NDVI on the predictors over this "
        "scene's clear pixels (two passes over the raster, bounded memory). Accuracy is "
        "measured honestly on a spatial hold-out: clear pixels in a 32 x 32-pixel checkerboard "
        "are withheld, the model fitted on the other cells predicts them: FIT_RMSE, FIT_R2; the "
        "same withheld pixels predicted by the training pixels' mean NDVI: BASELINE_RMSE. The "
        "coefficients used (COEF_*) are then refitted on all clear pixels (FIT_N). When the fit "
        "has no skill (FIT_RMSE >= BASELINE_RMSE) or there are fewer than 100 clear pixels, "
        "the log says so and the fill falls back to the clear-pixel mean. Predictions are "
        "clamped to [-1, 1].\n"
        "- Recipe formula: the Sentinel Hub data-fusion custom script (custom-scripts "
        "data-fusion/ndvi_s1_s2) reproduced exactly, its toDb(x) = 10*ln(10)*x included "
        "(a linear scaling, not dB), then 2.572 - 0.05047*VH + 0.176*VV + 3.422*NRPB, no "
        "clamping. With a correct dB these published coefficients give NDVI of 2 to 3; on real "
        "scenes the formula's error is several times the clear-pixel mean's. For reproducing "
        "that script's output only; its hold-out error is reported too.\n"
        "- Custom coefficients: COEFFICIENTS = 'c0, c_VH, c_VV, c_NRPB' (+ ', c_REFERENCE' with "
        "REFERENCE_NDVI) on the correct-dB predictors.\n\n"
        "Sentinel-1 units (S1_UNITS): linear power (sigma0/gamma0), dB or Auto (detect, the "
        "default: unit metadata, else negative values mean dB; the log says which). "
        "SPECKLE_FILTER: Refined Lee on linear "
        "VV/VH before the dB conversion (default). S1 not on the S2 grid is collocated "
        "automatically (bilinear, in linear units); SCL at 20 m is resampled with nearest "
        "neighbour. " + CLOUD_CLASSES_HELP)

    def initAlgorithm(self, config=None):  # noqa: N802 - QGIS API
        self.add_band_input(self.RED, self.RED_BAND, "Red (S2 B04, DN)")
        self.add_band_input(self.NIR, self.NIR_BAND, "Near infrared (S2 B08, DN)")
        self.add_band_input(self.SCL, self.SCL_BAND, "Scene classification (S2 L2A SCL)")
        self.add_band_input(self.VV, self.VV_BAND, "Sentinel-1 VV backscatter")
        self.add_band_input(self.VH, self.VH_BAND, "Sentinel-1 VH backscatter")
        self.add_units_parameter(self.S1_UNITS, "Sentinel-1 units")
        self.addParameter(QgsProcessingParameterNumber(
            self.BOA_ADD_OFFSET, self.tr("BOA_ADD_OFFSET (empty: read from the product, else 0)"),
            QgsProcessingParameterNumber.Type.Double, defaultValue=None, optional=True))
        self.addParameter(QgsProcessingParameterString(
            self.CLOUD_CLASSES, self.tr("SCL classes treated as cloud"),
            defaultValue=",".join(str(c) for c in DEFAULT_CLOUD_CLASSES)))
        self.addParameter(QgsProcessingParameterNumber(
            self.CLOUD_BUFFER, self.tr("Cloud buffer (metres)"),
            QgsProcessingParameterNumber.Type.Double, defaultValue=0.0, minValue=0.0))
        self.addParameter(QgsProcessingParameterEnum(
            self.SPECKLE_FILTER, self.tr("Speckle filter on VV/VH"),
            options=[self.tr(t) for _, t in self.SPECKLE], defaultValue=1))
        self.addParameter(QgsProcessingParameterEnum(
            self.MODEL, self.tr("S1 -> NDVI model"), options=[self.tr(t) for _, t in self.MODELS],
            defaultValue=0))
        self.addParameter(QgsProcessingParameterString(
            self.COEFFICIENTS, self.tr("Custom coefficients: c0, c_VH, c_VV, c_NRPB[, c_REF]"),
            optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.REFERENCE_NDVI, self.tr("Reference NDVI (earlier, cloud-free, same grid)"),
            optional=True))
        self.add_raster_output(self.OUTPUT, "Fused NDVI")
        self.add_raster_output(self.OUTPUT_SOURCE, "Source of each pixel (1 S2, 2 S1, 0 none)")
        for name, description in (
                (self.CLOUD_FRACTION, "Cloud fraction (of pixels with SCL data)"),
                (self.FIT_N, "Clear pixels the model was fitted on"),
                (self.FIT_R2, "R2 on the spatial hold-out"),
                (self.FIT_RMSE, "RMSE on the spatial hold-out (NDVI)"),
                (self.BASELINE_RMSE, "RMSE of the clear-pixel mean on the hold-out (NDVI)")):
            self.addOutput(QgsProcessingOutputNumber(name, self.tr(description)))
        for name in self.COEFFICIENT_OUTPUTS:
            self.addOutput(QgsProcessingOutputNumber(name, self.tr(f"Coefficient {name[5:]}")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        red = self.band_source(parameters, context, self.RED, self.RED_BAND)
        nir = self.band_source(parameters, context, self.NIR, self.NIR_BAND)
        scl = self.band_source(parameters, context, self.SCL, self.SCL_BAND)
        vv = self.band_source(parameters, context, self.VV, self.VV_BAND)
        vh = self.band_source(parameters, context, self.VH, self.VH_BAND)
        reference = self.band_source(parameters, context, self.REFERENCE_NDVI)
        units = self.units(parameters, context, self.S1_UNITS, [vv, vh])
        speckle = self.SPECKLE[self.parameterAsEnum(parameters, self.SPECKLE_FILTER, context)][0]
        model = self.MODELS[self.parameterAsEnum(parameters, self.MODEL, context)][0]
        coefficients = None
        if model == fusion.MODEL_CUSTOM:
            coefficients = _parse_numbers(
                self.parameterAsString(parameters, self.COEFFICIENTS, context) or "",
                self.COEFFICIENTS)
        classes = list(self.cloud_classes(parameters, context, self.CLOUD_CLASSES))
        output = self.output_path(parameters, context, self.OUTPUT)
        source_output = self.output_path(parameters, context, self.OUTPUT_SOURCE)
        result = self.run_core(
            feedback, fusion.fuse_ndvi_files, red, nir, scl, vv, vh, output, source_output,
            reference=reference, s1_units=units,
            boa_add_offset=self.optional_number(parameters, self.BOA_ADD_OFFSET),
            cloud_classes=classes,
            cloud_buffer_m=self.parameterAsDouble(parameters, self.CLOUD_BUFFER, context),
            speckle_filter=speckle, model=model, coefficients=coefficients,
            log=feedback.pushInfo)
        for warning in result.warnings:
            # Loud on purpose: shown in red in the dialog and on qgis_process's stderr.
            feedback.reportError(warning, fatalError=False)
        self.style_output(context, output, NDVI_RAMP)
        self.style_output(context, source_output, FUSION_SOURCE_PALETTE)
        results = {self.OUTPUT: output, self.OUTPUT_SOURCE: source_output}
        for name, value in result.outputs().items():
            results[name] = value if math.isfinite(value) else None
        return results
