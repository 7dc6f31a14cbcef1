"""Linear <-> decibel conversion of SAR backscatter.

Convention (SPEC, Conventions): ``to_db(x) = 10*log10(x)``; ``x <= 0`` or NaN
gives NaN (NoData), never -inf. ``from_db(d) = 10**(d/10)``.
"""
import numpy as np
from osgeo import gdal

from .errors import S1S2Error
from .raster import BandSource, nodata_values, open_band, require_band_source
from .streaming import stream
from .writer import OutputRaster

LINEAR_TO_DB = "linear_to_db"
DB_TO_LINEAR = "db_to_linear"


def to_db(linear: np.ndarray) -> np.ndarray:
    """10*log10(x) of linear power; x <= 0 and NaN -> NaN."""
    linear = np.asarray(linear)
    out = np.full(linear.shape, np.nan, dtype=np.result_type(linear.dtype, np.float32))
    positive = linear > 0
    np.log10(linear, out=out, where=positive)
    out *= 10.0
    return out


def from_db(db: np.ndarray) -> np.ndarray:
    """10**(d/10): dB to linear power; NaN stays NaN."""
    db = np.asarray(db)
    return np.power(np.asarray(10.0, dtype=np.result_type(db.dtype, np.float32)), db / 10.0)


def band_holds_db(dataset: gdal.Dataset, band: gdal.Band, nodata=(),
                  sample_size: int = 64) -> bool:
    """True when a backscatter band holds dB: its unit metadata says dB, or most valid
    values of a small sample (nine windows spread over the raster) are negative.

    Linear power is never negative; the few negatives left by thermal-noise removal
    do not move the median (a minimum would). A band without valid samples is not dB.
    """
    if gdal.DataTypeIsComplex(band.DataType):
        return False  # SAR SLC: complex amplitudes, read as intensity |z|^2 (linear power)
    unit = (band.GetUnitType() or band.GetMetadataItem("units") or
            dataset.GetMetadataItem("units") or "").strip().lower()
    if unit in ("db", "decibel", "decibels"):
        return True
    if unit:
        return False
    width, height = dataset.RasterXSize, dataset.RasterYSize
    xs, ys = min(sample_size, width), min(sample_size, height)
    samples = []
    for fy in (0.1, 0.5, 0.9):
        for fx in (0.1, 0.5, 0.9):
            x0 = int(min(max(fx * width - xs / 2, 0), width - xs))
            y0 = int(min(max(fy * height - ys / 2, 0), height - ys))
            block = band.ReadAsArray(x0, y0, xs, ys, buf_type=gdal.GDT_Float64).ravel()
            valid = np.isfinite(block) & ~np.isin(block, list(nodata))
            declared = band.GetNoDataValue()
            if declared is not None:
                valid &= block != declared
            samples.append(block[valid])
    sample = np.concatenate(samples)
    return bool(sample.size) and bool(np.median(sample) < 0)


def holds_db_values(source: BandSource) -> bool:
    """:func:`band_holds_db` of one BandSource (its NoData rules applied)."""
    dataset, band = open_band(source)
    try:
        return band_holds_db(dataset, band, nodata_values(source, band))
    except RuntimeError as exc:
        raise S1S2Error(f"{source.name}: reading '{source.path}' failed ({exc}); the file may "
                        "be damaged or incomplete.") from None


def require_linear(source: BandSource, what_to_do: str) -> None:
    """S1S2Error (ending with ``what_to_do``) when ``source`` is read as linear power but
    holds dB: linear-only formulas would turn it into NoData or nonsense without a word."""
    if holds_db_values(source):
        raise S1S2Error(
            f"{source.name}: the values are in dB (unit metadata 'dB' or mostly negative) but "
            f"are read as linear power; {what_to_do}.")


def convert_db_file(source: BandSource, output_path: str, direction: str = LINEAR_TO_DB,
                    progress=None, cancel=None, **stream_options) -> str:
    """Convert one band between linear power and dB, file to file (float32 GeoTIFF)."""
    require_band_source(source, "INPUT")
    if direction == LINEAR_TO_DB:
        require_linear(source, "it is converted already (DIRECTION: dB to linear power "
                               "converts it back)")
        func, band_name, units = to_db, "Backscatter (dB)", "dB"
    elif direction == DB_TO_LINEAR:
        func, band_name, units = from_db, "Backscatter (linear power)", "linear power"
    else:
        raise S1S2Error(f"Unknown direction {direction!r}: use {LINEAR_TO_DB!r} or {DB_TO_LINEAR!r}.")
    output = OutputRaster(output_path, bands=[band_name], units=units,
                          metadata={"algorithm": "s1s2:dbconvert", "direction": direction,
                                    "source": f"{source.path} band {source.band}"})
    return stream(func, [source], [output], progress=progress, cancel=cancel,
                  scratch=1.0, **stream_options)[0]
