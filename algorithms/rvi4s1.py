"""s1s2:rvi4s1 - the dual-pol radar vegetation index RVI4S1 (Bhogapurapu et al. 2022)."""
from ..core.indices import rvi4s1_file
from ..core.styles import RVI4S1_RAMP
from .base import S1S2Algorithm


class Rvi4s1(S1S2Algorithm):
    COMPLEX_AS_INTENSITY = ("VV", "VH")  # SAR SLC input: intensity |z|^2
    VV = "VV"
    VV_BAND = "VV_BAND"
    VH = "VH"
    VH_BAND = "VH_BAND"
    INPUT_UNITS = "INPUT_UNITS"
    OUTPUT = "OUTPUT"

    ALGORITHM_NAME = "rvi4s1"
    DISPLAY_NAME = "Radar vegetation index RVI4S1"
    GROUP = "Sentinel-1"
    GROUP_ID = "sentinel1"
    ICON = "indices"
    TAGS = ("SAR", "radar", "Sentinel-1", "backscatter", "sigma0", "vegetation", "index", "RVI",
            "dual-pol")
    HELP = (
        "RVI4S1, the dual-polarisation radar vegetation index of Bhogapurapu et al. (2022) as in "
        "the Sentinel Hub RVI4S1 custom script:\n"
        "q = VH / VV (linear power), RVI4S1 = q (q + 3) / (q + 1)^2 "
        "(= 1 - m*beta with m = (1 - q)/(1 + q), beta = 1/(1 + q)).\n\n"
        "0 for q = 0, 1 for q = 1; it lies in [0, 1] while VH <= VV and exceeds 1 when VH > VV "
        "(maximum 1.125 at q = 3): such values are kept, not clipped.\n"
        "Not to be confused with other 'RVI's: 4 VH / (VV + VH) (dual-pol RVI), the optical "
        "NIR/Red ratio (Orfeo ToolBox) or DpRVI (SNAP).\n\n"
        "Input units (INPUT_UNITS): linear power (sigma0/gamma0), dB (converted with "
        "10^(dB/10)) or Auto (detect, the default: unit metadata, else negative values mean "
        "dB; the log says which). VV = 0, "
        "negative linear power and NoData give NoData. Source: Bhogapurapu, N. et al. (2022), "
        "'Soil moisture retrieval over croplands using dual-pol L-band GRD SAR data', Remote "
        "Sensing of Environment 271; Sentinel Hub custom-scripts 'RVI4S1'. Output: float32 "
        "GeoTIFF, NoData NaN.")

    def initAlgorithm(self, config=None):  # noqa: N802 - QGIS API
        self.add_band_input(self.VV, self.VV_BAND, "VV backscatter")
        self.add_band_input(self.VH, self.VH_BAND, "VH backscatter")
        self.add_units_parameter(self.INPUT_UNITS)
        self.add_raster_output(self.OUTPUT, "RVI4S1")

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        vv = self.band_source(parameters, context, self.VV, self.VV_BAND)
        vh = self.band_source(parameters, context, self.VH, self.VH_BAND)
        units = self.units(parameters, context, self.INPUT_UNITS, [vv, vh])
        output = self.output_path(parameters, context, self.OUTPUT)
        self.run_core(feedback, rvi4s1_file, vv, vh, output, units)
        self.style_output(context, output, RVI4S1_RAMP)
        return {self.OUTPUT: output}
