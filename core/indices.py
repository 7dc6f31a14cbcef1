"""Optical and radar indices: NDVI, RVI4S1, VV/VH ratios, incidence-angle mask.

Pure numpy functions (arrays in, float32 arrays out, NaN = NoData) plus
file-to-file functions that drive them through :func:`core.streaming.stream`.

Units and conventions (SPEC, Conventions):

* S2 DN -> reflectance: ``(DN + BOA_ADD_OFFSET) / QUANTIFICATION_VALUE``; DN 0 is
  NoData. Arithmetic is never done in the input integer type.
* S1 backscatter is linear power unless ``input_units="db"``.
* Division by zero -> NaN; NaN in -> NaN out.
* Incidence angles are in degrees.
"""
import math
import threading
from typing import Optional, Sequence

import numpy as np

from . import scl as scl_mask
from .errors import S1S2Error
from .raster import (
    BandSource,
    Grid,
    check_distinct,
    common_grid,
    open_band,
    require_band_source,
    sample_values,
    warped_to_grid,
)
from .safe_metadata import boa_add_offset_for
from .streaming import LOG, stream
from .units import from_db, require_linear, to_db
from .writer import OutputRaster, check_output_path

LINEAR = "linear"
DB = "db"
INPUT_UNITS = (LINEAR, DB)

RATIO_LINEAR = "linear"          # VV / VH
RATIO_DB = "db"                  # 10*log10(VV/VH) = VV_dB - VH_dB
RATIO_OF_DB = "ratio_of_db"      # Earth Engine "VVdVH": VV_dB / VH_dB, kept in (-5, 5)
RATIO_MODES = (RATIO_LINEAR, RATIO_DB, RATIO_OF_DB)
RATIO_OF_DB_LIMITS = (-5.0, 5.0)

DEFAULT_MIN_ANGLE = 30.64
DEFAULT_MAX_ANGLE = 45.54
DEFAULT_QUANTIFICATION = 10000.0


def _float32(a, name: str = "input", copy: bool = True) -> np.ndarray:
    """``a`` as a float32 array (a copy unless ``copy=False``, so in-place work never touches
    the caller's data); None or anything but numbers is an S1S2Error naming ``name``."""
    if a is None:
        raise S1S2Error(f"{name}: expected an array of numbers, got None.")
    try:
        # np.asarray copies only when it must; np.array(copy=False) refuses to on numpy 2
        return np.array(a, dtype=np.float32) if copy else np.asarray(a, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise S1S2Error(f"{name}: expected an array of numbers ({exc}).") from None


def _check_quantification(quantification: float) -> None:
    if not quantification or not math.isfinite(quantification) or quantification <= 0:
        raise S1S2Error(f"QUANTIFICATION_VALUE must be a positive number, got {quantification!r}.")


# -- optical ------------------------------------------------------------------------------
def reflectance(dn, boa_add_offset: float = 0.0,
                quantification: float = DEFAULT_QUANTIFICATION) -> np.ndarray:
    """S2 reflectance (unitless, float32) from DN: ``(DN + offset) / quantification``.

    DN 0 and NaN -> NaN (S2 DN 0 is NoData). Negative reflectances (possible
    with the -1000 offset of processing baseline >= 04.00) are kept.
    """
    _check_quantification(quantification)
    out = _float32(dn)
    out[out == 0] = np.nan
    out += np.float32(boa_add_offset)
    out /= np.float32(quantification)
    return out


NEGATIVE_MASK = "mask"     # NoData where a band's reflectance <= 0 (Earth Engine normalizedDifference)
NEGATIVE_CLAMP = "clamp"   # reflectance <= 0 set to 0
NEGATIVE_KEEP = "keep"     # raw arithmetic (reproduces other tools; NDVI may leave [-1, 1])
NEGATIVE_REFLECTANCE_MODES = (NEGATIVE_MASK, NEGATIVE_CLAMP, NEGATIVE_KEEP)
# Above this fraction of valid pixels with reflectance <= 0 the offset is probably wrong.
NEGATIVE_WARN_FRACTION = 0.01


def check_negative_reflectance(mode: str) -> str:
    if mode not in NEGATIVE_REFLECTANCE_MODES:
        raise S1S2Error(f"NEGATIVE_REFLECTANCE must be one of "
                        f"{', '.join(NEGATIVE_REFLECTANCE_MODES)}, got {mode!r}.")
    return mode


class ReflectanceCounts:
    """Valid pixels and pixels with reflectance <= 0 in either band, summed over blocks
    (thread-safe: blocks are computed on several threads)."""

    def __init__(self, mode: str = NEGATIVE_MASK):
        self.mode = check_negative_reflectance(mode)
        self.valid = 0
        self.non_positive = 0
        self._lock = threading.Lock()

    def add(self, valid: int, non_positive: int) -> None:
        with self._lock:
            self.valid += valid
            self.non_positive += non_positive

    @property
    def fraction(self) -> float:
        return self.non_positive / self.valid if self.valid else 0.0

    def messages(self):
        """(info, warning or None) for the log."""
        action = {NEGATIVE_MASK: "set to NoData", NEGATIVE_CLAMP: "clamped to reflectance 0",
                  NEGATIVE_KEEP: "kept as computed (NDVI may leave [-1, 1])"}[self.mode]
        info = (f"NEGATIVE_REFLECTANCE = {self.mode}: {self.non_positive} of {self.valid} valid "
                f"pixels ({100 * self.fraction:.3g} %) have a reflectance <= 0 in RED or NIR; "
                f"{action}.")
        warning = None
        if self.fraction > NEGATIVE_WARN_FRACTION:
            warning = (f"WARNING: {100 * self.fraction:.3g} % of the valid pixels have a "
                       "reflectance <= 0 (DN + BOA_ADD_OFFSET <= 0). Is BOA_ADD_OFFSET right for "
                       "this product? (-1000 for processing baseline >= 04.00, else 0)")
        return info, warning

    def report(self, log=None, warn=None) -> None:
        info, warning = self.messages()
        if log is not None:
            log(info)
        if warning is not None:
            (warn or log or (lambda _m: None))(warning)


def _non_positive(red: np.ndarray, nir: np.ndarray, mode: str) -> np.ndarray:
    """Pixels whose offset-corrected DN (same sign as reflectance) is <= 0 in either band;
    ``mode`` CLAMP sets those DN to 0 in place (MASK is applied by the caller, KEEP nothing)."""
    with np.errstate(invalid="ignore"):
        bad = red <= 0
        bad |= nir <= 0
    if mode == NEGATIVE_CLAMP:
        with np.errstate(invalid="ignore"):
            np.maximum(red, 0, out=red, where=np.isfinite(red))
            np.maximum(nir, 0, out=nir, where=np.isfinite(nir))
    return bad


def _ndvi_inplace(red: np.ndarray, nir: np.ndarray, boa_add_offset: float,
                  zeros_are_nan: bool = False, negative: str = NEGATIVE_MASK,
                  counts: Optional[ReflectanceCounts] = None, core=None) -> np.ndarray:
    """NDVI from two float32 DN arrays that may be overwritten (one temporary only).

    The quantification value cancels out of the ratio and is not applied; the
    offset does not. DN 0 -> NaN (``zeros_are_nan``: the caller already made
    them NaN, as the streaming reader does), NIR + RED == 0 -> NaN, non-finite
    DN -> NaN; reflectance <= 0 handled by ``negative`` (see NEGATIVE_*).
    ``counts``: valid pixels and those with reflectance <= 0, of the ``core`` region
    (slices: a streamed block's, whose halo other blocks count) or the whole arrays.
    """
    if zeros_are_nan:
        zero = None
    else:
        zero = red == 0
        zero |= nir == 0
    if boa_add_offset:
        off = np.float32(boa_add_offset)
        red += off
        nir += off
    if zero is not None:
        red[zero] = np.nan
    bad = _non_positive(red, nir, negative) if counts is not None or \
        negative != NEGATIVE_KEEP else None
    total = nir + red            # the one temporary
    nir -= red                   # nir now holds the difference
    valid = np.isfinite(total)   # both DN finite (their sum cannot overflow float32)
    if counts is not None:
        region = core if core is not None else (Ellipsis,)
        counts.add(int(np.count_nonzero(valid[region])), int(np.count_nonzero(bad[region])))
    invalid = np.logical_not(valid, out=valid)  # +-inf DN (or inf - inf) is NoData too
    invalid |= total == 0
    if negative == NEGATIVE_MASK:
        invalid |= bad           # the ratio's denominator NaN: the same NaN as masking a band
    total[invalid] = np.nan      # x / NaN = NaN: masks DN 0 and division by zero at once
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(nir, total, out=nir)
    return nir


def ndvi(red_dn, nir_dn, boa_add_offset: float = 0.0,
         quantification: float = DEFAULT_QUANTIFICATION,
         negative_reflectance: str = NEGATIVE_MASK,
         counts: Optional[ReflectanceCounts] = None) -> np.ndarray:
    """NDVI = (NIR - RED) / (NIR + RED) on reflectance (B08, B04), float32.

    Inputs are DN arrays (any numeric type; float with NaN NoData as the
    streaming layer delivers them). Reflectance is ``(DN + boa_add_offset) /
    quantification``; DN 0 or NaN in either band -> NaN; NIR + RED == 0 -> NaN.
    Reflectance <= 0 in either band: ``negative_reflectance`` "mask" (NaN,
    default), "clamp" (to 0) or "keep" (raw arithmetic); ``counts`` (a
    :class:`ReflectanceCounts`) accumulates how many pixels that concerned.
    """
    _check_quantification(quantification)
    check_negative_reflectance(negative_reflectance)
    red, nir = _float32(red_dn, "RED"), _float32(nir_dn, "NIR")
    if red.shape != nir.shape:
        raise S1S2Error(f"RED and NIR blocks differ in shape: {red.shape} vs {nir.shape}.")
    return _ndvi_inplace(red, nir, boa_add_offset, negative=negative_reflectance, counts=counts)


# -- radar --------------------------------------------------------------------------------
def _linear(values, input_units: str, name: str = "input") -> np.ndarray:
    """float32 linear power from linear or dB input; negative linear power -> NaN."""
    if input_units == DB:
        return from_db(_float32(values, name, copy=False)).astype(np.float32, copy=False)
    if input_units != LINEAR:
        raise S1S2Error(f"Unknown input units {input_units!r}: use {LINEAR!r} or {DB!r}.")
    out = _float32(values, name)
    out[out < 0] = np.nan
    return out


def rvi4s1(vv, vh, input_units: str = LINEAR) -> np.ndarray:
    """RVI4S1 (Bhogapurapu et al. 2022): ``q = VH/VV``, ``q(q+3)/(q+1)^2``, float32.

    Inputs in linear power (or dB with ``input_units="db"``). 0 for q = 0, 1 for
    q = 1, above 1 when VH > VV (maximum 1.125 at q = 3): kept, not clipped.
    VV == 0 (q undefined) and negative linear power -> NaN.
    """
    vv, q = _linear(vv, input_units, "VV"), _linear(vh, input_units, "VH")
    vv[vv == 0] = np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        q /= vv
        denominator = q + 1.0
        denominator *= denominator
        vv = q + 3.0            # reuse the name: vv is no longer needed
        vv *= q
        vv /= denominator
    return vv


def vv_vh_ratio(vv, vh, mode: str = RATIO_DB, input_units: str = LINEAR) -> np.ndarray:
    """VV/VH polarisation ratio, float32.

    * ``linear``: VV / VH (linear power); VH == 0 -> NaN.
    * ``db``: 10*log10(VV/VH) = VV_dB - VH_dB; VV or VH <= 0 -> NaN.
    * ``ratio_of_db``: the Earth Engine recipe's "VVdVH", VV_dB / VH_dB (e.g.
      -10 / -16 = 0.625), NaN outside the open interval (-5, 5). Not a ratio of
      powers; offered only to reproduce that recipe.
    """
    if mode not in RATIO_MODES:
        raise S1S2Error(f"Unknown ratio mode {mode!r}: use one of {', '.join(RATIO_MODES)}.")
    if mode == RATIO_OF_DB:
        if input_units == DB:
            vv_db, vh_db = _float32(vv, "VV"), _float32(vh, "VH")
        else:
            vv_db = to_db(_linear(vv, LINEAR)).astype(np.float32, copy=False)
            vh_db = to_db(_linear(vh, LINEAR)).astype(np.float32, copy=False)
        vh_db[vh_db == 0] = np.nan
        with np.errstate(divide="ignore", invalid="ignore"):
            vv_db /= vh_db
            low, high = RATIO_OF_DB_LIMITS
            vv_db[~((vv_db > low) & (vv_db < high))] = np.nan
        return vv_db
    if mode == RATIO_DB and input_units == DB:
        out = _float32(vv, "VV")
        out -= _float32(vh, "VH")
        return out
    num, den = _linear(vv, input_units), _linear(vh, input_units)
    den[den == 0] = np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        num /= den
        if mode == RATIO_DB:
            num[num <= 0] = np.nan
            np.log10(num, out=num)
            num *= 10.0
    return num


def angle_mask(values, angle, min_angle: float = DEFAULT_MIN_ANGLE,
               max_angle: float = DEFAULT_MAX_ANGLE) -> np.ndarray:
    """``values`` (float32) where ``min_angle < angle < max_angle`` (degrees), NaN elsewhere.

    NaN angles are outside the range (NoData in -> NoData out).
    """
    if not min_angle < max_angle:
        raise S1S2Error(f"MIN_ANGLE ({min_angle}) must be smaller than MAX_ANGLE ({max_angle}).")
    out = _float32(values)
    angle = np.asarray(angle)
    with np.errstate(invalid="ignore"):
        keep = (angle > min_angle) & (angle < max_angle)
    out[~keep] = np.nan
    return out


# -- files --------------------------------------------------------------------------------
def _meta(algorithm: str, **items) -> dict:
    meta = {"algorithm": algorithm}
    meta.update({k: str(v) for k, v in items.items() if v is not None})
    return meta


def _describe(source: BandSource) -> str:
    return f"{source.path} band {source.band}"


DN = "dn"
REFLECTANCE = "reflectance"


def s2_band_kind(source: BandSource) -> str:
    """What a Sentinel-2 band input holds, from a sample: DN (whole numbers >= 0, L1C/L2A)
    or reflectance (0-1, with small negatives); anything else is an S1S2Error (an S1 dB layer,
    a band with the offset already applied, another index...)."""
    values = sample_values(source)
    if values.size == 0:
        return DN
    low, high = float(values.min()), float(values.max())
    whole = bool(np.all(values == np.round(values)))
    if whole and low >= 0:
        return DN
    if not whole and -0.5 <= low and high <= 1.5:
        return REFLECTANCE
    where = f"'{source.path}' band {source.band}"
    if low < 0:
        raise S1S2Error(f"{source.name}: {where} holds negative values (down to {low:g}); "
                        "Sentinel-2 L1C/L2A DN are whole numbers 0-65535 and reflectance lies "
                        "in 0-1. Is it the right layer (not an S1 dB layer, not a band with "
                        "BOA_ADD_OFFSET already applied)?")
    raise S1S2Error(f"{source.name}: {where} holds non-integer values up to {high:g}: neither "
                    "Sentinel-2 DN (whole numbers 0-65535) nor reflectance (0-1). Is it the "
                    "right layer? (DN resampled bilinearly: resample with nearest neighbour.)")


def check_s2_bands(sources: Sequence[BandSource], offset: float) -> str:
    """The common kind (DN or reflectance) of S2 band inputs; reflectance is used as is
    (noted in the log), with BOA_ADD_OFFSET 0 (it applies to DN)."""
    kinds = {source.name: s2_band_kind(source) for source in sources}
    if len(set(kinds.values())) > 1:
        raise S1S2Error(f"The S2 bands mix DN and reflectance ({kinds}); give all as DN or all "
                        "as reflectance.")
    kind = next(iter(kinds.values()))
    if kind == REFLECTANCE:
        if offset:
            raise S1S2Error(f"BOA_ADD_OFFSET ({offset:g}) applies to DN, but "
                            f"{' and '.join(kinds)} hold reflectance (0-1): set it to 0.")
        LOG.info(f"{' and '.join(kinds)} hold reflectance (0-1), not DN: used as is.")
    return kind


def resolve_boa_add_offset(sources: Sequence[BandSource], boa_add_offset: Optional[float]) -> float:
    """The offset to use: the given one, else the product metadata's (equal for all
    inputs), else 0."""
    if boa_add_offset is not None:
        return float(boa_add_offset)
    found = {}
    for source in sources:
        value = boa_add_offset_for(source.path, source.band)
        if value is not None:
            found[source.name] = value
    values = set(found.values())
    if len(values) > 1:
        raise S1S2Error(f"The inputs come from products with different BOA_ADD_OFFSET values "
                        f"({found}); set BOA_ADD_OFFSET explicitly.")
    return values.pop() if values else 0.0


def ndvi_file(red: BandSource, nir: BandSource, output_path: str, scl: Optional[BandSource] = None,
              cloud_classes: Sequence[int] = scl_mask.DEFAULT_CLOUD_CLASSES,
              cloud_buffer_m: float = 0.0, boa_add_offset: Optional[float] = None,
              quantification: float = DEFAULT_QUANTIFICATION,
              negative_reflectance: str = NEGATIVE_MASK, log=None, warn=None, progress=None,
              cancel=None, **stream_options) -> str:
    """NDVI of two S2 bands (B04, B08 DN), file to file, optional SCL cloud mask.

    ``boa_add_offset=None`` reads BOA_ADD_OFFSET (L2A) / RADIO_ADD_OFFSET (L1C)
    from the SAFE product metadata when the inputs lie in one, else uses 0.
    ``scl`` (any resolution, e.g. 20 m) is resampled nearest onto the band grid;
    pixels whose class is in ``cloud_classes``, plus a ``cloud_buffer_m`` metre
    buffer around them, become NoData. DN 0 (the S2 NoData) -> NoData.
    ``negative_reflectance``: see :func:`ndvi`; the number of pixels concerned goes to
    ``log(message)``, and to ``warn(message)`` when above 1 % of the valid pixels.
    """
    _check_quantification(quantification)
    require_band_source(red, "RED")
    require_band_source(nir, "NIR")
    if scl is not None:
        require_band_source(scl, "SCL")
    counts = ReflectanceCounts(negative_reflectance)
    if cloud_buffer_m < 0 or not math.isfinite(cloud_buffer_m):
        raise S1S2Error(f"CLOUD_BUFFER must be >= 0 metres, got {cloud_buffer_m!r}.")
    red = BandSource(red.path, red.band, red.label or "RED", red.nodata, True, red.extra_nodata)
    nir = BandSource(nir.path, nir.band, nir.label or "NIR", nir.nodata, True, nir.extra_nodata)
    check_distinct(red, nir)
    grid = common_grid([red, nir])
    offset = resolve_boa_add_offset([red, nir], boa_add_offset)
    check_s2_bands([red, nir], offset)
    sources = [red, nir]
    classes = tuple(int(c) for c in cloud_classes)
    buffer_px, halo = 0, 0
    if scl is not None:
        # stream() checks the sources it reads, and a resampled SCL is read through a VRT.
        check_output_path(output_path, [scl.path])
        _check_covers(scl, grid)
        scl_mask.check_scl_band(scl)
        sources.append(warped_to_grid(scl, grid, "near"))
        buffer_px = scl_mask.buffer_pixels(cloud_buffer_m, grid)
        halo = buffer_px

    def block(red_block, nir_block, scl_block=None, window=None):
        # Streamed blocks are ours to overwrite, and their DN 0 is NaN already (zero_is_nodata).
        # The block's own counts (core region: halos overlap) go back to stream(), which adds
        # them up here (any engine).
        found = ReflectanceCounts(negative_reflectance)
        out = _ndvi_inplace(red_block, nir_block, offset, zeros_are_nan=True,
                            negative=negative_reflectance, counts=found, core=window.core)
        if scl_block is not None and classes:
            out[scl_mask.cloud_mask(scl_block, classes, buffer_px)] = np.nan
        return out, (found.valid, found.non_positive)

    output = OutputRaster(output_path, bands=["NDVI"], units="",
                          metadata=_meta("s1s2:ndvi", red=_describe(red), nir=_describe(nir),
                                         scl=_describe(scl) if scl else None,
                                         cloud_classes=",".join(map(str, classes)) if scl else None,
                                         cloud_buffer_m=cloud_buffer_m if scl else None,
                                         boa_add_offset=offset, quantification=quantification,
                                         negative_reflectance=negative_reflectance,
                                         formula="(NIR - RED) / (NIR + RED), "
                                                 "reflectance = (DN + BOA_ADD_OFFSET) / "
                                                 "QUANTIFICATION_VALUE"))
    path = stream(block, sources, [output], halo=halo, grid=grid, progress=progress,
                  cancel=cancel, scratch=1.5, collect=lambda found: counts.add(*found),
                  pass_window=True,
                  **stream_options)[0]
    counts.report(log, warn)
    return path


def _check_covers(scl: BandSource, grid: Grid) -> None:
    """The SCL must cover the band grid (same CRS: checked on the bounds)."""
    other = Grid.of(open_band(scl)[0])
    if not other.same_crs(grid):
        return
    xmin, ymin, xmax, ymax = grid.bounds
    oxmin, oymin, oxmax, oymax = other.bounds
    tol = max(other.pixel_size)
    if oxmin > xmin + tol or oymin > ymin + tol or oxmax < xmax - tol or oymax < ymax - tol:
        raise S1S2Error(f"{scl.name} does not cover the extent of the bands "
                        f"({other.bounds} vs {grid.bounds}); use the SCL of the same tile.")


def rvi4s1_file(vv: BandSource, vh: BandSource, output_path: str, input_units: str = LINEAR,
                progress=None, cancel=None, **stream_options) -> str:
    """RVI4S1 of a VV and a VH band, file to file (float32 GeoTIFF)."""
    check_distinct(require_band_source(vv, "VV"), require_band_source(vh, "VH"))
    if input_units not in INPUT_UNITS:
        raise S1S2Error(f"Unknown input units {input_units!r}: use {LINEAR!r} or {DB!r}.")
    if input_units == LINEAR:
        for source in (vv, vh):
            require_linear(source, "set INPUT_UNITS to dB")
    output = OutputRaster(output_path, bands=["RVI4S1"],
                          metadata=_meta("s1s2:rvi4s1", vv=_describe(vv), vh=_describe(vh),
                                         input_units=input_units,
                                         formula="q = VH/VV (linear); q*(q+3)/(q+1)^2"))
    return stream(lambda a, b: rvi4s1(a, b, input_units), [vv, vh], [output],
                  progress=progress, cancel=cancel, scratch=2.0, **stream_options)[0]


def vv_vh_ratio_file(vv: BandSource, vh: BandSource, output_path: str, mode: str = RATIO_DB,
                     input_units: str = LINEAR, angle: Optional[BandSource] = None,
                     min_angle: float = DEFAULT_MIN_ANGLE, max_angle: float = DEFAULT_MAX_ANGLE,
                     progress=None, cancel=None, **stream_options) -> str:
    """VV/VH ratio (``mode``), optionally kept only where min_angle < angle < max_angle."""
    check_distinct(require_band_source(vv, "VV"), require_band_source(vh, "VH"))
    if angle is not None:
        require_band_source(angle, "ANGLE")
    if mode not in RATIO_MODES:
        raise S1S2Error(f"Unknown ratio mode {mode!r}: use one of {', '.join(RATIO_MODES)}.")
    if input_units not in INPUT_UNITS:
        raise S1S2Error(f"Unknown input units {input_units!r}: use {LINEAR!r} or {DB!r}.")
    if angle is not None and not min_angle < max_angle:
        raise S1S2Error(f"MIN_ANGLE ({min_angle}) must be smaller than MAX_ANGLE ({max_angle}).")
    if input_units == LINEAR:
        for source in (vv, vh):
            require_linear(source, "set INPUT_UNITS to dB")
    names = {RATIO_LINEAR: ("VV/VH", "linear ratio"), RATIO_DB: ("VV/VH dB", "dB"),
             RATIO_OF_DB: ("VV_dB/VH_dB", "ratio of dB values")}
    band, units = names[mode]
    sources = [vv, vh] + ([angle] if angle is not None else [])

    scale = angle_degrees_per_unit(angle) if angle is not None else 1.0

    def block(a, b, ang=None):
        out = vv_vh_ratio(a, b, mode, input_units)
        return out if ang is None else angle_mask(out, ang * scale, min_angle, max_angle)

    output = OutputRaster(output_path, bands=[band], units=units,
                          metadata=_meta("s1s2:vvvhratio", vv=_describe(vv), vh=_describe(vh),
                                         mode=mode, input_units=input_units,
                                         angle=_describe(angle) if angle else None,
                                         min_angle=min_angle if angle else None,
                                         max_angle=max_angle if angle else None))
    return stream(block, sources, [output], progress=progress, cancel=cancel, scratch=2.0,
                  **stream_options)[0]


def angle_mask_file(source: BandSource, angle: BandSource, output_path: str,
                    min_angle: float = DEFAULT_MIN_ANGLE, max_angle: float = DEFAULT_MAX_ANGLE,
                    progress=None, cancel=None, **stream_options) -> str:
    """One band of ``source`` where min_angle < angle < max_angle (degrees), NoData elsewhere."""
    require_band_source(source, "INPUT")
    require_band_source(angle, "ANGLE")
    if not min_angle < max_angle:
        raise S1S2Error(f"MIN_ANGLE ({min_angle}) must be smaller than MAX_ANGLE ({max_angle}).")
    dataset, band = open_band(source)
    description = band.GetDescription() or "value"
    output = OutputRaster(output_path, bands=[description], units=band.GetUnitType() or "",
                          metadata=_meta("s1s2:anglemask", input=_describe(source),
                                         angle=_describe(angle), min_angle=min_angle,
                                         max_angle=max_angle))
    dataset = None  # noqa: F841
    scale = angle_degrees_per_unit(angle)
    return stream(lambda v, a: angle_mask(v, a * scale, min_angle, max_angle), [source, angle],
                  [output], progress=progress, cancel=cancel, scratch=1.0, **stream_options)[0]


# Incidence angles in radians never exceed pi/2 (1.571); in degrees, S1 angles are 29-46.
RADIANS_LIMIT = 1.6


def angle_degrees_per_unit(angle: BandSource) -> float:
    """1 for an angle band in degrees, 180/pi for one in radians: its unit metadata
    ('rad...', 'deg...'), else its range (every valid value within +-1.6 means radians).
    Radians are converted with a note in the log (the ``s1s2`` logger)."""
    dataset, band = open_band(angle)
    unit = (band.GetUnitType() or band.GetMetadataItem("units") or "").strip().lower()
    if unit.startswith("deg") or unit == "\u00b0":
        return 1.0
    if unit.startswith("rad"):
        LOG.warning(f"{angle.name}: unit '{unit}': angles converted from radians to degrees.")
        return 180.0 / math.pi
    try:
        low, high = band.ComputeRasterMinMax(True)  # approximate: a sample is enough
    except RuntimeError:  # no valid pixel: nothing to convert
        return 1.0
    finally:
        dataset = band = None  # noqa: F841
    if 0 < high <= RADIANS_LIMIT and low >= -RADIANS_LIMIT:
        LOG.warning(f"{angle.name}: every angle lies in {low:.3g}..{high:.3g}: read as radians "
                    f"and converted to degrees ({math.degrees(low):.4g}..{math.degrees(high):.4g}"
                    "). Set the band's unit to 'deg' if they really are degrees.")
        return 180.0 / math.pi
    return 1.0
