"""s1s2:focalmedian - circular focal median with a radius in metres."""
from qgis.core import QgsProcessingParameterNumber

from ..core.speckle import focal_median_file
from .refinedlee import UNITS_HELP, SpeckleFilterAlgorithm


class FocalMedian(SpeckleFilterAlgorithm):
    RADIUS = "RADIUS"

    ALGORITHM_NAME = "focalmedian"
    DISPLAY_NAME = "Focal median (circular, radius in metres)"
    OUTPUT_NAME = "Focal median"
    HELP = (
        "Median of the pixels within RADIUS metres of each pixel (default 100 m): the "
        "speckle pre-filter of the Google Earth Engine 'VV/VH ratios' recipe "
        "(ee.Image.focal_median(100, 'circle', 'meters')).\n\n"
        "Footprint: the pixels whose centre offset (dx, dy) in metres satisfies "
        "dx^2 + dy^2 <= RADIUS^2, from the pixel size of the input grid. For a geographic "
        "CRS (degrees) the pixel size is converted to metres with the WGS84 ellipsoid at the "
        "latitude of the raster's centre (exact enough for rasters spanning a few degrees; "
        "rejected beyond 85 degrees latitude). NoData pixels are ignored within the window "
        "(an even number of valid values gives the mean of the two middle ones); a NoData "
        "centre stays NoData. The radius is limited to 200 pixels.\n\n"
        + UNITS_HELP + " The median commutes with the dB conversion except for that averaging.")

    def add_filter_parameters(self):
        self.addParameter(QgsProcessingParameterNumber(
            self.RADIUS, self.tr("Radius (metres)"),
            type=QgsProcessingParameterNumber.Type.Double, defaultValue=100.0, minValue=0.0))

    def filter_options(self, parameters, context):
        return {"radius_m": self.parameterAsDouble(parameters, self.RADIUS, context)}

    def core_function(self):
        return focal_median_file
