"""s1s2:seaice - sea-ice / open-water masks from S1 HV and S2 green, with their statistics."""
from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
)

from ..core.calibration import is_netcdf
from ..core.raster import BandSource
from ..core.s1annotation import is_safe_product
from ..core.seaice import is_db_raster, sea_ice
from ..core.styles import ICE_PALETTE
from .base import S1S2Algorithm


class SeaIce(S1S2Algorithm):
    S1 = "S1"
    S1_BAND = "S1_BAND"
    S1_PRODUCT = "S1_PRODUCT"
    S1_UNITS = "S1_UNITS"
    S2_GREEN = "S2_GREEN"
    S2_GREEN_BAND = "S2_GREEN_BAND"
    S1_THRESHOLD_DB = "S1_THRESHOLD_DB"
    S1_MEDIAN_SIZE = "S1_MEDIAN_SIZE"
    S2_THRESHOLD = "S2_THRESHOLD"
    FILL_HOLES = "FILL_HOLES"
    OUTPUT_S1_ICE = "OUTPUT_S1_ICE"
    OUTPUT_S2_ICE = "OUTPUT_S2_ICE"
    NUMBERS = [
        ("S1_ICE_CONCENTRATION", "S1 ice concentration (ice / valid pixels)"),
        ("S2_ICE_CONCENTRATION", "S2 ice concentration (ice / valid pixels)"),
        ("AGREEMENT", "Agreement of the masks (fraction of pixels valid in both)"),
        ("S1_FEATURES", "S1 connected ice features (8-connectivity)"),
        ("S2_FEATURES", "S2 connected ice features (8-connectivity)"),
        ("TIME_DIFFERENCE_HOURS", "Acquisition time difference (hours)"),
    ]
    UNITS = [(None, "Auto (detect: unit metadata, else negative values mean dB)"),
             (False, "Linear power"), (True, "dB")]

    ALGORITHM_NAME = "seaice"
    DISPLAY_NAME = "Sea-ice mask (S1 HV + S2 green)"
    GROUP = "Sentinel-1 + Sentinel-2"
    GROUP_ID = "fusion"
    ICON = "sea_ice"
    TAGS = ("sea ice", "ice", "open water", "Sentinel-1", "Sentinel-2", "SAR", "radar", "HV",
            "mask", "calibration")
    ADVANCED = ("S1_MEDIAN_SIZE", "FILL_HOLES")
    HELP = (
        "Sea-ice / open-water masks from Sentinel-1 HV backscatter and Sentinel-2 green (B03), "
        "following the MET Norway 'Aligning Sentinel 1 and 2' recipe, done right.\n\n"
        "S1: HV sigma0 (linear power or dB), or a product calibrated on the fly (sigma0 = "
        "(DN^2 - noise) / A^2): a SAFE manifest.safe / .zip, or a MET Norway NetCDF product "
        "(Amplitude_HV, sigmaNought_HV, noiseCorrectionMatrix_HV, lon, lat), given as "
        "S1_PRODUCT instead of S1. Median filter S1_MEDIAN_SIZE x "
        "S1_MEDIAN_SIZE, dB, open water where sigma0_dB < S1_THRESHOLD_DB (recipe: rescale "
        "-30..-4 dB to 0..255 and take < 1, i.e. about -30 dB). S1 is collocated onto the S2 "
        "grid (bilinear, linear power) when needed.\n"
        "S2: open water where B03 < S2_THRESHOLD DN (default 2500); FILL_HOLES fills holes of "
        "the water mask (binary_fill_holes semantics on the whole image, computed blockwise). "
        "The recipe calls this mask 'ice sheets', but it marks dark open water: ice is its "
        "complement.\n\n"
        "Outputs: uint8 masks (1 ice, 0 open water, 255 NoData) and numbers: ice concentration "
        "per sensor (ice / valid pixels), AGREEMENT (fraction of the pixels valid in both where "
        "the masks agree), connected ice features (8-connectivity) and the acquisition time "
        "difference in hours (from product metadata or file names; empty when unknown).\n\n"
        "Source: MET Norway 'Aligning Sentinel 1 and 2' notebook; scipy.ndimage.")

    def initAlgorithm(self, config=None):  # noqa: N802 - QGIS API
        self.add_band_input(self.S1, self.S1_BAND, "S1 HV backscatter (sigma0 raster)",
                            optional=True)
        self.addParameter(QgsProcessingParameterFile(
            self.S1_PRODUCT, self.tr("or: S1 product calibrated on the fly (.zip, manifest.safe, "
                                     ".nc)"), behavior=QgsProcessingParameterFile.Behavior.File,
            optional=True, fileFilter=self.tr("Sentinel-1 products (*.zip *.ZIP manifest.safe "
                                              "*.nc);;All files (*)")))
        self.addParameter(QgsProcessingParameterEnum(
            self.S1_UNITS, self.tr("Sentinel-1 units"), options=[self.tr(t) for _, t in self.UNITS],
            defaultValue=0))
        self.add_band_input(self.S2_GREEN, self.S2_GREEN_BAND, "S2 green (B03, DN)")
        self.addParameter(QgsProcessingParameterNumber(
            self.S1_THRESHOLD_DB, self.tr("S1 open-water threshold (dB)"),
            QgsProcessingParameterNumber.Type.Double, defaultValue=-30.0))
        self.addParameter(QgsProcessingParameterNumber(
            self.S1_MEDIAN_SIZE, self.tr("S1 median filter size (odd, pixels)"),
            QgsProcessingParameterNumber.Type.Integer, defaultValue=5, minValue=1, maxValue=51))
        self.addParameter(QgsProcessingParameterNumber(
            self.S2_THRESHOLD, self.tr("S2 open-water threshold (B03 DN)"),
            QgsProcessingParameterNumber.Type.Double, defaultValue=2500.0))
        self.addParameter(QgsProcessingParameterBoolean(
            self.FILL_HOLES, self.tr("Fill holes in the S2 water mask"), defaultValue=True))
        self.add_raster_output(self.OUTPUT_S1_ICE, "S1 ice mask")
        self.add_raster_output(self.OUTPUT_S2_ICE, "S2 ice mask")
        for name, description in self.NUMBERS:
            self.addOutput(QgsProcessingOutputNumber(name, self.tr(description)))

    def _s1_path(self, parameters, context):
        """(path, band) of S1: the S1 raster layer or the S1_PRODUCT file, exactly one."""
        product = self.parameterAsFile(parameters, self.S1_PRODUCT, context)
        source = self.band_source(parameters, context, self.S1, self.S1_BAND)
        if bool(product) == (source is not None):
            raise QgsProcessingException(self.tr(
                "Give either S1 (an HV backscatter raster) or S1_PRODUCT (a SAFE .zip / "
                "manifest.safe or MET Norway .nc product), not both and not neither."))
        if product:
            if not (is_safe_product(product) or is_netcdf(product)):
                raise QgsProcessingException(self.tr(
                    f"S1_PRODUCT: '{product}' is neither a Sentinel-1 SAFE product nor NetCDF."))
            return product, 1
        if is_netcdf(source.path) or is_safe_product(source.path):
            return source.path, 1
        return source.path, source.band

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        s1_path, s1_band = self._s1_path(parameters, context)
        green = self.band_source(parameters, context, self.S2_GREEN, self.S2_GREEN_BAND,
                                 zero_is_nodata=True)
        median = self.parameterAsInt(parameters, self.S1_MEDIAN_SIZE, context)
        if median % 2 == 0:
            raise QgsProcessingException(self.tr(
                f"S1_MEDIAN_SIZE must be odd (a centred window), not {median}."))
        s1_input_db = self.UNITS[self.parameterAsEnum(parameters, self.S1_UNITS, context)][0]
        if s1_input_db is None and not (is_netcdf(s1_path) or is_safe_product(s1_path)):
            detected = self.run_core(feedback, _is_db, BandSource(s1_path, s1_band, "S1"))
            self.note_input(f"{self.label(self.S1_UNITS)}: Auto (detect) found "
                            f"{'dB' if detected else 'linear power'} in S1 (unit metadata, "
                            "else the sign of the values)")
        out_s1 = self.output_path(parameters, context, self.OUTPUT_S1_ICE)
        out_s2 = self.output_path(parameters, context, self.OUTPUT_S2_ICE)
        numbers = self.run_core(
            feedback, sea_ice, s1_path, BandSource(green.path, green.band, "S2_GREEN",
                                                   zero_is_nodata=True),
            out_s1, out_s2, s1_band=s1_band,
            s1_threshold_db=self.parameterAsDouble(parameters, self.S1_THRESHOLD_DB, context),
            s1_median_size=median,
            s2_threshold=self.parameterAsDouble(parameters, self.S2_THRESHOLD, context),
            fill_holes=self.parameterAsBoolean(parameters, self.FILL_HOLES, context),
            s1_input_db=s1_input_db)
        for path in (out_s1, out_s2):
            self.style_output(context, path, ICE_PALETTE)
        for name, description in self.NUMBERS:
            value = numbers.get(name)
            feedback.pushInfo(f"{description}: {'unknown' if value is None else value}")
        results = {self.OUTPUT_S1_ICE: out_s1, self.OUTPUT_S2_ICE: out_s2}
        results.update({name: numbers.get(name) for name, _ in self.NUMBERS})
        return results


def _is_db(source, progress=None, cancel=None):
    return is_db_raster(source)
