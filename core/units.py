"""Linear <-> decibel conversion of SAR backscatter.

Convention (SPEC, Conventions): ``to_db(x) = 10*log10(x)``; ``x <= 0`` or NaN
gives NaN (NoData), never -inf. ``from_db(d) = 10**(d/10)``.
"""
import numpy as np

from .errors import S1S2Error
from .raster import BandSource
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


def convert_db_file(source: BandSource, output_path: str, direction: str = LINEAR_TO_DB,
                    progress=None, cancel=None, **stream_options) -> str:
    """Convert one band between linear power and dB, file to file (float32 GeoTIFF)."""
    if direction == LINEAR_TO_DB:
        func, band_name, units = to_db, "backscatter_db", "dB"
    elif direction == DB_TO_LINEAR:
        func, band_name, units = from_db, "backscatter_linear", "linear power"
    else:
        raise S1S2Error(f"Unknown direction {direction!r}: use {LINEAR_TO_DB!r} or {DB_TO_LINEAR!r}.")
    output = OutputRaster(output_path, bands=[band_name], units=units,
                          metadata={"algorithm": "s1s2:dbconvert", "direction": direction,
                                    "source": f"{source.path} band {source.band}"})
    return stream(func, [source], [output], progress=progress, cancel=cancel,
                  scratch=1.0, **stream_options)[0]
