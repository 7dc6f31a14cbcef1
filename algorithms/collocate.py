"""s1s2:collocate - a georeferenced raster onto the exact pixel grid of a target raster."""
from qgis.core import (
    QgsProcessingException,
    QgsProcessingParameterBand,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterRasterLayer,
)

from osgeo import gdal

from ..core.collocate import RESAMPLING_METHODS, collocate_to_grid, looks_like_db
from ..core.raster import Grid
from ..core.styles import DB_RAMP, LINEAR_RAMP
from ..core.writer import check_output_path
from .base import S1S2Algorithm, gdal_path


class Collocate(S1S2Algorithm):
    INPUT = "INPUT"
    BAND = "BAND"
    TARGET = "TARGET"
    RESAMPLING = "RESAMPLING"
    LINEAR_UNITS = "LINEAR_UNITS"
    OUTPUT = "OUTPUT"

    ALGORITHM_NAME = "collocate"
    DISPLAY_NAME = "Collocate onto a target grid (S1 onto S2)"
    GROUP = "Collocation"
    GROUP_ID = "collocation"
    ICON = "collocation"
    TAGS = ("collocation", "resample", "regrid", "warp", "reproject", "coregistration",
            "Sentinel-1", "Sentinel-2", "SAR")
    ADVANCED = ("LINEAR_UNITS",)
    HELP = (
        "Resamples INPUT (e.g. Sentinel-1 backscatter, in any CRS, or georeferenced only by "
        "ground control points such as an S1 GRD measurement TIFF or a SAFE product opened by "
        "GDAL) onto the pixel grid of TARGET (e.g. a Sentinel-2 band). The output has exactly "
        "the target's CRS, geotransform, width and height.\n\n"
        "BAND: one band, or 0 / unset for all bands. RESAMPLING: nearest, bilinear, cubic or "
        "average (GDAL warp). Categorical rasters (SCL, masks, class rasters: colour table or "
        "class-like names) are always resampled with nearest, with a warning.\n"
        "LINEAR_UNITS (default on): a dB input (unit 'dB' or negative values) is converted to "
        "linear power, x = 10^(dB/10), before interpolating and back to dB after, "
        "dB = 10*log10(x); averaging decibels would bias the result low.\n"
        "GCP-only inputs use a thin plate spline through the GCPs (polynomial below 10 GCPs). "
        "Source NoData is honoured; output float32, NoData NaN; no overlap is an error.\n\n"
        "Source: GDAL warp (gdalwarp), as in the MET Norway 'Aligning Sentinel 1 and 2' "
        "notebook.")

    METHODS = list(RESAMPLING_METHODS)

    def initAlgorithm(self, config=None):  # noqa: N802 - QGIS API
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.INPUT, self.tr("Raster to collocate (e.g. Sentinel-1)")))
        self.addParameter(QgsProcessingParameterBand(
            self.BAND, self.tr("Band (0 or unset: all bands)"), defaultValue=0,
            parentLayerParameterName=self.INPUT, optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.TARGET, self.tr("Target grid raster (e.g. a Sentinel-2 band)")))
        self.addParameter(QgsProcessingParameterEnum(
            self.RESAMPLING, self.tr("Resampling"), options=self.METHODS, defaultValue=1))
        self.addParameter(QgsProcessingParameterBoolean(
            self.LINEAR_UNITS, self.tr("Interpolate dB input in linear power"),
            defaultValue=True))
        self.add_raster_output(self.OUTPUT, "Collocated raster")

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        layer = self.gdal_layer(parameters, context, self.INPUT)
        target = self.gdal_layer(parameters, context, self.TARGET)
        band = 0
        if parameters.get(self.BAND) is not None:
            band = self.parameterAsInt(parameters, self.BAND, context) or 0
        if band > layer.bandCount():
            raise QgsProcessingException(self.tr(
                f"{self.BAND}: band {band} requested but '{layer.name()}' has "
                f"{layer.bandCount()} band(s)."))
        for number in ([band] if band else range(1, layer.bandCount() + 1)):
            self.check_complex(gdal_path(layer.source()), number, self.INPUT)
        resampling = self.METHODS[self.parameterAsEnum(parameters, self.RESAMPLING, context)]
        linear = "auto" if self.parameterAsBool(parameters, self.LINEAR_UNITS, context) else False
        output = self.output_path(parameters, context, self.OUTPUT)
        # The core checks the raster to collocate; TARGET must not be overwritten either.
        self.run_core(feedback, _check_output, output,
                      [gdal_path(layer.source()), gdal_path(target.source())])
        grid = self.run_core(feedback, _grid_of, gdal_path(target.source()))
        self.run_core(feedback, collocate_to_grid, gdal_path(layer.source()), grid, output,
                      resampling=resampling, linear_units=linear,
                      bands=[band] if band else None, warn=feedback.pushWarning)
        out = gdal.Open(output)
        db = looks_like_db(out, 1)
        out = None
        self.style_output(context, output, DB_RAMP if db else LINEAR_RAMP)
        return {self.OUTPUT: output}


def _check_output(path, inputs, progress=None, cancel=None):
    check_output_path(path, inputs)


def _grid_of(path, progress=None, cancel=None):
    return Grid.of_path(path)
