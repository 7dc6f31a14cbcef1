"""SAR speckle filters on linear intensity: Refined Lee (SNAP semantics), Lee, focal median.

Conventions: inputs are 2-D float arrays of **linear** backscatter intensity
(sigma0/gamma0/beta0 power, not dB, not amplitude) with NoData as NaN (+-inf
is treated as NoData too); outputs are float32 arrays of the same shape with
NaN where the input centre pixel is NoData. Pixels beyond the array edge are
NoData, so a window crossing the image border is handled exactly like a
window containing NoData, and a block padded with its halo (NaN beyond the
raster edge, see core.streaming) gives the same values as the whole array.

Every window statistic is computed with the same sequence of floating-point
operations for every pixel (shifted adds, never running or cumulative sums),
so results are bit-identical whatever the block size.

Refined Lee (SPEC "Refined Lee speckle filter"; ESA SNAP ``RefinedLee``):

* 7x7 window; means of the nine 3x3 sub-windows (rows/cols 0-2, 2-4, 4-6);
* gradients in this order: |left-right|, |top right-bottom left|,
  |top-bottom|, |top left-bottom right| of the sub-window means; the first
  maximum wins ties;
* side: the half whose sub-window mean is closer (absolute difference) to the
  centre sub-window mean; on a tie the second side (right, bottom-left,
  bottom, bottom-right), as SNAP's strict ``<``;
* the chosen 28-pixel window: a half-plane including the centre row/column or
  a triangle including the diagonal;
* noise ``sigmaV^2`` = mean of the 5 smallest ``var/mean^2`` (sample
  variance) of the complete 3x3 sub-windows (sub-window mean <= 0 gives 0, as
  SNAP; fewer than 5 complete sub-windows: mean of those; none: 0);
* MMSE ``varX = max(0, (varY - meanY^2 sigmaV^2) / (1 + sigmaV^2))``,
  ``b = varX/varY``, ``out = meanY + b (centre - meanY)`` over the 28 pixels
  (sample variance); ``varY == 0`` gives ``meanY``;
* a 7x7 window with NoData (or crossing the border): plain Lee over the valid
  pixels of the 7x7 with the same sigmaV^2 rule; centre NoData -> NoData.

Deliberate deviations from SNAP's Java (SPEC): SNAP sorts only the first
n-1 sub-window ratios (``Arrays.sort(a, 0, n - 1)``) so the ninth never
enters the five smallest, and returns 0 for a constant 28-pixel window; here
all ratios are sorted and a constant window returns its mean. A window whose
only valid pixel is the centre returns the centre value (SNAP: NoData).
"""
import math

import numpy as np
from scipy import ndimage

from .errors import S1S2Error
from .raster import BandSource, Grid, common_grid, require_band_source
from .streaming import stream
from .units import from_db, to_db
from .writer import OutputRaster

REFINED_LEE_HALO = 3
REFINED_LEE_SIZE = 7
# Scratch memory of refined_lee per block pixel, in float32-array units (for
# stream()'s block sizing): the float64 copy, masks and output of the block
# (the heavy temporaries are per tile, see _TILE_ROWS).
_REFINED_LEE_SCRATCH = 6.0
_GATHER_CHUNK = 32768  # pixels per gathered plain-Lee batch (about 13 MB of windows)
# refined_lee's tiles: temporaries stay in cache, and few enough numpy calls per pixel (each holds
# the GIL between its loops: with 128 x 128 tiles two streaming threads ran no faster than one)
_TILE_ROWS, _TILE_COLS = 48, 1024
_TINY = np.finfo(np.float64).tiny

LINEAR = "linear"
DB = "db"
INPUT_UNITS = (LINEAR, DB)


# ------------------------------------------------------------------ helpers
def _as_2d(array, name="intensity"):
    array = np.asarray(array)
    if array.ndim != 2:
        raise S1S2Error(f"{name}: expected a 2-D array, got shape {array.shape}.")
    return array


def _pad_nan(array, halo):
    return np.pad(array, halo, mode="constant", constant_values=np.nan)


def _vsum(a, k, rows):
    """sum_{t<k} a[..., t:t+rows, :]: vertical k-sums, same operation order for every pixel."""
    acc = a[..., 0:rows, :] + a[..., 1:rows + 1, :]
    for t in range(2, k):
        acc += a[..., t:t + rows, :]
    return acc


def _mmse(centre, mean, var, sigma2):
    """Lee's MMSE estimate for multiplicative noise of relative variance ``sigma2``."""
    # varY <= 0 gives varX = 0, so b = 0 / tiny = 0 and out = meanY (a varY > 0 is a normal
    # number, far above tiny, so the guarded division changes nothing else)
    var_x = mean * mean
    var_x *= sigma2
    np.subtract(var, var_x, out=var_x)
    var_x /= 1.0 + sigma2
    np.maximum(var_x, 0.0, out=var_x)
    b = np.divide(var_x, np.maximum(var, _TINY), out=var_x)
    out = np.subtract(centre, mean)
    out *= b
    out += mean
    return out


# -------------------------------------------------------------- Refined Lee
def refined_lee(intensity):
    """SNAP Refined Lee (7x7) of linear intensity; float32, same shape, NaN = NoData.

    Pixels beyond the array edge count as NoData (plain Lee near the border).
    """
    intensity = _as_2d(intensity)
    return refined_lee_padded(_pad_nan(intensity, REFINED_LEE_HALO))


def refined_lee_padded(padded):
    """Refined Lee of the core of ``padded`` (a block with a 3-pixel halo on each side).

    Returns float32 of shape ``(rows - 6, cols - 6)``: the streaming function.
    """
    padded = _as_2d(padded)
    h, w = padded.shape[0] - 6, padded.shape[1] - 6
    if h <= 0 or w <= 0:
        raise S1S2Error("refined_lee_padded: the block is smaller than its halo.")
    valid = np.isfinite(padded)
    all_valid = valid.all()
    centre_valid = valid[3:3 + h, 3:3 + w]
    if all_valid:
        complete = np.ones((h, w), dtype=bool)
    else:
        invalid = (~valid).astype(np.uint8)
        rows7 = _vsum(invalid, 7, h)
        count = rows7[:, 0:w].copy()
        for t in range(1, 7):
            count += rows7[:, t:t + w]
        complete = count == 0

    out = np.full((h, w), np.nan, dtype=np.float32)
    if complete.any():
        # Cache-sized tiles (each with its own 3-pixel halo): every statistic is
        # a translation-invariant shifted sum, so tiling does not change a bit.
        for y0 in range(0, h, _TILE_ROWS):
            for x0 in range(0, w, _TILE_COLS):
                th, tw = min(_TILE_ROWS, h - y0), min(_TILE_COLS, w - x0)
                tile_complete = complete[y0:y0 + th, x0:x0 + tw]
                if not tile_complete.any():
                    continue
                tile = (slice(y0, y0 + th + 6), slice(x0, x0 + tw + 6))
                refined = _refined_lee_complete(padded[tile], None if all_valid else valid[tile],
                                                th, tw)
                out_tile = out[y0:y0 + th, x0:x0 + tw]
                if all_valid:
                    out_tile[...] = refined
                else:
                    np.copyto(out_tile, refined, where=tile_complete, casting="same_kind")
    partial = centre_valid & ~complete
    if partial.any():
        rows, cols = np.nonzero(partial)
        for start in range(0, rows.size, _GATHER_CHUNK):   # bounded memory: 49 values each
            r, c = rows[start:start + _GATHER_CHUNK], cols[start:start + _GATHER_CHUNK]
            out[r, c] = _local_lee_windows(padded, r, c, REFINED_LEE_SIZE, sigma2=None)
    return out


def _directional_sums(s, h, w):
    """The eight 28-pixel directional window sums and the 3x3 box sums of ``s``.

    ``s`` is a (..., h+6, w+6) array (x and x^2 stacked). Returns ``(windows, b3)``:
    ``windows`` in this order (local (y, x), 0..6): 0 left half (x <= 3), 1 upper-right
    triangle (x >= y), 2 top half (y <= 3), 3 upper-left triangle (x + y <= 6), 4 right
    half (x >= 3), 5 lower-left triangle (x <= y), 6 bottom half (y >= 3), 7 lower-right
    triangle (x + y >= 6), each (..., h, w); ``b3`` the 3x3 box sums, (..., h+4, w+4):
    sub-window (r, c) of output pixel (i, j) is b3[i + 2r, j + 2c].

    Shared pieces keep the count of whole-array adds low (28 per plane): horizontal runs
    of 2, 3, 4 and 7; 4 x 4 boxes; each triangle is a 4 x 4 corner box plus two 3 x 3
    triangles (e.g. the upper-right one: rows 0-3 x cols 3-6, and the upper triangles
    of the 3 x 3 squares at (0, 0) and (4, 4)).
    """
    rows = s.shape[-2]
    h2 = s[..., :-1] + s[..., 1:]
    h3 = h2[..., :-1] + s[..., 2:]
    h4 = h2[..., :-2] + h2[..., 2:]
    b3 = h3[..., 0:h + 4, :] + h3[..., 1:h + 5, :]
    b3 += h3[..., 2:h + 6, :]
    v2 = h4[..., 0:rows - 1, :] + h4[..., 1:rows, :]
    b44 = v2[..., 0:h + 3, :] + v2[..., 2:h + 5, :]               # 4 x 4, (h+3, w+3)
    b74 = b44[..., 0:h, :] + v2[..., 4:h + 4, :]                  # 7 rows x 4 cols
    b74 += h4[..., 6:h + 6, :]
    del v2
    h7 = h4[..., :-3] + h3[..., 4:]
    v2 = h7[..., 0:rows - 1, :] + h7[..., 1:rows, :]
    b47 = v2[..., 0:h + 3, :] + v2[..., 2:h + 5, :]               # 4 rows x 7 cols
    del v2, h7, h4

    def tri3(a, b, c):
        """A 3 x 3 triangle from three row pieces (each (row offset, col offset, array))."""
        (ra, ca, pa), (rb, cb, pb), (rc, cc, pc) = a, b, c
        out = pa[..., ra:ra + h + 4, ca:ca + w + 4] + pb[..., rb:rb + h + 4, cb:cb + w + 4]
        out += pc[..., rc:rc + h + 4, cc:cc + w + 4]
        return out

    upper = tri3((0, 0, h3), (1, 1, h2), (2, 2, s))       # c >= r
    lower = tri3((0, 0, s), (1, 0, h2), (2, 0, h3))       # c <= r
    anti_upper = tri3((0, 0, h3), (1, 0, h2), (2, 0, s))  # r + c <= 2
    anti_lower = tri3((0, 2, s), (1, 1, h2), (2, 0, h3))  # r + c >= 2
    del h2, h3

    windows = np.empty((8,) + s.shape[:-2] + (h, w))

    def corner_plus(k, by, bx, t, t0, t1):
        out = np.add(b44[..., by:by + h, bx:bx + w], t[..., t0[0]:t0[0] + h, t0[1]:t0[1] + w],
                     out=windows[k])
        out += t[..., t1[0]:t1[0] + h, t1[1]:t1[1] + w]

    corner_plus(1, 0, 3, upper, (0, 0), (4, 4))
    corner_plus(5, 3, 0, lower, (0, 0), (4, 4))
    corner_plus(3, 0, 0, anti_upper, (0, 4), (4, 0))
    corner_plus(7, 3, 3, anti_lower, (0, 4), (4, 0))
    windows[0] = b74[..., 0:w]
    windows[4] = b74[..., 3:3 + w]
    windows[2] = b47[..., 0:h, :]
    windows[6] = b47[..., 3:3 + h, :]
    return windows, b3


def _select(windows, choice):
    """windows[choice[i, j], ..., i, j]: each pixel's chosen window sums (all planes)."""
    index = choice.astype(np.intp).reshape((1,) * (windows.ndim - 2) + choice.shape)
    return np.take_along_axis(windows, index, axis=0)[0]


def _sort3(a, b, c):
    """Element-wise (min, median, max) of three arrays."""
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    return np.minimum(lo, c), np.maximum(lo, np.minimum(hi, c)), np.maximum(hi, c)


def _noise_sigma2(means, b3, b3q, h, w):
    """Mean of the 5 smallest var/mean^2 of the nine 3x3 sub-windows (all complete).

    Sorting network: sort the three sub-windows of each column, then each row;
    in such a row- and column-sorted 3x3 matrix M the five smallest are M00,
    M01, M10 and the two smallest of the anti-diagonal (M02, M11, M20).
    The ratios enter only sigmaV^2, so they are sorted in float32.
    ``means`` is b3 / 9 (shared with _window_choice).
    """
    var = b3 * means
    np.subtract(b3q, var, out=var)
    np.maximum(var, 0.0, out=var)
    var /= 8.0
    mean2 = means * means
    # SNAP: a sub-window mean <= 0 gives ratio 0 (var is finite and >= 0, so var/inf = 0);
    # cheaper than a masked divide
    not_positive = b3 <= 0
    if not_positive.any():
        mean2[not_positive] = np.inf
    ratio = np.divide(var, mean2, out=var).astype(np.float32)
    del mean2, var
    top, mid, bot = ratio[0:h], ratio[2:2 + h], ratio[4:4 + h]   # sub-window rows 0, 1, 2
    top_s, mid_s, bot_s = _sort3(top, mid, bot)                   # sort each column of 3
    del ratio
    cols = (slice(0, w), slice(2, 2 + w), slice(4, 4 + w))
    m00, m01, m02 = _sort3(*(top_s[:, s] for s in cols))
    m10, m11, _ = _sort3(*(mid_s[:, s] for s in cols))
    m20 = np.minimum(np.minimum(*(bot_s[:, s] for s in cols[:2])), bot_s[:, cols[2]])
    a0, a1, _ = _sort3(m02, m11, m20)
    total = m00.astype(np.float64)
    for term in (m01, m10, a0, a1):
        total += term
    return total / 5.0


def _window_choice(means, h, w):
    """Index 0..7 (order of _directional_sums) of each pixel's directional window, int8.

    ``means``: the 3x3 sub-window means, b3 / 9 (see _directional_sums).
    """
    m = [[means[2 * r:2 * r + h, 2 * c:2 * c + w] for c in range(3)] for r in range(3)]
    centre = m[1][1]
    # (first side, second side) sub-window of gradients 0..3
    pairs = ((m[1][0], m[1][2]), (m[0][2], m[2][0]), (m[0][1], m[2][1]), (m[0][0], m[2][2]))
    best = np.empty((h, w))
    gradient = np.empty((h, w))
    direction = None
    for k, (first, second) in enumerate(pairs):
        np.subtract(first, second, out=gradient)
        np.abs(gradient, out=gradient)
        if k == 0:
            best, gradient = gradient, best
            continue
        # strict: the first maximum wins ties. A later strictly greater gradient beats all
        # earlier ones, so the direction is the largest k whose gradient beats the best so far.
        beats = (gradient > best).view(np.int8)
        np.maximum(best, gradient, out=best)
        if k == 1:
            direction = beats.copy()
        else:
            beats *= np.int8(k)
            np.maximum(direction, beats, out=direction)
    # side: the first window when its sub-window mean is strictly closer to the centre
    d_first, d_second = best, gradient        # reused as scratch
    second_side = np.zeros((h, w), dtype=bool)
    for k, (first, second) in enumerate(pairs):
        np.subtract(first, centre, out=d_first)
        np.abs(d_first, out=d_first)
        np.subtract(centre, second, out=d_second)
        np.abs(d_second, out=d_second)
        second_side |= (d_first >= d_second) & (direction == k)
    direction += second_side.view(np.int8) * np.int8(4)
    return direction


def _refined_lee_complete(tile, valid, h, w):
    """Refined Lee (float64) of every pixel of a padded ``tile`` as if its 7x7 window were complete.

    ``valid``: the tile's finite-value mask, or None when all values are finite (NoData
    enters the sums as 0; the caller keeps only the pixels whose window is complete).
    """
    # x and x^2 stacked in float64: one pass of numpy calls builds the window sums of both.
    stacked = np.empty((2,) + tile.shape)
    x = stacked[0]
    x[...] = tile
    if valid is not None:
        x[~valid] = 0.0
    np.multiply(x, x, out=stacked[1])
    centre = x[3:3 + h, 3:3 + w].copy()
    windows, b3 = _directional_sums(stacked, h, w)
    del stacked, x
    means = b3[0] / 9.0
    s, q = _select(windows, _window_choice(means, h, w))
    del windows
    sigma2 = _noise_sigma2(means, b3[0], b3[1], h, w)
    del b3
    mean_y = s / 28.0
    var_y = np.multiply(s, mean_y, out=s)
    np.subtract(q, var_y, out=var_y)
    var_y /= 27.0
    return _mmse(centre, mean_y, var_y, sigma2)


def _local_lee_windows(padded, rows, cols, size, sigma2=None):
    """Plain Lee at (rows, cols) of the core of ``padded`` (halo size//2), NaN ignored.

    ``sigma2`` None: SNAP's noise estimate from the complete 3x3 sub-windows of
    the 7x7 (Refined Lee near NoData); a number: that noise variance (Lee filter).
    The windows are gathered, so this is meant for a minority of pixels.
    """
    view = np.lib.stride_tricks.sliding_window_view(padded, (size, size))
    win = view[rows, cols].astype(np.float64)          # (n, size, size)
    n = win.shape[0]
    flat = win.reshape(n, -1)
    valid = np.isfinite(flat)
    count = valid.sum(axis=1)
    zeros = np.where(valid, flat, 0.0)
    mean = zeros.sum(axis=1) / count
    dev = np.where(valid, flat - mean[:, None], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (dev * dev).sum(axis=1) / (count - 1)
    var = np.where(count > 1, var, 0.0)
    centre = win[:, size // 2, size // 2]
    if sigma2 is None:
        sigma2 = _sub_window_noise(win)
    return _mmse(centre, mean, var, sigma2).astype(np.float32)


def _sub_window_noise(win):
    """SNAP's sigmaV^2 for gathered 7x7 windows (n, 7, 7) that may hold NaN."""
    n = win.shape[0]
    ratios = np.full((n, 9), np.inf)
    for r in range(3):
        for c in range(3):
            sub = win[:, 2 * r:2 * r + 3, 2 * c:2 * c + 3].reshape(n, 9)
            complete = np.isfinite(sub).all(axis=1)
            mean = sub.mean(axis=1)
            var = ((sub - mean[:, None]) ** 2).sum(axis=1) / 8.0
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = np.where(mean > 0, var / (mean * mean), 0.0)
            ratios[:, 3 * r + c] = np.where(complete, ratio, np.inf)
    ratios.sort(axis=1)
    n_complete = np.isfinite(ratios).sum(axis=1)
    take = np.minimum(n_complete, 5)
    smallest = np.where(np.arange(9)[None, :] < take[:, None], ratios, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(take > 0, smallest.sum(axis=1) / take, 0.0)


# ---------------------------------------------------------------------- Lee
def lee_halo(window):
    """Halo (pixels) of the Lee filter with a ``window`` x ``window`` square."""
    return int(window) // 2


def _check_window(window):
    if int(window) != window or window < 3 or window % 2 == 0:
        raise S1S2Error(f"WINDOW must be an odd number of pixels >= 3, got {window}.")
    return int(window)


def _check_looks(looks):
    if not (looks > 0 and math.isfinite(looks)):
        raise S1S2Error(f"LOOKS (equivalent number of looks) must be > 0, got {looks}.")
    return float(looks)


def lee(intensity, window=7, looks=4.4):
    """Classic Lee (1980) MMSE filter of linear intensity; float32, same shape, NaN = NoData.

    Over the valid pixels of the ``window`` x ``window`` square: meanY, varY
    (sample variance); noise ``sigmaV^2 = 1/looks``;
    ``varX = max(0, (varY - meanY^2 sigmaV^2) / (1 + sigmaV^2))``,
    ``out = meanY + varX/varY (centre - meanY)``; varY == 0 -> meanY.
    """
    window = _check_window(window)
    intensity = _as_2d(intensity)
    return lee_padded(_pad_nan(intensity, lee_halo(window)), window, looks)


def lee_padded(padded, window=7, looks=4.4):
    """Lee filter of the core of ``padded`` (halo window//2): the streaming function."""
    window = _check_window(window)
    sigma2 = 1.0 / _check_looks(looks)
    padded = _as_2d(padded)
    half = window // 2
    h, w = padded.shape[0] - 2 * half, padded.shape[1] - 2 * half
    valid = np.isfinite(padded)
    x = np.where(valid, padded, 0.0).astype(np.float64)

    def box(a):
        rows = _vsum(a, window, h)
        acc = rows[:, 0:w].copy()
        for t in range(1, window):
            acc += rows[:, t:t + w]
        return acc

    count = box(valid.astype(np.float64))
    s = box(x)
    q = box(x * x)
    centre = x[half:half + h, half:half + w]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s / count
        var = np.maximum((q - s * mean) / (count - 1), 0.0)
    var = np.where(count > 1, var, 0.0)
    out = _mmse(centre, mean, var, sigma2).astype(np.float32)
    out[~valid[half:half + h, half:half + w]] = np.nan
    return out


# ------------------------------------------------------------- focal median
def disk_footprint(radius_x_px, radius_y_px):
    """Boolean (elliptical) disk: offsets (u, v) with (u/rx)^2 + (v/ry)^2 <= 1."""
    if not (radius_x_px > 0 and radius_y_px > 0):
        raise S1S2Error("The focal median radius must be positive.")
    hx, hy = int(math.floor(radius_x_px + 1e-9)), int(math.floor(radius_y_px + 1e-9))
    v, u = np.mgrid[-hy:hy + 1, -hx:hx + 1]
    return (u / radius_x_px) ** 2 + (v / radius_y_px) ** 2 <= 1.0 + 1e-9


def footprint_halo(footprint):
    return max(footprint.shape) // 2


def focal_median(values, footprint):
    """Median over ``footprint`` (odd-sized boolean array) ignoring NaN; float32, same shape.

    An even number of valid values gives the mean of the two middle ones (as
    numpy.nanmedian). A NoData centre stays NoData; pixels beyond the array
    edge are NoData.
    """
    values = _as_2d(values, "values")
    footprint = np.asarray(footprint, dtype=bool)
    hy, hx = footprint.shape[0] // 2, footprint.shape[1] // 2
    halo = max(hy, hx)
    padded = _pad_nan(values, halo)
    return focal_median_padded(padded, footprint)


def focal_median_padded(padded, footprint):
    """Focal median of the core of ``padded`` (halo = max footprint half size)."""
    padded = _as_2d(padded)
    footprint = np.asarray(footprint, dtype=bool)
    if footprint.ndim != 2 or footprint.shape[0] % 2 == 0 or footprint.shape[1] % 2 == 0:
        raise S1S2Error("The footprint must be a 2-D array with odd sides.")
    halo = max(footprint.shape) // 2
    fp = np.zeros((2 * halo + 1, 2 * halo + 1), dtype=bool)
    oy, ox = halo - footprint.shape[0] // 2, halo - footprint.shape[1] // 2
    fp[oy:oy + footprint.shape[0], ox:ox + footprint.shape[1]] = footprint
    h, w = padded.shape[0] - 2 * halo, padded.shape[1] - 2 * halo
    data = padded.astype(np.float32, copy=False)
    valid = np.isfinite(data)
    core = (slice(halo, halo + h), slice(halo, halo + w))
    out = np.full((h, w), np.nan, dtype=np.float32)
    if valid.all():
        complete = np.ones((h, w), dtype=bool)
    else:
        bad = ndimage.correlate((~valid).astype(np.float32), fp.astype(np.float32),
                                mode="constant", cval=1.0)[core]
        complete = bad < 0.5
    complete &= valid[core]
    if complete.any():
        filled = np.where(valid, data, 0.0).astype(np.float32)
        med = ndimage.median_filter(filled, footprint=fp, mode="constant", cval=0.0)[core]
        out[complete] = med[complete]
    partial = valid[core] & ~complete
    if partial.any():
        rows, cols = np.nonzero(partial)
        offsets = np.argwhere(fp)
        for start in range(0, rows.size, 20000):
            r = rows[start:start + 20000, None] + offsets[None, :, 0]
            c = cols[start:start + 20000, None] + offsets[None, :, 1]
            with np.errstate(all="ignore"):
                out[rows[start:start + 20000], cols[start:start + 20000]] = \
                    np.nanmedian(data[r, c].astype(np.float64), axis=1)
    return out


def pixel_size_metres(grid: Grid):
    """(x, y) pixel size in metres; geographic CRS: geodesic at the raster's centre latitude."""
    from osgeo import osr
    px, py = grid.pixel_size
    if not grid.crs_wkt:
        raise S1S2Error("The input has no CRS: cannot convert a radius in metres to pixels.")
    srs = osr.SpatialReference()
    srs.ImportFromWkt(grid.crs_wkt)
    if srs.IsGeographic():
        from pyproj import Geod
        xmin, ymin, xmax, ymax = grid.bounds
        lat = (ymin + ymax) / 2.0
        if abs(lat) > 85.0:
            raise S1S2Error(f"The raster is centred at latitude {lat:.1f}: a radius in metres "
                            "cannot be converted to degrees sensibly there. Reproject it to a "
                            "projected CRS (e.g. UTM or polar stereographic) first.")
        lon = (xmin + xmax) / 2.0
        geod = Geod(ellps="WGS84")
        dx = geod.inv(lon - px / 2, lat, lon + px / 2, lat)[2]
        dy = geod.inv(lon, lat - py / 2, lon, lat + py / 2)[2]
        return dx, dy
    return px * srs.GetLinearUnits(), py * srs.GetLinearUnits()


def radius_footprint(radius_m, grid: Grid):
    """The circular footprint of ``radius_m`` metres on ``grid`` (at least the 3x3 cross)."""
    if not (radius_m > 0 and math.isfinite(radius_m)):
        raise S1S2Error(f"RADIUS must be a positive number of metres, got {radius_m}.")
    dx, dy = pixel_size_metres(grid)
    rx, ry = radius_m / dx, radius_m / dy
    if rx < 1 and ry < 1:
        raise S1S2Error(f"RADIUS {radius_m:g} m is smaller than one pixel "
                        f"({dx:.3g} x {dy:.3g} m): the median would not change anything.")
    if max(rx, ry) > 200:
        raise S1S2Error(f"RADIUS {radius_m:g} m is {max(rx, ry):.0f} pixels: at most 200 "
                        "pixels are supported; resample the raster to coarser pixels first.")
    return disk_footprint(max(rx, 1e-6), max(ry, 1e-6))


# ------------------------------------------------------------ file to file
def _check_units(units):
    units = (units or LINEAR).lower()
    if units not in INPUT_UNITS:
        raise S1S2Error(f"Unknown input units {units!r}: use 'linear' or 'db'.")
    return units


def _in_linear(func, units):
    """Wrap a linear-intensity block function for ``units`` input (dB: filter in linear)."""
    if units == LINEAR:
        return func
    return lambda block: to_db(func(from_db(block)))


def _filter_file(func, halo, source: BandSource, output_path, units, algorithm, band_name,
                 parameters, scratch, progress, cancel, **stream_options):
    require_band_source(source, "INPUT")
    units = _check_units(units)
    output = OutputRaster(
        output_path, bands=[band_name], units="dB" if units == DB else "linear power",
        metadata=dict({"algorithm": algorithm, "input_units": units,
                       "source": f"{source.path} band {source.band}"}, **parameters))
    return stream(_in_linear(func, units), [source], [output], halo=halo, scratch=scratch,
                  progress=progress, cancel=cancel, **stream_options)[0]


def refined_lee_file(source: BandSource, output_path, input_units=LINEAR, progress=None,
                     cancel=None, **stream_options):
    """Refined Lee (SNAP semantics), file to file; dB input is filtered in linear."""
    return _filter_file(refined_lee_padded, REFINED_LEE_HALO, source, output_path, input_units,
                        "s1s2:refinedlee", "refined_lee", {}, _REFINED_LEE_SCRATCH,
                        progress, cancel, **stream_options)


def lee_file(source: BandSource, output_path, window=7, looks=4.4, input_units=LINEAR,
             progress=None, cancel=None, **stream_options):
    """Classic Lee MMSE filter, file to file."""
    window, looks = _check_window(window), _check_looks(looks)
    return _filter_file(lambda b: lee_padded(b, window, looks), lee_halo(window), source,
                        output_path, input_units, "s1s2:leefilter", "lee",
                        {"window": str(window), "looks": f"{looks:g}"}, 16.0,
                        progress, cancel, **stream_options)


def focal_median_file(source: BandSource, output_path, radius_m=100.0, input_units=LINEAR,
                      progress=None, cancel=None, **stream_options):
    """Circular focal median with a radius in metres, NaN ignored, file to file."""
    grid = common_grid([source])
    footprint = radius_footprint(radius_m, grid)
    halo = footprint_halo(footprint)
    return _filter_file(lambda b: focal_median_padded(b, footprint), halo, source, output_path,
                        input_units, "s1s2:focalmedian", "focal_median",
                        {"radius_m": f"{radius_m:g}", "radius_px": f"{halo}"}, 6.0,
                        progress, cancel, **stream_options)
