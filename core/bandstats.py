"""Band statistics gathered from the blocks as they are written, stored in the GeoTIFF.

The writer (:mod:`.writer`) sees every block of every output on both engines, so the
valid count, min, max, mean and standard deviation of each band cost one look at each
block, not a second read of the finished file. They are stored as GDAL's band
statistics (``STATISTICS_MINIMUM`` ... ``STATISTICS_VALID_PERCENT``, inside the .tif,
which QGIS and ``gdalinfo`` use as they are) plus ``S1S2_VALID_PIXELS``, the exact
count, which marks them as complete and exact for :mod:`.summary`.
"""
from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np

VALID_PIXELS = "S1S2_VALID_PIXELS"
_CHUNK = 1 << 18  # 256 Kpx: the float64 copy (2 MB) stays in cache


@dataclass(frozen=True)
class Statistics:
    """Of the valid pixels of a band: count, and min / mean / max / population standard
    deviation in the band's units (None without valid pixels)."""

    valid: int
    minimum: Optional[float] = None
    mean: Optional[float] = None
    maximum: Optional[float] = None
    std: Optional[float] = None

    def metadata(self, total: int) -> Dict[str, str]:
        """GDAL band metadata items; repr() keeps every digit, so min and max read back equal
        to the pixel values (float32 ones included)."""
        items = {VALID_PIXELS: str(self.valid),
                 "STATISTICS_VALID_PERCENT": repr(100.0 * self.valid / total if total else 0.0)}
        if self.valid:
            items.update(STATISTICS_MINIMUM=repr(self.minimum), STATISTICS_MAXIMUM=repr(self.maximum),
                         STATISTICS_MEAN=repr(self.mean), STATISTICS_STDDEV=repr(self.std))
        return items

    @classmethod
    def from_metadata(cls, items: Dict[str, str]) -> Optional["Statistics"]:
        """The statistics written by :meth:`metadata`, or None (none stored, approximate ones,
        or ones computed by another tool without the exact count)."""
        if VALID_PIXELS not in items or items.get("STATISTICS_APPROXIMATE", "").upper() == "YES":
            return None
        try:
            valid = int(items[VALID_PIXELS])
            if not valid:
                return cls(0)
            return cls(valid, *(float(items[f"STATISTICS_{key}"])
                                for key in ("MINIMUM", "MEAN", "MAXIMUM", "STDDEV")))
        except (KeyError, ValueError):
            return None


class RunningStatistics:
    """Statistics of one band accumulated block by block, in any block order.

    Valid: finite and not the NoData value. Sums in float64; the variance combines the
    blocks' centred sums of squares (Chan et al.), which keeps it accurate for data far
    from zero. ``seen`` counts every pixel given, valid or not.
    """

    def __init__(self, nodata: Optional[float]):
        self.nodata = None if nodata is None or np.isnan(nodata) else nodata
        self.seen = self.valid = 0
        self.total_sum = self.m2 = 0.0
        self.low, self.high = np.inf, -np.inf

    def add(self, plane: np.ndarray) -> None:
        """Take in a 2-D block, in strips of about 256 Kpx (cache-sized temporaries)."""
        plane = plane.reshape(-1, plane.shape[-1]) if plane.ndim else plane.reshape(1, 1)
        rows = max(1, _CHUNK // max(plane.shape[1], 1))
        for start in range(0, plane.shape[0], rows):
            self._add_values(plane[start:start + rows])

    def _add_values(self, plane: np.ndarray) -> None:
        self.seen += plane.size
        good = np.isfinite(plane) if plane.dtype.kind == "f" else None
        if self.nodata is not None:  # float bands: compared as the band's type, as GDAL does
            differs = plane != (plane.dtype.type(self.nodata) if good is not None else self.nodata)
            good = differs if good is None else np.logical_and(good, differs, out=good)
        count = plane.size if good is None else int(np.count_nonzero(good))
        if not count:
            return
        values = plane.ravel() if count == plane.size else plane[good]
        centred = values.astype(np.float64)
        block_sum = float(centred.sum())
        block_mean = block_sum / count
        centred -= block_mean
        block_m2 = float(np.dot(centred, centred))
        if self.valid:
            delta = block_mean - self.total_sum / self.valid
            block_m2 += delta * delta * self.valid * count / (self.valid + count)
        self.m2 += block_m2
        self.valid += count
        self.total_sum += block_sum
        self.low = min(self.low, float(values.min()))
        self.high = max(self.high, float(values.max()))

    def result(self) -> Statistics:
        if not self.valid:
            return Statistics(0)
        return Statistics(self.valid, self.low, self.total_sum / self.valid, self.high,
                          float(np.sqrt(max(self.m2, 0.0) / self.valid)))
