"""s1s2:leefilter - classic Lee MMSE speckle filter."""
from qgis.core import QgsProcessingParameterNumber

from ..core.speckle import lee_file
from .refinedlee import UNITS_HELP, SpeckleFilterAlgorithm


class LeeFilter(SpeckleFilterAlgorithm):
    WINDOW = "WINDOW"
    LOOKS = "LOOKS"

    ADVANCED = ("NODATA_ZERO", "LOOKS")
    ALGORITHM_NAME = "leefilter"
    DISPLAY_NAME = "Lee speckle filter"
    OUTPUT_NAME = "Lee filtered backscatter"
    HELP = (
        "Classic Lee minimum mean square error (MMSE) speckle filter for multiplicative noise "
        "(J.-S. Lee 1980, 'Digital image enhancement and noise filtering by use of local "
        "statistics', IEEE TPAMI 2(2)), in the same MMSE form as the local-statistics (plain "
        "Lee) part of s1s2:refinedlee and ESA SNAP's RefinedLee.\n\n"
        "Over the valid pixels of the WINDOW x WINDOW square (odd, default 7) of linear "
        "intensity: local mean meanY and sample variance varY; speckle noise variance "
        "sigmaV^2 = 1/LOOKS (LOOKS = equivalent number of looks, ENL: about 4.4 for "
        "Sentinel-1 GRD IW high resolution); varX = max(0, (varY - meanY^2 sigmaV^2) / "
        "(1 + sigmaV^2)); out = meanY + varX/varY (centre - meanY). A window with varY = 0 (or "
        "one valid pixel) gives meanY. NoData pixels are ignored within the window; windows "
        "crossing the image border use their valid part; a NoData centre stays NoData.\n\n"
        + UNITS_HELP)

    def add_filter_parameters(self):
        self.addParameter(QgsProcessingParameterNumber(
            self.WINDOW, self.tr("Window size (pixels, odd)"),
            type=QgsProcessingParameterNumber.Type.Integer, defaultValue=7, minValue=3,
            maxValue=101))
        self.addParameter(QgsProcessingParameterNumber(
            self.LOOKS, self.tr("Equivalent number of looks (ENL)"),
            type=QgsProcessingParameterNumber.Type.Double, defaultValue=4.4, minValue=0.01))

    def filter_options(self, parameters, context):
        return {"window": self.parameterAsInt(parameters, self.WINDOW, context),
                "looks": self.parameterAsDouble(parameters, self.LOOKS, context)}

    def core_function(self):
        return lee_file
