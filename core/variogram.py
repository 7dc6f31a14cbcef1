"""Residual semivariogram: pair sums per block, an exponential model fitted to them.

``gamma(h) = c0 + c1 * (1 - exp(-h / a))`` for ``h > 0`` (``c0`` nugget, ``c0 + c1``
sill, ``a`` range parameter; pixels). The empirical semivariogram comes from pairs
of valid pixels ``h`` pixels apart along rows and along columns; a block counts the
pairs whose first pixel is in its core (the second may lie in the halo, so the
halo must be at least ``max(LAGS)``): the sums do not depend on the block layout.
"""
import math
from dataclasses import dataclass
from typing import Tuple

import numpy as np
from scipy.optimize import minimize_scalar, nnls

LAGS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
_RANGE_GRID = np.geomspace(0.5, 2000.0, 80)
MIN_PAIRS = 30


@dataclass
class PairSums:
    """Per lag: number of pairs and sum of squared differences (float64)."""

    count: np.ndarray
    sum_sq: np.ndarray

    @classmethod
    def empty(cls) -> "PairSums":
        return cls(np.zeros(len(LAGS)), np.zeros(len(LAGS)))

    def __add__(self, other: "PairSums") -> "PairSums":
        return PairSums(self.count + other.count, self.sum_sq + other.sum_sq)

    def semivariance(self) -> np.ndarray:
        """``sum (r_a - r_b)^2 / (2 n)`` per lag, NaN without pairs."""
        out = np.full(len(LAGS), np.nan)
        np.divide(self.sum_sq, 2.0 * self.count, out=out, where=self.count > 0)
        return out


def pair_sums(values: np.ndarray, core: Tuple[slice, slice]) -> PairSums:
    """Pairs of finite ``values`` whose first pixel is in ``core`` and the second ``h``
    pixels to its right or below (inside the padded block)."""
    rows, cols = core
    y0, y1, x0, x1 = rows.start, rows.stop, cols.start, cols.stop
    count = np.zeros(len(LAGS))
    sum_sq = np.zeros(len(LAGS))
    first = values[y0:y1, x0:x1]
    for i, h in enumerate(LAGS):
        for second in (values[y0:y1, x0 + h:x1 + h], values[y0 + h:y1 + h, x0:x1]):
            if second.shape != first.shape:   # the halo is narrower than the lag
                raise ValueError("Internal error: the halo is smaller than the largest lag.")
            diff = first - second
            ok = np.isfinite(diff)
            count[i] += np.count_nonzero(ok)
            sum_sq[i] += float(np.sum(diff[ok] ** 2))
    return PairSums(count, sum_sq)


@dataclass(frozen=True)
class Exponential:
    """``gamma(h) = nugget + partial_sill * (1 - exp(-h / range_px))``; ``fitted`` False
    for the documented fallback (pure nugget: kriging adds nothing)."""

    nugget: float
    partial_sill: float
    range_px: float
    fitted: bool = True

    @property
    def sill(self) -> float:
        return self.nugget + self.partial_sill

    def covariance(self, distance: np.ndarray) -> np.ndarray:
        """``C(h) = c1 exp(-h/a)`` for ``h > 0``, the sill at ``h = 0``."""
        distance = np.asarray(distance, dtype=np.float64)
        cov = self.partial_sill * np.exp(-distance / self.range_px)
        return np.where(distance == 0, self.sill, cov)

    def gamma(self, distance: np.ndarray) -> np.ndarray:
        return self.sill - self.covariance(distance)

    def describe(self) -> str:
        if not self.fitted:
            return (f"variogram fit failed: pure nugget {self.nugget:.3g} (the kriging step "
                    "adds nothing; the regression alone fills)")
        return (f"exponential variogram: nugget {self.nugget:.3g}, partial sill "
                f"{self.partial_sill:.3g}, range parameter {self.range_px:.3g} px "
                f"(practical range {3 * self.range_px:.0f} px)")


def fit_exponential(sums: PairSums, variance: float) -> Exponential:
    """Weighted least squares (weights = pair counts) of the exponential model.

    For each range on a log grid the nugget and partial sill follow from a
    non-negative least squares; the range with the smallest weighted error wins
    (refined between its grid neighbours).
    Fallback when fewer than three lags have ``MIN_PAIRS`` pairs or nothing finite
    comes out: a pure nugget equal to ``variance`` (the residual variance).
    """
    gamma = sums.semivariance()
    use = (sums.count >= MIN_PAIRS) & np.isfinite(gamma)
    fallback = Exponential(max(float(variance), 0.0) if math.isfinite(variance) else 0.0,
                           0.0, 1.0, fitted=False)
    if np.count_nonzero(use) < 3:
        return fallback
    lags = np.asarray(LAGS, dtype=np.float64)[use]
    weights = np.sqrt(sums.count[use])
    target = gamma[use] * weights

    def solve(log_range):
        basis = np.column_stack([np.ones(len(lags)), 1.0 - np.exp(-lags / math.exp(log_range))])
        return nnls(basis * weights[:, None], target)

    logs = np.log(_RANGE_GRID)
    errors = [solve(x)[1] for x in logs]
    i = int(np.argmin(errors))
    refined = minimize_scalar(lambda x: solve(x)[1], method="bounded",
                              bounds=(logs[max(i - 1, 0)], logs[min(i + 1, len(logs) - 1)]),
                              options={"xatol": 1e-6})
    log_range = refined.x if refined.fun <= errors[i] else logs[i]
    (nugget, partial), _ = solve(log_range)
    range_px = math.exp(log_range)
    if not (math.isfinite(nugget) and math.isfinite(partial)) or nugget + partial <= 0:
        return fallback
    return Exponential(float(nugget), float(partial), float(range_px))
