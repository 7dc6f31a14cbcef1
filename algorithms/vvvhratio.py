"""s1s2:vvvhratio - VV/VH polarisation ratio (linear, dB, or the Earth Engine ratio of dB)."""
from qgis.core import QgsProcessingParameterEnum, QgsProcessingParameterNumber

from ..core.indices import (
    DEFAULT_MAX_ANGLE,
    DEFAULT_MIN_ANGLE,
    RATIO_DB,
    RATIO_LINEAR,
    RATIO_OF_DB,
    vv_vh_ratio_file,
)
from ..core.styles import RATIO_DB_RAMP, RATIO_LINEAR_RAMP, RATIO_OF_DB_RAMP
from .base import S1S2Algorithm

MODES = [(RATIO_DB, "Ratio in dB (VV_dB - VH_dB)", RATIO_DB_RAMP),
         (RATIO_LINEAR, "Linear ratio (VV / VH)", RATIO_LINEAR_RAMP),
         (RATIO_OF_DB, "Ratio of dB values (VV_dB / VH_dB, Earth Engine recipe, kept in (-5, 5))",
          RATIO_OF_DB_RAMP)]


def add_angle_range(algorithm):
    algorithm.addParameter(QgsProcessingParameterNumber(
        "MIN_ANGLE", algorithm.tr("Minimum incidence angle (degrees, exclusive)"),
        QgsProcessingParameterNumber.Type.Double, defaultValue=DEFAULT_MIN_ANGLE,
        minValue=-90.0, maxValue=90.0))
    algorithm.addParameter(QgsProcessingParameterNumber(
        "MAX_ANGLE", algorithm.tr("Maximum incidence angle (degrees, exclusive)"),
        QgsProcessingParameterNumber.Type.Double, defaultValue=DEFAULT_MAX_ANGLE,
        minValue=-90.0, maxValue=90.0))


class VvVhRatio(S1S2Algorithm):
    COMPLEX_AS_INTENSITY = ("VV", "VH")  # SAR SLC input: intensity |z|^2
    VV = "VV"
    VV_BAND = "VV_BAND"
    VH = "VH"
    VH_BAND = "VH_BAND"
    INPUT_UNITS = "INPUT_UNITS"
    MODE = "MODE"
    ANGLE = "ANGLE"
    ANGLE_BAND = "ANGLE_BAND"
    MIN_ANGLE = "MIN_ANGLE"
    MAX_ANGLE = "MAX_ANGLE"
    OUTPUT = "OUTPUT"

    ALGORITHM_NAME = "vvvhratio"
    DISPLAY_NAME = "VV/VH polarisation ratio"
    GROUP = "Sentinel-1"
    GROUP_ID = "sentinel1"
    ICON = "indices"
    TAGS = ("SAR", "radar", "Sentinel-1", "backscatter", "sigma0", "ratio", "polarisation",
            "cross-pol", "index")
    ADVANCED = ("MIN_ANGLE", "MAX_ANGLE")
    HELP = (
        "Ratio of the VV and VH backscatter.\n\n"
        "MODE:\n"
        "- Ratio in dB (default): 10 log10(VV / VH) = VV_dB - VH_dB.\n"
        "- Linear ratio: VV / VH of linear power (VH = 0 gives NoData).\n"
        "- Ratio of dB values: VV_dB / VH_dB (e.g. -10 / -16 = 0.625), NoData outside the open "
        "interval (-5, 5). This is the 'VVdVH' band of the Earth Engine 'VV/VH ratios' recipe; "
        "it is not a ratio of powers and is offered only to reproduce that recipe.\n\n"
        "Input units (INPUT_UNITS): linear power (sigma0/gamma0), dB or Auto (detect, the "
        "default: unit metadata, else negative values mean dB; the log says which). Values <= 0 "
        "in linear power give NoData in the dB modes.\n"
        "ANGLE (optional): an incidence-angle raster (degrees) on the same grid, e.g. the "
        "'angle' band of an Earth Engine / GRD export; the ratio is kept only where "
        "MIN_ANGLE < angle < MAX_ANGLE (recipe: 30.64 and 45.54 degrees), NoData elsewhere.\n\n"
        "Source: Earth Engine community notebook 'VV/VH ratios' (Sentinel-1 ratio, angle mask). "
        "Output: float32 GeoTIFF, NoData NaN.")

    def initAlgorithm(self, config=None):  # noqa: N802 - QGIS API
        self.add_band_input(self.VV, self.VV_BAND, "VV backscatter")
        self.add_band_input(self.VH, self.VH_BAND, "VH backscatter")
        self.add_units_parameter(self.INPUT_UNITS)
        self.addParameter(QgsProcessingParameterEnum(
            self.MODE, self.tr("Ratio"), options=[self.tr(m[1]) for m in MODES], defaultValue=0))
        self.add_band_input(self.ANGLE, self.ANGLE_BAND, "Incidence angle (degrees)",
                            optional=True)
        add_angle_range(self)
        self.add_raster_output(self.OUTPUT, "VV/VH ratio")

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        vv = self.band_source(parameters, context, self.VV, self.VV_BAND)
        vh = self.band_source(parameters, context, self.VH, self.VH_BAND)
        angle = self.band_source(parameters, context, self.ANGLE, self.ANGLE_BAND)
        units = self.units(parameters, context, self.INPUT_UNITS, [vv, vh])
        mode, _, style = MODES[self.parameterAsEnum(parameters, self.MODE, context)]
        min_angle = self.parameterAsDouble(parameters, self.MIN_ANGLE, context)
        max_angle = self.parameterAsDouble(parameters, self.MAX_ANGLE, context)
        output = self.output_path(parameters, context, self.OUTPUT)
        self.run_core(feedback, vv_vh_ratio_file, vv, vh, output, mode, units, angle=angle,
                      min_angle=min_angle, max_angle=max_angle)
        self.style_output(context, output, style)
        return {self.OUTPUT: output}
