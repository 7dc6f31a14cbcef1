"""s1s2:stackstatistics - per-pixel temporal statistics over co-registered rasters (dates)."""
from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingParameterEnum,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingUtils,
)

from ..core.raster import BandSource
from ..core.stackstats import COUNT, MAX, MEAN, MEDIAN, MIN, STD, count_ramp, grey_ramp
from ..core.stackstats import stack_statistics_file
from .base import S1S2Algorithm, check_gdal_layer, check_output_extension, gdal_path

# (statistic, label, output parameter id); the order is the STATISTICS enum order.
STATISTICS = [(MEDIAN, "Median", "OUTPUT_MEDIAN"),
              (STD, "Standard deviation (population, ddof = 0)", "OUTPUT_STD"),
              (MEAN, "Mean", "OUTPUT_MEAN"),
              (MIN, "Minimum", "OUTPUT_MIN"),
              (MAX, "Maximum", "OUTPUT_MAX"),
              (COUNT, "Valid count", "OUTPUT_COUNT")]


class StackStatistics(S1S2Algorithm):
    COMPLEX_AS_INTENSITY = ("INPUTS",)  # SAR SLC input: intensity |z|^2
    INPUTS = "INPUTS"
    BAND = "BAND"
    STATISTICS = "STATISTICS"
    MIN_VALID = "MIN_VALID"

    ALGORITHM_NAME = "stackstatistics"
    DISPLAY_NAME = "Stack statistics (temporal median, std, ...)"
    GROUP = "Time series"
    GROUP_ID = "timeseries"
    ICON = "time_series"
    TAGS = ("time series", "temporal", "multitemporal", "median", "statistics", "stack",
            "Sentinel-1", "SAR")
    ADVANCED = ("MIN_VALID",)
    HELP = (
        "Per-pixel statistics over a stack of rasters on one grid (e.g. the dates of a "
        "Sentinel-1 time series), as the temporal median / standard deviation of the Earth "
        "Engine 'VV/VH ratios' recipe.\n\n"
        "INPUTS: the rasters (one per date); BAND: the band read from each. All inputs must "
        "share CRS, pixel grid and size: otherwise the first mismatching input is named "
        "(collocate it first).\n"
        "STATISTICS: any of median, standard deviation, mean, minimum, maximum, valid count; "
        "one output raster per chosen statistic (OUTPUT_MEDIAN, OUTPUT_STD, OUTPUT_MEAN, "
        "OUTPUT_MIN, OUTPUT_MAX, OUTPUT_COUNT); outputs of statistics not chosen are not "
        "written.\n"
        "NoData is ignored per pixel. A pixel with fewer than MIN_VALID valid dates is NoData "
        "in every statistic (the valid count is always written for it).\n"
        "The standard deviation is the population standard deviation, sqrt(sum((x - mean)^2) "
        "/ n) (ddof = 0, numpy.nanstd's default); the median of an even count is the mean of "
        "the two middle values (numpy.nanmedian). Statistics are computed in float64 and "
        "written as float32 (NoData NaN); the count as UInt16.\n\n"
        "Processing is blockwise across all dates: memory grows with block size x number of "
        "dates, not with the raster size. Values are averaged as given: average backscatter "
        "in linear power, not in dB, unless dB statistics are wanted.")

    def initAlgorithm(self, config=None):  # noqa: N802 - QGIS API
        self.addParameter(QgsProcessingParameterMultipleLayers(
            self.INPUTS, self.tr("Rasters (dates) on one grid"),
            QgsProcessing.SourceType.TypeRaster))
        self.addParameter(QgsProcessingParameterNumber(
            self.BAND, self.tr("Band of each raster"), QgsProcessingParameterNumber.Type.Integer,
            defaultValue=1, minValue=1))
        self.addParameter(QgsProcessingParameterEnum(
            self.STATISTICS, self.tr("Statistics"), options=[self.tr(s[1]) for s in STATISTICS],
            allowMultiple=True, defaultValue=[0, 1]))
        self.addParameter(QgsProcessingParameterNumber(
            self.MIN_VALID, self.tr("Minimum number of valid dates"),
            QgsProcessingParameterNumber.Type.Integer, defaultValue=1, minValue=1))
        for _, label, output_id in STATISTICS:
            self.addParameter(QgsProcessingParameterRasterDestination(
                output_id, self.tr(label), optional=True, createByDefault=True))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        layers = self.parameterAsLayerList(parameters, self.INPUTS, context)
        if not layers:
            raise QgsProcessingException(self.tr("INPUTS: give at least one raster."))
        band = self.parameterAsInt(parameters, self.BAND, context)
        sources = []
        for i, layer in enumerate(layers, start=1):
            check_gdal_layer(layer, f"INPUTS #{i}")
            if band > layer.bandCount():
                raise QgsProcessingException(self.tr(
                    f"{self.BAND}: band {band} requested but INPUTS #{i} ('{layer.name()}') "
                    f"has {layer.bandCount()} band(s)."))
            self.check_complex(gdal_path(layer.source()), band, f"INPUTS #{i}")
            sources.append(BandSource(gdal_path(layer.source()), band,
                                      f"INPUTS #{i} ({layer.name()})"))
        chosen = self.parameterAsEnums(parameters, self.STATISTICS, context)
        if not chosen:
            raise QgsProcessingException(self.tr("STATISTICS: choose at least one statistic."))
        outputs = {}
        for index in sorted(set(chosen)):
            name, _, output_id = STATISTICS[index]
            path = self.parameterAsOutputLayer(parameters, output_id, context)
            if not path:  # chosen but no file given (qgis_process): a temporary file
                path = QgsProcessingUtils.generateTempFilename(f"{output_id.lower()}.tif")
                feedback.pushInfo(f"{output_id}: no file given, writing {path}")
            check_output_extension(path, output_id)
            outputs[name] = path
        min_valid = self.parameterAsInt(parameters, self.MIN_VALID, context)
        written = self.run_core(feedback, stack_statistics_file, sources, outputs, min_valid)
        # Do not ask QGIS to load outputs of statistics that were not chosen.
        ids = {name: output_id for name, _, output_id in STATISTICS}
        unwritten = [self.parameterAsOutputLayer(parameters, ids[name], context)
                     for name, _, _ in STATISTICS if name not in written]
        to_load = context.layersToLoadOnCompletion()
        for path in unwritten:
            to_load.pop(path, None)
        context.setLayersToLoadOnCompletion(to_load)
        results = {}
        for name, path in written.items():
            style = count_ramp(len(sources)) if name == COUNT else grey_ramp(name, path)
            self.style_output(context, path, style)
            results[ids[name]] = path
        return results
