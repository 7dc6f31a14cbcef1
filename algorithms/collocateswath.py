"""s1s2:collocateswath - a swath with 2-D lon/lat arrays onto a target grid (nearest within a radius)."""
from qgis.core import (
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..core.raster import Grid
from ..core.styles import LINEAR_RAMP
from ..core.swath import DEFAULT_RADIUS, collocate_swath
from ..core.writer import check_output_path
from .base import S1S2Algorithm, gdal_path


class CollocateSwath(S1S2Algorithm):
    INPUT = "INPUT"
    VARIABLE = "VARIABLE"
    LON_VARIABLE = "LON_VARIABLE"
    LAT_VARIABLE = "LAT_VARIABLE"
    TARGET = "TARGET"
    RADIUS = "RADIUS"
    OUTPUT = "OUTPUT"

    ALGORITHM_NAME = "collocateswath"
    DISPLAY_NAME = "Collocate a swath (lon/lat arrays) onto a target grid"
    GROUP = "Collocation"
    GROUP_ID = "collocation"
    ICON = "collocation"
    TAGS = ("collocation", "resample", "swath", "NetCDF", "nearest", "Sentinel-1", "Sentinel-2",
            "sea ice", "SAR")
    ADVANCED = ("LON_VARIABLE", "LAT_VARIABLE", "RADIUS")
    HELP = (
        "Puts a swath product whose pixels are located by 2-D longitude/latitude arrays (NetCDF/CF "
        "as distributed by MET Norway: variables lon, lat and data variables such as "
        "sigmaNought_HV; or a raster with GDAL geolocation arrays) onto the pixel grid of TARGET. "
        "The output has exactly the target's CRS, geotransform, width and height.\n\n"
        "Each target pixel takes the value of the nearest swath point if that point is closer "
        "than RADIUS metres (default 50 m, the MET Norway recipe), NoData (NaN) otherwise. "
        "Distances are chords on a sphere of radius 6 370 997 m in float64, exactly as "
        "pyresample kd_tree.resample_nearest.\n"
        "VARIABLE: the data variable (empty for a raster with geolocation arrays); "
        "LON_VARIABLE / LAT_VARIABLE: the coordinate variables (default lon, lat).\n\n"
        "Source: MET Norway 'Aligning Sentinel 1 and 2' notebook (pyresample "
        "resample_nearest, radius of influence 50 m).")

    def initAlgorithm(self, config=None):  # noqa: N802 - QGIS API
        self.addParameter(QgsProcessingParameterFile(
            self.INPUT, self.tr("Swath file (NetCDF/CF, or raster with geolocation arrays)")))
        self.addParameter(QgsProcessingParameterString(
            self.VARIABLE, self.tr("Data variable (e.g. sigmaNought_HV)"), optional=True))
        self.addParameter(QgsProcessingParameterString(
            self.LON_VARIABLE, self.tr("Longitude variable"), defaultValue="lon"))
        self.addParameter(QgsProcessingParameterString(
            self.LAT_VARIABLE, self.tr("Latitude variable"), defaultValue="lat"))
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.TARGET, self.tr("Target grid raster (e.g. a Sentinel-2 band)")))
        self.addParameter(QgsProcessingParameterNumber(
            self.RADIUS, self.tr("Radius of influence (metres)"),
            QgsProcessingParameterNumber.Type.Double, defaultValue=DEFAULT_RADIUS, minValue=0.001))
        self.add_raster_output(self.OUTPUT, "Collocated swath")

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        path = self.parameterAsFile(parameters, self.INPUT, context)
        variable = (self.parameterAsString(parameters, self.VARIABLE, context) or "").strip()
        lon = (self.parameterAsString(parameters, self.LON_VARIABLE, context) or "lon").strip()
        lat = (self.parameterAsString(parameters, self.LAT_VARIABLE, context) or "lat").strip()
        target = self.gdal_layer(parameters, context, self.TARGET)
        radius = self.parameterAsDouble(parameters, self.RADIUS, context)
        output = self.output_path(parameters, context, self.OUTPUT)
        # The core checks the swath file; TARGET must not be overwritten either.
        self.run_core(feedback, _check_output, output, [path, gdal_path(target.source())])
        grid = Grid.of_path(gdal_path(target.source()))
        self.run_core(feedback, collocate_swath, path, variable, grid, output,
                      lon_variable=lon, lat_variable=lat, radius=radius)
        self.style_output(context, output, LINEAR_RAMP)
        return {self.OUTPUT: output}


def _check_output(path, inputs, progress=None, cancel=None):
    check_output_path(path, inputs)
