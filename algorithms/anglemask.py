"""s1s2:anglemask - keep a raster only where the incidence angle lies in (MIN_ANGLE, MAX_ANGLE)."""
from ..core.indices import angle_mask_file
from ..core.stackstats import grey_ramp
from .base import S1S2Algorithm
from .vvvhratio import add_angle_range


class AngleMask(S1S2Algorithm):
    COMPLEX_AS_INTENSITY = ("INPUT",)  # SAR SLC input: intensity |z|^2
    INPUT = "INPUT"
    BAND = "BAND"
    ANGLE = "ANGLE"
    ANGLE_BAND = "ANGLE_BAND"
    MIN_ANGLE = "MIN_ANGLE"
    MAX_ANGLE = "MAX_ANGLE"
    OUTPUT = "OUTPUT"

    ALGORITHM_NAME = "anglemask"
    DISPLAY_NAME = "Mask by incidence angle"
    GROUP = "Sentinel-1"
    GROUP_ID = "sentinel1"
    ICON = "sar"
    TAGS = ("SAR", "radar", "Sentinel-1", "backscatter", "sigma0", "incidence angle", "mask")
    HELP = (
        "Copies one band of any raster where MIN_ANGLE < angle < MAX_ANGLE and sets NoData "
        "elsewhere (and where the angle is NoData). The angle raster (degrees) must be on the "
        "same grid, e.g. the 'angle' band of a Sentinel-1 GRD export; collocate it first "
        "otherwise.\n\n"
        "Defaults 30.64 and 45.54 degrees (both exclusive) are those of the Earth Engine "
        "'VV/VH ratios' recipe, which removes the near- and far-range edges of the IW swath.\n\n"
        "Source: Earth Engine community notebook 'VV/VH ratios'. Output: float32 GeoTIFF, "
        "NoData NaN, styled as a grey stretch over its value range.")

    def initAlgorithm(self, config=None):  # noqa: N802 - QGIS API
        self.add_band_input(self.INPUT, self.BAND, "Raster to mask")
        self.add_band_input(self.ANGLE, self.ANGLE_BAND, "Incidence angle (degrees)")
        add_angle_range(self)
        self.add_raster_output(self.OUTPUT, "Masked raster")

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        source = self.band_source(parameters, context, self.INPUT, self.BAND)
        angle = self.band_source(parameters, context, self.ANGLE, self.ANGLE_BAND)
        min_angle = self.parameterAsDouble(parameters, self.MIN_ANGLE, context)
        max_angle = self.parameterAsDouble(parameters, self.MAX_ANGLE, context)
        output = self.output_path(parameters, context, self.OUTPUT)
        self.run_core(feedback, angle_mask_file, source, angle, output, min_angle, max_angle)
        self.style_output(context, output, grey_ramp("angle_masked", output))
        return {self.OUTPUT: output}
