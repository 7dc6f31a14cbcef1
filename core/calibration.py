"""Sentinel-1 radiometric calibration with thermal-noise removal, blockwise.

``value = (DN^2 - noise) / LUT^2`` (ESA, "Sentinel-1 Level-1 Radiometric
Calibration", ESA-EOPG-CSCOP-TN-0002, and MPC-0392 for the noise), where LUT is
the sigmaNought, betaNought or gamma calibration LUT and noise the thermal-noise
power (range x azimuth LUT), both bilinearly interpolated from the annotation
vectors (:mod:`.s1annotation`) for each block only: no full-size LUT exists.

* DN 0 (no-signal border of GRD products) is NoData; NoData in, NoData out.
* Where the noise exceeds the signal the value is <= 0: ``negative="nodata"``
  makes it NoData, ``negative="floor"`` clamps it to ``floor`` (linear power).
* Output: linear power, or dB (``10*log10``) when ``output_db``; float32, NaN NoData.
* A SAFE GRD is in radar geometry: the output keeps the annotation's geolocation
  grid as GCPs (EPSG:4326) so that it can be warped/collocated.

Also reads the MET Norway NetCDF/CF product, which carries the LUTs as full
arrays: ``Amplitude_<POL>``, ``sigmaNought_<POL>``, ``noiseCorrectionMatrix_<POL>``
and ``lon``/``lat``; those are streamed block by block as aligned rasters.
"""
import os
from typing import Optional

import numpy as np
from osgeo import gdal, osr

from .errors import S1S2Error
from .raster import BandSource, Grid, open_raster
from .s1annotation import POLARISATIONS, SafeProduct, gcps_as_gdal, is_safe_product
from .streaming import stream
from .units import to_db
from .writer import OutputRaster, check_output_path

gdal.UseExceptions()

SIGMA0, BETA0, GAMMA0 = "sigma0", "beta0", "gamma0"
COEFFICIENT_NAMES = (SIGMA0, GAMMA0, BETA0)
NEGATIVE_NODATA, NEGATIVE_FLOOR = "nodata", "floor"
DEFAULT_FLOOR = 1e-5  # linear power, -50 dB: below the noise-equivalent sigma0 of any S1 mode

# MET Norway NetCDF variable name of each coefficient's LUT
_NETCDF_LUT = {SIGMA0: "sigmaNought", BETA0: "betaNought", GAMMA0: "gammaNought"}
_TIME_KEYS = ("ACQUISITION_START", "ACQUISITION_STOP")


def _wgs84_wkt() -> str:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    return srs.ExportToWkt()


def calibrate_values(dn: np.ndarray, lut: np.ndarray, noise: Optional[np.ndarray] = None,
                     negative: str = NEGATIVE_NODATA, floor: float = DEFAULT_FLOOR,
                     output_db: bool = False) -> np.ndarray:
    """``(DN^2 - noise) / LUT^2`` for arrays of equal shape, in float32 unless DN is float64.

    NaN DN (NoData) and a LUT <= 0 give NaN; values <= 0 become NaN or ``floor``.
    float32 is exact enough: DN^2 <= 65535^2 keeps a relative precision of 6e-8.
    """
    if negative not in (NEGATIVE_FLOOR, NEGATIVE_NODATA):
        raise S1S2Error(f"Unknown negative-value policy {negative!r}: use "
                        f"{NEGATIVE_NODATA!r} or {NEGATIVE_FLOOR!r}.")
    dn = np.asarray(dn)
    dtype = np.float64 if dn.dtype == np.float64 else np.float32
    value = np.multiply(dn, dn, dtype=dtype)
    if noise is not None:
        np.subtract(value, noise, out=value, casting="unsafe")
    lut_sq = np.multiply(lut, lut, dtype=dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(value, lut_sq, out=value)
        bad_lut = ~(lut_sq > 0)
        if bad_lut.any():
            value[bad_lut] = np.nan
        non_positive = value <= 0
    if non_positive.any():
        value[non_positive] = floor if negative == NEGATIVE_FLOOR else np.nan
    return to_db(value) if output_db else value


def _check_options(coefficient, negative, polarisation):
    if coefficient not in COEFFICIENT_NAMES:
        raise S1S2Error(f"Unknown coefficient {coefficient!r}: use one of "
                        f"{', '.join(COEFFICIENT_NAMES)}.")
    if negative not in (NEGATIVE_NODATA, NEGATIVE_FLOOR):
        raise S1S2Error(f"Unknown negative-value policy {negative!r}.")
    if polarisation.upper() not in POLARISATIONS:
        raise S1S2Error(f"Unknown polarisation {polarisation!r}: use one of "
                        f"{', '.join(POLARISATIONS)}.")


def _output_spec(output_path, coefficient, polarisation, output_db, metadata, gcps=(),
                 gcp_wkt=""):
    units = "dB" if output_db else "linear power"
    return OutputRaster(output_path, bands=[f"{coefficient}_{polarisation.upper()}"],
                        units=units, metadata=metadata, gcps=gcps, gcp_wkt=gcp_wkt)


def calibrate_safe(product_path: str, polarisation: str, output_path: str,
                   coefficient: str = SIGMA0, noise_removal: bool = True,
                   output_db: bool = False, negative: str = NEGATIVE_NODATA,
                   floor: float = DEFAULT_FLOOR, progress=None, cancel=None,
                   **stream_options) -> str:
    """Calibrate one polarisation of a SAFE GRD product (folder, manifest.safe or zip)."""
    _check_options(coefficient, negative, polarisation)
    polarisation = polarisation.upper()
    product = SafeProduct(product_path)
    try:
        annotation = product.annotation(polarisation)
        lut = product.calibration(polarisation).lut(coefficient)
        noise = product.noise(polarisation) if noise_removal else None
        measurement = product.measurement_path(polarisation)
    finally:
        product.close()
    dataset = open_raster(measurement, f"{product.name} {polarisation} measurement")
    size = (dataset.RasterXSize, dataset.RasterYSize)
    if size != (annotation.width, annotation.height):
        raise S1S2Error(f"{product.name}: the {polarisation} measurement is {size[0]} x "
                        f"{size[1]} px but its annotation declares {annotation.width} x "
                        f"{annotation.height} px; the product is inconsistent.")
    dataset = None
    source = BandSource(measurement, 1, f"{product.name} {polarisation}", zero_is_nodata=True)
    grid = Grid("", (0.0, 1.0, 0.0, 0.0, 0.0, 1.0), size[0], size[1])

    def block(dn, window):
        rows = np.arange(window.yoff, window.yoff + window.ysize, dtype=np.float64)
        cols = np.arange(window.xoff, window.xoff + window.xsize, dtype=np.float64)
        noise_block = noise.evaluate(rows, cols, np.float32) if noise is not None else None
        return calibrate_values(dn, lut.evaluate(rows, cols, np.float32), noise_block, negative,
                                floor, output_db)

    metadata = {"algorithm": "s1s2:calibrate", "product": product.name,
                "polarisation": polarisation, "coefficient": coefficient,
                "noise_removal": str(bool(noise_removal)), "negative": negative,
                "ACQUISITION_START": annotation.start_time.isoformat(),
                "ACQUISITION_STOP": annotation.stop_time.isoformat(),
                "formula": "(DN^2 - noise) / LUT^2" if noise_removal else "DN^2 / LUT^2"}
    spec = _output_spec(output_path, coefficient, polarisation, output_db, metadata,
                        gcps_as_gdal(annotation.gcps), _wgs84_wkt())
    stream_options.setdefault("scratch", 10.0)
    return stream(block, [source], [spec], pass_window=True, grid=grid, progress=progress,
                  cancel=cancel, **stream_options)[0]


# -- MET Norway NetCDF/CF -------------------------------------------------------------------
def _netcdf_file(path: str) -> str:
    """The file behind ``path`` or a ``NETCDF:"file":variable`` subdataset name."""
    if path.upper().startswith("NETCDF:"):
        rest = path[len("NETCDF:"):]
        if rest.startswith('"'):
            return rest[1:rest.index('"', 1)]
        return rest.rsplit(":", 1)[0]
    return path


def is_netcdf(path: str) -> bool:
    path = _netcdf_file(path)
    if not os.path.isfile(path):
        return False
    with open(path, "rb") as handle:
        magic = handle.read(4)
    return magic[:3] == b"CDF" or magic == b"\x89HDF"


def _netcdf_variables(path: str) -> dict:
    """Variable name -> GDAL name. GDAL lists no subdatasets for a file with a single 2-D
    variable (it opens that variable directly): then that variable is the one."""
    dataset = open_raster(path, "S1 NetCDF product")
    names = {}
    for key, value in (dataset.GetMetadata("SUBDATASETS") or {}).items():
        if key.endswith("_NAME"):
            names[value.rsplit(":", 1)[-1]] = value
    if not names and dataset.RasterCount:
        single = dataset.GetRasterBand(1).GetMetadataItem("NETCDF_VARNAME")
        if single:
            names[single] = f'NETCDF:"{_netcdf_file(path)}":{single}'
    return names


def _netcdf_sub(path, variables, name):
    if name not in variables:
        have = ", ".join(sorted(variables)) or "none"
        raise S1S2Error(f"{os.path.basename(path)}: no variable '{name}' in the NetCDF product "
                        f"(variables: {have}).")
    return variables[name]


def netcdf_times(path: str):
    """(start, stop) ISO strings from the ACDD global attributes, or (None, None)."""
    dataset = open_raster(path, "S1 NetCDF product")
    meta = dataset.GetMetadata() or {}
    start = meta.get("NC_GLOBAL#time_coverage_start")
    stop = meta.get("NC_GLOBAL#time_coverage_end") or start
    return start, stop


def netcdf_gcps(lon_name: str, lat_name: str, points: int = 21) -> list:
    """GCPs sampled on a ``points`` x ``points`` lattice of the lon/lat arrays (pixel centres)."""
    lon_ds, lat_ds = open_raster(lon_name, "lon"), open_raster(lat_name, "lat")
    width, height = lon_ds.RasterXSize, lon_ds.RasterYSize
    xs = np.unique(np.linspace(0, width - 1, min(points, width)).round().astype(int))
    ys = np.unique(np.linspace(0, height - 1, min(points, height)).round().astype(int))
    lon_band, lat_band = lon_ds.GetRasterBand(1), lat_ds.GetRasterBand(1)
    gcps = []
    for y in ys:  # one row at a time: bounded memory
        lon_row = lon_band.ReadAsArray(0, int(y), width, 1, buf_type=gdal.GDT_Float64)[0]
        lat_row = lat_band.ReadAsArray(0, int(y), width, 1, buf_type=gdal.GDT_Float64)[0]
        for x in xs:
            if np.isfinite(lon_row[x]) and np.isfinite(lat_row[x]):
                gcps.append(gdal.GCP(float(lon_row[x]), float(lat_row[x]), 0.0, x + 0.5,
                                     y + 0.5, "", str(len(gcps))))
    return gcps


def calibrate_netcdf(path: str, polarisation: str, output_path: str, **options) -> str:
    """Calibrate a MET Norway NetCDF/CF Sentinel-1 product (full-size LUT variables).

    The arrays are read in the file's row order (GDAL would flip swath arrays that
    have no y coordinate "bottom-up"), so the output rows are the product's rows.
    """
    previous = gdal.GetConfigOption("GDAL_NETCDF_BOTTOMUP")
    gdal.SetConfigOption("GDAL_NETCDF_BOTTOMUP", "NO")
    try:
        return _calibrate_netcdf(path, polarisation, output_path, **options)
    finally:
        gdal.SetConfigOption("GDAL_NETCDF_BOTTOMUP", previous)


def _calibrate_netcdf(path: str, polarisation: str, output_path: str,
                      coefficient: str = SIGMA0, noise_removal: bool = True,
                      output_db: bool = False, negative: str = NEGATIVE_NODATA,
                      floor: float = DEFAULT_FLOOR, progress=None, cancel=None,
                      **stream_options) -> str:
    _check_options(coefficient, negative, polarisation)
    polarisation = polarisation.upper()
    path = _netcdf_file(path)
    variables = _netcdf_variables(path)
    names = [_netcdf_sub(path, variables, f"Amplitude_{polarisation}"),
             _netcdf_sub(path, variables, f"{_NETCDF_LUT[coefficient]}_{polarisation}")]
    if noise_removal:
        names.append(_netcdf_sub(path, variables, f"noiseCorrectionMatrix_{polarisation}"))
    labels = ["amplitude", "calibration LUT", "noise"]
    sources = [BandSource(name, 1, label, zero_is_nodata=(i == 0))
               for i, (name, label) in enumerate(zip(names, labels))]
    lon = variables.get("lon") or variables.get("longitude")
    lat = variables.get("lat") or variables.get("latitude")
    gcps = netcdf_gcps(lon, lat) if lon and lat else []
    first = open_raster(names[0])
    grid = Grid("", (0.0, 1.0, 0.0, 0.0, 0.0, 1.0), first.RasterXSize, first.RasterYSize)
    for name, source in zip(names[1:], sources[1:]):
        ds = open_raster(name)
        if (ds.RasterXSize, ds.RasterYSize) != (grid.width, grid.height):
            raise S1S2Error(f"{os.path.basename(path)}: {source.name} is {ds.RasterXSize} x "
                            f"{ds.RasterYSize} px, the amplitude {grid.width} x {grid.height}.")
    first = None
    start, stop = netcdf_times(path)

    def block(amplitude, lut, noise=None):
        return calibrate_values(amplitude, lut, noise, negative, floor, output_db)

    metadata = {"algorithm": "s1s2:calibrate", "product": os.path.basename(path),
                "polarisation": polarisation, "coefficient": coefficient,
                "noise_removal": str(bool(noise_removal)), "negative": negative}
    if start:
        metadata.update(ACQUISITION_START=start, ACQUISITION_STOP=stop)
    spec = _output_spec(output_path, coefficient, polarisation, output_db, metadata, gcps,
                        _wgs84_wkt() if gcps else "")
    stream_options.setdefault("scratch", 4.0)
    # The grid is given: the variables share the file's dimensions (checked above).
    return stream(block, sources, [spec], grid=grid, progress=progress, cancel=cancel,
                  **stream_options)[0]


def calibrate(input_path: str, polarisation: str, output_path: str, **options) -> str:
    """Calibrate a SAFE product (folder, manifest.safe, zip) or a MET Norway NetCDF product."""
    if not input_path:
        raise S1S2Error("INPUT: no Sentinel-1 product given.")
    # stream() checks the measurement it reads; the product file itself is an input too.
    check_output_path(output_path, [input_path])
    if is_safe_product(input_path):
        return calibrate_safe(input_path, polarisation, output_path, **options)
    if is_netcdf(input_path):
        return calibrate_netcdf(input_path, polarisation, output_path, **options)
    if not os.path.exists(_netcdf_file(input_path)):
        raise S1S2Error(f"INPUT: '{input_path}' does not exist.")
    raise S1S2Error(f"INPUT: '{input_path}' is neither a Sentinel-1 SAFE product (.SAFE folder, "
                    "manifest.safe or .zip) nor a NetCDF file.")


def product_times(path: str):
    """(start, stop) datetimes of a raster written by calibrate, a SAFE or NetCDF product.

    Reads, in order: the ACQUISITION_START/STOP metadata, the SAFE annotation,
    the NetCDF ACDD attributes. Returns (None, None) when unknown.
    """
    from .s1annotation import parse_time
    if is_safe_product(path):
        product = SafeProduct(path)
        try:
            pol = product.polarisations[0]
            ann = product.annotation(pol)
        finally:
            product.close()
        return ann.start_time, ann.stop_time
    try:
        dataset = gdal.Open(path)
    except RuntimeError:
        return None, None
    if dataset is None:
        return None, None
    meta = dataset.GetMetadata() or {}
    start = meta.get(_TIME_KEYS[0]) or meta.get("NC_GLOBAL#time_coverage_start")
    stop = meta.get(_TIME_KEYS[1]) or meta.get("NC_GLOBAL#time_coverage_end") or start
    if not start:
        return None, None
    try:
        return parse_time(start), parse_time(stop)
    except ValueError:
        return None, None
