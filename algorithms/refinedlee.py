"""s1s2:refinedlee - Refined Lee speckle filter with ESA SNAP semantics.

Also holds SpeckleFilterAlgorithm, the shared base of the three speckle
filters (s1s2:refinedlee, s1s2:leefilter, s1s2:focalmedian): input band,
input units (linear | dB), "treat 0 as NoData", output and its style.
"""
from qgis.core import QgsProcessingParameterBoolean

from ..core.speckle import DB, refined_lee_file
from ..core.styles import DB_RAMP, LINEAR_RAMP
from .base import S1S2Algorithm

UNITS_HELP = (
    "Input units (INPUT_UNITS): linear power (sigma0/gamma0/beta0), dB or Auto (detect, the "
    "default: unit metadata, else negative values mean dB; the log says which). dB input is "
    "converted to linear, filtered there (speckle is multiplicative noise on intensity) and "
    "returned in dB. 'Treat 0 as NoData' (default off) marks zeros, e.g. the "
    "thermal-noise-removed border of S1 GRD, as NoData. NoData in gives NoData out; the output "
    "keeps the input's grid. Output: float32 GeoTIFF, NoData NaN.")


class SpeckleFilterAlgorithm(S1S2Algorithm):
    COMPLEX_AS_INTENSITY = ("INPUT",)  # SAR SLC input: intensity |z|^2
    """Common parameters and run logic of the speckle filters."""

    INPUT = "INPUT"
    BAND = "BAND"
    INPUT_UNITS = "INPUT_UNITS"
    NODATA_ZERO = "NODATA_ZERO"
    OUTPUT = "OUTPUT"

    GROUP = "Sentinel-1"
    GROUP_ID = "sentinel1"
    ICON = "sar_filter"
    TAGS = ("SAR", "radar", "Sentinel-1", "backscatter", "sigma0", "speckle", "despeckle",
            "filter", "noise", "smoothing")
    ADVANCED = ("NODATA_ZERO",)
    OUTPUT_NAME = "Filtered backscatter"

    def add_common_inputs(self):
        self.add_band_input(self.INPUT, self.BAND, "Backscatter raster")
        self.add_units_parameter(self.INPUT_UNITS)
        self.addParameter(QgsProcessingParameterBoolean(
            self.NODATA_ZERO, self.tr("Treat 0 as NoData"), defaultValue=False))

    def add_filter_parameters(self):
        """Subclasses add their own parameters here."""

    def initAlgorithm(self, config=None):  # noqa: N802 - QGIS API
        self.add_common_inputs()
        self.add_filter_parameters()
        self.add_raster_output(self.OUTPUT, self.OUTPUT_NAME)

    def filter_options(self, parameters, context):
        """Keyword arguments of the core file function beyond the common ones."""
        return {}

    def core_function(self):
        raise NotImplementedError

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        zero = self.parameterAsBool(parameters, self.NODATA_ZERO, context)
        source = self.band_source(parameters, context, self.INPUT, self.BAND,
                                  zero_is_nodata=zero)
        units = self.units(parameters, context, self.INPUT_UNITS, [source])
        options = self.filter_options(parameters, context)
        output = self.output_path(parameters, context, self.OUTPUT)
        self.run_core(feedback, self.core_function(), source, output, input_units=units,
                      **options)
        self.style_output(context, output, DB_RAMP if units == DB else LINEAR_RAMP)
        return {self.OUTPUT: output}


class RefinedLee(SpeckleFilterAlgorithm):
    ALGORITHM_NAME = "refinedlee"
    DISPLAY_NAME = "Refined Lee speckle filter"
    OUTPUT_NAME = "Refined Lee filtered backscatter"
    HELP = (
        "Refined Lee speckle filter: smooths the speckle of SAR backscatter while keeping edges "
        "and lines sharp. For each pixel it looks at the 7 x 7 window, finds the direction of "
        "the strongest edge through it, and averages only over the 28 pixels on the pixel's "
        "side of that edge (minimum mean square error weighting: flat areas are smoothed, "
        "contrasted ones kept). Windows with NoData or at the image border use a plain Lee "
        "filter of their valid pixels; a NoData pixel stays NoData.\n\n"
        "Reference: J.-S. Lee (1981), 'Refined filtering of image noise using local "
        "statistics', Computer Graphics and Image Processing 15; implemented with the "
        "semantics of ESA SNAP's Refined Lee (Sentinel-1 Toolbox), which SAR users compare "
        "against, with two SNAP defects fixed (the README lists them).\n\n"
        + UNITS_HELP + " Processed block by block with a 3-pixel halo; results do not depend on "
        "the block size.")

    def core_function(self):
        return refined_lee_file

