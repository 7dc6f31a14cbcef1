"""s1s2:dbconvert - linear power <-> decibels."""
from qgis.core import QgsProcessingParameterEnum

from ..core.styles import DB_RAMP, LINEAR_RAMP
from ..core.units import DB_TO_LINEAR, LINEAR_TO_DB, convert_db_file
from .base import S1S2Algorithm


class DbConvert(S1S2Algorithm):
    COMPLEX_AS_INTENSITY = ("INPUT",)  # SAR SLC input: intensity |z|^2
    INPUT = "INPUT"
    BAND = "BAND"
    DIRECTION = "DIRECTION"
    OUTPUT = "OUTPUT"

    DIRECTIONS = [(LINEAR_TO_DB, "Linear power to dB"), (DB_TO_LINEAR, "dB to linear power")]

    ALGORITHM_NAME = "dbconvert"
    DISPLAY_NAME = "Convert backscatter between linear and dB"
    GROUP = "Sentinel-1"
    GROUP_ID = "sentinel1"
    ICON = "sar"
    TAGS = ("SAR", "radar", "Sentinel-1", "backscatter", "sigma0", "decibel", "dB", "linear",
            "conversion", "calibration")
    HELP = (
        "Converts SAR backscatter (sigma0, gamma0 or beta0) between linear power and decibels.\n\n"
        "Linear to dB: dB = 10 * log10(x). Values x <= 0 (and NoData) become NoData, never -inf.\n"
        "dB to linear: x = 10^(dB / 10).\n\n"
        "Source: the standard radar decibel definition (ESA Sentinel-1 SAR user guide, "
        "'Level-1 radiometric calibration'). Output: float32 GeoTIFF, NoData NaN.")

    def initAlgorithm(self, config=None):  # noqa: N802 - QGIS API
        self.add_band_input(self.INPUT, self.BAND, "Backscatter raster")
        self.addParameter(QgsProcessingParameterEnum(
            self.DIRECTION, self.tr("Direction"), options=[self.tr(t) for _, t in self.DIRECTIONS],
            defaultValue=0))
        self.add_raster_output(self.OUTPUT, "Converted backscatter")

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        source = self.band_source(parameters, context, self.INPUT, self.BAND)
        direction = self.DIRECTIONS[self.parameterAsEnum(parameters, self.DIRECTION, context)][0]
        output = self.output_path(parameters, context, self.OUTPUT)
        self.run_core(feedback, convert_db_file, source, output, direction)
        self.style_output(context, output, DB_RAMP if direction == LINEAR_TO_DB else LINEAR_RAMP)
        return {self.OUTPUT: output}
