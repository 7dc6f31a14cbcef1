"""s1s2:fusendvi - cloud-masked S2 NDVI filled from Sentinel-1, with its accuracy reported."""
import math

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..core import fusion
from ..core.indices import NEGATIVE_CLAMP, NEGATIVE_KEEP, NEGATIVE_MASK
from ..core.scl import DEFAULT_CLOUD_CLASSES
from ..core.styles import FUSION_SOURCE_PALETTE, NDVI_RAMP, UNCERTAINTY_RAMP
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
    OUTPUT_UNCERTAINTY = "OUTPUT_UNCERTAINTY"
    NEGATIVE_REFLECTANCE = "NEGATIVE_REFLECTANCE"

    CLOUD_FRACTION = "CLOUD_FRACTION"
    FIT_N = "FIT_N"
    FIT_R2 = "FIT_R2"
    FIT_RMSE = "FIT_RMSE"
    BASELINE_RMSE = "BASELINE_RMSE"
    COEFFICIENT_OUTPUTS = tuple("COEF_" + n for n in
                                fusion.PREDICTOR_NAMES + (fusion.REFERENCE_NAME,))

    SPECKLE = [(False, "None"), (True, "Refined Lee (7x7, SNAP semantics)")]
    # Appended, not inserted: saved models and scripts keep their MODEL numbers.
    MODELS = [(fusion.MODEL_LOCAL, "Local least squares on VH_dB, VV_dB, NRPB (the v1 default)"),
              (fusion.MODEL_RECIPE, "Recipe formula reproduced exactly (Sentinel Hub script, "
                                    "toDb = 10*ln(10)*x)"),
              (fusion.MODEL_CUSTOM, "Custom coefficients"),
              (fusion.MODEL_KRIGING, "Regression kriging: multi-scale S1 (and/or reference "
                                     "NDVI) regression + the clear neighbours (default)")]
    DEFAULT_MODEL = 3
    NEGATIVE_MODES = [(NEGATIVE_MASK, "Mask: NoData where RED or NIR reflectance <= 0"),
                      (NEGATIVE_CLAMP, "Clamp: reflectance <= 0 set to 0"),
                      (NEGATIVE_KEEP, "Keep: raw arithmetic (NDVI may leave [-1, 1])")]

    ALGORITHM_NAME = "fusendvi"
    DISPLAY_NAME = "Cloud-masked NDVI fusion (S2 filled from S1)"
    GROUP = "Sentinel-1 + Sentinel-2"
    GROUP_ID = "fusion"
    ICON = "fusion"
    TAGS = ("fusion", "NDVI", "cloud", "gap filling", "Sentinel-1", "Sentinel-2", "SAR", "radar",
            "regression", "vegetation")
    ADVANCED = ("CLOUD_BUFFER", "BOA_ADD_OFFSET", "NEGATIVE_REFLECTANCE", "SPECKLE_FILTER",
                "COEFFICIENTS")
    HELP = (
        "Sentinel-2 NDVI where the Scene Classification (SCL) says clear; under cloud (SCL in "
        "CLOUD_CLASSES, plus CLOUD_BUFFER metres) and where S2 is NoData, a predicted NDVI. "
        "OUTPUT_SOURCE tells which: 1 = Sentinel-2, 2 = filled, 0 = no data from either "
        "source (uint8 with NoData 0 declared, unlike the toolkit's other uint8 rasters "
        "which use 255: here 0 is 'nothing').\n\n"
        "S2 NDVI = (NIR - RED) / (NIR + RED) on reflectance (DN + BOA_ADD_OFFSET) / 10000, "
        "identical to s1s2:ndvi (NEGATIVE_REFLECTANCE as there; the models never learn from "
        "NDVI outside [-1, 1]).\n\n"
        "MODEL\n"
        "- Regression kriging (default): the fill is a regression on Sentinel-1 plus what the "
        "nearest clear pixels say. Predictors: for box radii 1, 3, 7 and 15 pixels the mean of "
        "VV_dB, VH_dB and VH_dB - VV_dB and the standard deviation of VV_dB and VH_dB (S1 "
        "NoData skipped, edges mirrored), and REFERENCE_NDVI when given. Ridge regression on "
        "the scene's clear pixels, then the regression's errors at the 16 nearest clear "
        "pixels within 64 pixels are interpolated by simple kriging (exponential variogram "
        "fitted to those errors) and added. Near a cloud edge the neighbours carry the fill; "
        "deep inside a cloud the regression does. With REFERENCE_NDVI (an earlier cloud-free "
        "NDVI of the same place, same grid) VV and VH are optional: the temporal mode fills "
        "from the earlier NDVI plus the neighbours. The log lists the predictors used.\n"
        "  Honest accuracy: clear pixels in a checkerboard of cells at least as large as the "
        "scene's typical cloud gap are withheld; the whole predictor, fitted without them and "
        "kriging only from the other cells, predicts them: FIT_RMSE, FIT_R2 (BASELINE_RMSE: "
        "the clear-pixel mean on the same pixels). The log adds the RMSE by distance to the "
        "nearest clear pixel (<= 30 m, 30-100 m, 100-300 m, > 300 m) and the variogram. "
        "Without skill or with fewer than 100 clear pixels the regression becomes the "
        "clear-pixel mean (a WARNING says so) and the kriging stays. Fills are clamped to "
        "[-1, 1]; where neither a predictor nor a clear pixel within 64 px exists: NoData.\n"
        "  OUTPUT_UNCERTAINTY (optional): the standard error of each filled pixel (regression "
        "error and kriging variance, calibrated on the hold-out so that fill +- 1.96 x "
        "standard error covers 95 % of it); NoData on S2 pixels. Use it to decide which fills "
        "to trust.\n"
        "- Local least squares (the previous default): S2 NDVI on VH_dB, VV_dB and NRPB = "
        "(VH_dB - VV_dB) / (VH_dB + VV_dB) (Filgueiras et al. 2019, Remote Sens. 11, 1441), "
        "optionally REFERENCE_NDVI; hold-out of 32 x 32-pixel cells; falls back to the "
        "clear-pixel mean without skill.\n"
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
        "VV/VH before the dB conversion (off by default: the box statistics of the default "
        "model average speckle out, and Refined Lee changed its fill R2 by less than 0.01 on "
        "the test scenes). S1 not on the S2 grid is collocated automatically "
        "(bilinear, in linear units); SCL at 20 m is resampled with nearest neighbour. "
        + CLOUD_CLASSES_HELP + "\n\n"
        "Sources: Sentinel Hub data-fusion script; Filgueiras et al. 2019; regression kriging "
        "of residuals as in GNSPI (Zhu et al. 2012).")

    def initAlgorithm(self, config=None):  # noqa: N802 - QGIS API
        self.add_band_input(self.RED, self.RED_BAND, "Red (S2 B04, DN)")
        self.add_band_input(self.NIR, self.NIR_BAND, "Near infrared (S2 B08, DN)")
        self.add_band_input(self.SCL, self.SCL_BAND, "Scene classification (S2 L2A SCL)")
        self.add_band_input(self.VV, self.VV_BAND, "Sentinel-1 VV backscatter (optional with "
                            "a reference NDVI)", optional=True)
        self.add_band_input(self.VH, self.VH_BAND, "Sentinel-1 VH backscatter (optional with "
                            "a reference NDVI)", optional=True)
        self.add_units_parameter(self.S1_UNITS, "Sentinel-1 units")
        self.addParameter(QgsProcessingParameterNumber(
            self.BOA_ADD_OFFSET, self.tr("BOA_ADD_OFFSET (empty: read from the product, else 0)"),
            QgsProcessingParameterNumber.Type.Double, defaultValue=None, optional=True))
        self.addParameter(QgsProcessingParameterEnum(
            self.NEGATIVE_REFLECTANCE, self.tr("Reflectance <= 0 (NEGATIVE_REFLECTANCE)"),
            options=[self.tr(label) for _, label in self.NEGATIVE_MODES], defaultValue=0))
        self.addParameter(QgsProcessingParameterString(
            self.CLOUD_CLASSES, self.tr("SCL classes treated as cloud"),
            defaultValue=",".join(str(c) for c in DEFAULT_CLOUD_CLASSES)))
        self.addParameter(QgsProcessingParameterNumber(
            self.CLOUD_BUFFER, self.tr("Cloud buffer (metres)"),
            QgsProcessingParameterNumber.Type.Double, defaultValue=0.0, minValue=0.0))
        self.addParameter(QgsProcessingParameterEnum(
            self.SPECKLE_FILTER, self.tr("Speckle filter on VV/VH"),
            options=[self.tr(t) for _, t in self.SPECKLE], defaultValue=0))
        self.addParameter(QgsProcessingParameterEnum(
            self.MODEL, self.tr("Fill model"), options=[self.tr(t) for _, t in self.MODELS],
            defaultValue=self.DEFAULT_MODEL))
        self.addParameter(QgsProcessingParameterString(
            self.COEFFICIENTS, self.tr("Custom coefficients: c0, c_VH, c_VV, c_NRPB[, c_REF]"),
            optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.REFERENCE_NDVI, self.tr("Reference NDVI (earlier, cloud-free, same grid)"),
            optional=True))
        self.add_raster_output(self.OUTPUT, "Fused NDVI")
        self.add_raster_output(self.OUTPUT_SOURCE, "Source of each pixel (1 S2, 2 filled, 0 none)")
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT_UNCERTAINTY, self.tr("Standard error of the fill (regression kriging)"),
            optional=True, createByDefault=False))
        for name, description in (
                (self.CLOUD_FRACTION, "Cloud fraction (of pixels with SCL data)"),
                (self.FIT_N, "Clear pixels the model was fitted on"),
                (self.FIT_R2, "R2 of the fill on the spatial hold-out"),
                (self.FIT_RMSE, "RMSE of the fill on the spatial hold-out (NDVI)"),
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
        uncertainty = self.parameterAsOutputLayer(parameters, self.OUTPUT_UNCERTAINTY, context)
        if uncertainty and model != fusion.MODEL_KRIGING:
            raise QgsProcessingException(self.tr(
                "OUTPUT_UNCERTAINTY: only the regression kriging model estimates the "
                "uncertainty of its fill; leave it empty or choose that MODEL."))
        if (vv is None or vh is None) and reference is None:
            raise QgsProcessingException(self.tr(
                "VV and VH: give both Sentinel-1 bands, or a REFERENCE_NDVI (the temporal "
                "mode of the regression kriging model), or both."))
        negative = self.NEGATIVE_MODES[self.parameterAsEnum(
            parameters, self.NEGATIVE_REFLECTANCE, context)][0]
        result = self.run_core(
            feedback, fusion.fuse_ndvi_files, red, nir, scl, vv, vh, output, source_output,
            reference=reference, s1_units=units,
            boa_add_offset=self.optional_number(parameters, self.BOA_ADD_OFFSET),
            cloud_classes=classes,
            cloud_buffer_m=self.parameterAsDouble(parameters, self.CLOUD_BUFFER, context),
            speckle_filter=speckle, model=model, coefficients=coefficients,
            uncertainty_path=uncertainty or None, negative_reflectance=negative,
            log=feedback.pushInfo)
        for warning in result.warnings:
            # Loud on purpose: shown in red in the dialog and on qgis_process's stderr.
            feedback.reportError(warning, fatalError=False)
        self.style_output(context, output, NDVI_RAMP)
        self.style_output(context, source_output, FUSION_SOURCE_PALETTE)
        results = {self.OUTPUT: output, self.OUTPUT_SOURCE: source_output}
        if uncertainty:
            self.style_output(context, uncertainty, UNCERTAINTY_RAMP)
            results[self.OUTPUT_UNCERTAINTY] = uncertainty
        for name, value in result.outputs().items():
            results[name] = value if math.isfinite(value) else None
        return results
