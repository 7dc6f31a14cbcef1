"""Bad input, as an analyst meets it, through processing.run (and qgis_process for a few).

Every algorithm must answer bad input with a QgsProcessingException that names the
offending parameter (never a Python traceback), lose nothing (inputs and a previous
output stay byte-identical, no ``.part.tif`` left behind) and keep NoData semantics:
NoData in -> NoData out, zero is data unless declared NoData (S2 DN 0 is NoData),
no uint16 wrap-around.

Each algorithm has a tiny synthetic case (24 x 20 px) built by ``CASES`` below; the
table says which inputs must share a grid and which are collocated automatically.
"""
import glob
import hashlib
import math
import os

import numpy as np
import pytest

from testkit import read, write

SHAPE = (24, 20)
GT = (500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0)
GT_SHIFTED = (500030.0, 10.0, 0.0, 4999970.0, 0.0, -10.0)  # 3 px off: overlaps, not aligned
GT_20M = (500000.0, 20.0, 0.0, 5000000.0, 0.0, -20.0)
PIXEL = (11, 9)  # an interior pixel (>= 3 px from the border: speckle windows are complete)


def _rng(seed):
    return np.random.default_rng(seed)


def linear(seed=1, low=0.01, high=0.3):
    return _rng(seed).uniform(low, high, SHAPE).astype(np.float32)


def dn(seed, low, high):
    return _rng(seed).integers(low, high, SHAPE).astype(np.uint16)


class Case:
    """Minimal valid parameters of one algorithm on tiny synthetic rasters.

    ``rasters``: raster parameter -> (array, nodata) written as GeoTIFF;
    ``aligned``: raster parameters that must be on the first one's grid (error expected);
    ``collocated``: raster parameters collocated automatically (run must succeed);
    ``bands``: band parameter -> its raster parameter; ``outputs``: output ids.
    """

    def __init__(self, alg, rasters, params=None, aligned=(), collocated=(), bands=None,
                 outputs=("OUTPUT",), multi=None, zero_is_data=True):
        self.alg, self.rasters, self.params = alg, rasters, dict(params or {})
        self.aligned, self.collocated = aligned, collocated
        self.bands = bands or {}
        self.outputs = outputs
        self.multi = multi  # parameter holding a list of rasters (stackstatistics)
        self.zero_is_data = zero_is_data

    def build(self, folder, overrides=None, geotransforms=None, dtype=None):
        """Write the inputs into ``folder``; returns (parameters, {raster param: path})."""
        overrides, geotransforms = overrides or {}, geotransforms or {}
        paths, params = {}, dict(self.params)
        for name, (array, nodata) in self.rasters.items():
            array = overrides.get(name, array)
            if dtype is not None and array.dtype.kind == "f":
                array = array.astype(dtype)
            path = os.path.join(folder, f"in_{name.lower()}.tif")
            write(path, array, geotransform=geotransforms.get(name, GT), nodata=nodata)
            paths[name] = path
        for name, path in paths.items():
            if self.multi and name.startswith(self.multi):
                params.setdefault(self.multi, []).append(path)
            else:
                params[name] = path
        for output in self.outputs:
            params[output] = os.path.join(folder, f"out_{output.lower()}.tif")
        return params, paths


S1_DB = (-10 * np.log10(1 / linear(5))).astype(np.float32)  # about -20..-5 dB

CASES = {
    "dbconvert": Case("s1s2:dbconvert", {"INPUT": (linear(1), math.nan)},
                      {"BAND": 1, "DIRECTION": 0}, bands={"BAND": "INPUT"}),
    "ndvi": Case("s1s2:ndvi", {"RED": (dn(2, 300, 3000), 0), "NIR": (dn(3, 2000, 6000), 0),
                               "SCL": (np.full(SHAPE, 4, np.uint8), 0)},
                 {"BOA_ADD_OFFSET": 0}, aligned=("NIR",), collocated=("SCL",),
                 bands={"RED_BAND": "RED", "NIR_BAND": "NIR", "SCL_BAND": "SCL"}),
    "rvi4s1": Case("s1s2:rvi4s1", {"VV": (linear(4, 0.1, 0.3), math.nan),
                                   "VH": (linear(5, 0.01, 0.1), math.nan)},
                   {"INPUT_UNITS": 0}, aligned=("VH",), bands={"VV_BAND": "VV", "VH_BAND": "VH"}),
    "vvvhratio": Case("s1s2:vvvhratio", {"VV": (linear(4, 0.1, 0.3), math.nan),
                                         "VH": (linear(5, 0.01, 0.1), math.nan),
                                         "ANGLE": (np.full(SHAPE, 38.0, np.float32), math.nan)},
                      {"INPUT_UNITS": 0, "MODE": 1}, aligned=("VH", "ANGLE"),
                      bands={"VV_BAND": "VV", "VH_BAND": "VH", "ANGLE_BAND": "ANGLE"}),
    "anglemask": Case("s1s2:anglemask", {"INPUT": (linear(6), math.nan),
                                         "ANGLE": (np.full(SHAPE, 38.0, np.float32), math.nan)},
                      aligned=("ANGLE",), bands={"BAND": "INPUT", "ANGLE_BAND": "ANGLE"}),
    "stackstatistics": Case("s1s2:stackstatistics", {"INPUTS_1": (linear(7), math.nan),
                                                     "INPUTS_2": (linear(8), math.nan)},
                            {"BAND": 1, "STATISTICS": [0, 2, 5]}, aligned=("INPUTS_2",),
                            bands={"BAND": "INPUTS_1"}, multi="INPUTS",
                            outputs=("OUTPUT_MEDIAN", "OUTPUT_MEAN", "OUTPUT_COUNT")),
    "refinedlee": Case("s1s2:refinedlee", {"INPUT": (linear(9), math.nan)},
                       bands={"BAND": "INPUT"}),
    "leefilter": Case("s1s2:leefilter", {"INPUT": (linear(10), math.nan)},
                      {"WINDOW": 5}, bands={"BAND": "INPUT"}),
    "focalmedian": Case("s1s2:focalmedian", {"INPUT": (linear(11), math.nan)},
                        {"RADIUS": 25.0}, bands={"BAND": "INPUT"}),
    "collocate": Case("s1s2:collocate", {"TARGET": (linear(12), math.nan),
                                         "INPUT": (linear(13), math.nan)},
                      {"BAND": 1, "RESAMPLING": 0}, collocated=("INPUT",),
                      bands={"BAND": "INPUT"}),
    "fusendvi": Case("s1s2:fusendvi", {
        "RED": (dn(14, 300, 3000), 0), "NIR": (dn(15, 2000, 6000), 0),
        "SCL": (np.where(np.arange(SHAPE[1]) < 6, 9, 4).repeat(SHAPE[0]).reshape(
            SHAPE[1], SHAPE[0]).T.astype(np.uint8), 0),
        "VV": (linear(16, 0.05, 0.3), math.nan), "VH": (linear(17, 0.005, 0.05), math.nan)},
        {"BOA_ADD_OFFSET": 0, "SPECKLE_FILTER": 0, "MODEL": 2,
         "COEFFICIENTS": "0.5, 0.01, 0.01, 0.1"},
        aligned=("NIR",), collocated=("VV", "VH", "SCL"),
        bands={"RED_BAND": "RED", "NIR_BAND": "NIR", "SCL_BAND": "SCL", "VV_BAND": "VV",
               "VH_BAND": "VH"}, outputs=("OUTPUT", "OUTPUT_SOURCE")),
    "seaice": Case("s1s2:seaice", {"S2_GREEN": (dn(18, 1000, 5000), 0),
                                   "S1": (S1_DB - 15, math.nan)},
                   {"S1_UNITS": 2, "S1_MEDIAN_SIZE": 3}, collocated=("S1",),
                   bands={"S1_BAND": "S1", "S2_GREEN_BAND": "S2_GREEN"},
                   outputs=("OUTPUT_S1_ICE", "OUTPUT_S2_ICE")),
}
# The SCL of fusendvi: columns 0-5 cloud (9), the rest vegetation (4).

RASTER_ALGS = sorted(CASES)


def run(alg, params, feedback=None):
    import processing
    return processing.run(alg, params, feedback=feedback)


def digest(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def leftovers(folder):
    """Temporary files or folders left in ``folder`` (``.<name>.part.tif``, work folders)."""
    return sorted(set(glob.glob(os.path.join(folder, "*.part.tif*")) +
                      glob.glob(os.path.join(folder, ".*"))))


def expect_error(alg, params, match=None):
    """A QgsProcessingException (not any other exception) whose message matches ``match``."""
    from qgis.core import QgsProcessingException
    try:
        run(alg, params)
    except QgsProcessingException as exc:
        message = str(exc)
        if match is not None:
            assert match in message, f"{alg}: '{match}' not in the message: {message}"
        return message
    except Exception as exc:  # a traceback instead of a message
        pytest.fail(f"{alg}: {type(exc).__name__} instead of a QgsProcessingException: {exc}")
    pytest.fail(f"{alg}: bad input accepted")


def raw(path, band=1):
    """Band values as stored (declared NoData not replaced)."""
    from osgeo import gdal
    dataset = gdal.Open(path)  # kept alive while its band is read
    return dataset.GetRasterBand(band).ReadAsArray()


def all_nodata(path, band=1):
    return bool(np.all(np.isnan(read(path, band))))


def misaligned(case, param):
    """(overrides, geotransforms) that put ``param`` off the grid of the first input."""
    array = case.rasters[param][0]
    if param == "SCL":  # an SCL must cover the bands: the 20 m SCL of the same tile
        return {param: array[::2, ::2]}, {param: GT_20M}
    return {}, {param: GT_SHIFTED}


# -- mismatched grids ---------------------------------------------------------------------
GRID_CASES = [(name, param, "error") for name in RASTER_ALGS for param in CASES[name].aligned] + \
             [(name, param, "collocated") for name in RASTER_ALGS
              for param in CASES[name].collocated]


@pytest.mark.parametrize("name,param,expected", GRID_CASES,
                         ids=[f"{n}-{p}" for n, p, _ in GRID_CASES])
def test_mismatched_grid(s1s2_provider, tmp_path, name, param, expected):
    case = CASES[name]
    params, paths = case.build(str(tmp_path), *misaligned(case, param))
    before = {p: digest(path) for p, path in paths.items()}
    if expected == "error":
        label = param.split("_")[0]
        message = expect_error(case.alg, params, match=label)
        assert "grid" in message, message
        for output in case.outputs:
            assert not os.path.exists(params[output])
    else:
        run(case.alg, params)
        for output in case.outputs:
            assert read(params[output]).shape == SHAPE  # on the first input's (S2) grid
    assert {p: digest(path) for p, path in paths.items()} == before
    assert leftovers(str(tmp_path)) == []


# -- band beyond the band count -----------------------------------------------------------
BAND_CASES = [(name, band) for name in RASTER_ALGS for band in CASES[name].bands]


@pytest.mark.parametrize("name,band_param", BAND_CASES, ids=[f"{n}-{b}" for n, b in BAND_CASES])
def test_band_beyond_band_count(s1s2_provider, tmp_path, name, band_param):
    case = CASES[name]
    params, _ = case.build(str(tmp_path))
    params[band_param] = 3
    message = expect_error(case.alg, params, match=band_param)
    assert "band 3" in message and "1 band" in message, message
    for output in case.outputs:
        assert not os.path.exists(params[output])
    assert leftovers(str(tmp_path)) == []


# -- NoData everywhere --------------------------------------------------------------------
def _nodata_like(array, nodata):
    if array.dtype.kind == "f":
        return np.full(array.shape, np.nan, array.dtype)
    return np.full(array.shape, nodata, array.dtype)


@pytest.mark.parametrize("name", RASTER_ALGS)
def test_all_nodata_inputs_give_nodata_or_a_clear_error(s1s2_provider, tmp_path, name):
    """Every input entirely NoData: an all-NoData output (pixel algorithms) and no crash."""
    case = CASES[name]
    overrides = {p: _nodata_like(a, nd) for p, (a, nd) in case.rasters.items()
                 if p not in ("ANGLE", "SCL", "TARGET")}
    params, _ = case.build(str(tmp_path), overrides)
    if name == "fusendvi":
        # fixed coefficients: an all-NoData result (source 0 = neither sensor) ...
        run(case.alg, params)
        assert all_nodata(params["OUTPUT"])
        assert np.all(raw(params["OUTPUT_SOURCE"]) == 0)
        # ... the fitted model has nothing to fit on: a clear error, nothing written
        local = dict(params, MODEL=0, OUTPUT=str(tmp_path / "local.tif"),
                     OUTPUT_SOURCE=str(tmp_path / "local_source.tif"))
        expect_error(case.alg, local, match="No clear pixel")
        assert not os.path.exists(local["OUTPUT"]) and leftovers(str(tmp_path)) == []
        return
    result = run(case.alg, params)
    if name == "seaice":  # masks are uint8 with NoData 255; numbers unknown
        for output in case.outputs:
            assert all_nodata(params[output])
        assert result["S1_ICE_CONCENTRATION"] is None
        assert result["S2_ICE_CONCENTRATION"] is None
        return
    for output in case.outputs:
        if output == "OUTPUT_COUNT":
            assert np.all(read(params[output]) == 0)  # zero valid dates is a count, not NoData
        else:
            assert all_nodata(params[output]), output


# -- NoData in -> NoData out, per pixel ----------------------------------------------------
@pytest.mark.parametrize("name", RASTER_ALGS)
def test_nodata_pixel_stays_nodata(s1s2_provider, tmp_path, name):
    case = CASES[name]
    overrides = {}
    for p, (array, nodata) in case.rasters.items():
        if p in ("ANGLE", "SCL", "TARGET"):
            continue
        array = array.copy()
        array[PIXEL] = np.nan if array.dtype.kind == "f" else nodata
        overrides[p] = array
    if name == "stackstatistics":  # NoData is ignored per pixel: only date 1 is NoData there
        overrides.pop("INPUTS_2")
    params, _ = case.build(str(tmp_path), overrides)
    run(case.alg, params)
    if name == "stackstatistics":
        assert read(params["OUTPUT_COUNT"])[PIXEL] == 1
        date2 = case.rasters["INPUTS_2"][0][PIXEL]
        assert read(params["OUTPUT_MEAN"])[PIXEL] == pytest.approx(date2, rel=1e-6)
        assert read(params["OUTPUT_MEDIAN"])[PIXEL] == pytest.approx(date2, rel=1e-6)
        return
    for output in case.outputs:
        value = read(params[output])[PIXEL]
        if output == "OUTPUT_SOURCE":
            assert raw(params[output])[PIXEL] == 0, output  # 0 = no data from either source
        else:
            assert np.isnan(value), (output, value)


@pytest.mark.parametrize("name", ["rvi4s1", "vvvhratio", "anglemask", "ndvi"])
def test_nodata_in_one_input_is_nodata_out(s1s2_provider, tmp_path, name):
    """A pixel needs every input: NoData in the second input alone gives NoData."""
    case = CASES[name]
    param = {"rvi4s1": "VH", "vvvhratio": "ANGLE", "anglemask": "ANGLE", "ndvi": "NIR"}[name]
    array, nodata = case.rasters[param]
    array = array.copy()
    array[PIXEL] = np.nan if array.dtype.kind == "f" else nodata
    params, _ = case.build(str(tmp_path), {param: array})
    run(case.alg, params)
    got = read(params["OUTPUT"])
    assert np.isnan(got[PIXEL])
    assert np.isfinite(got).sum() == got.size - 1


# -- zero is data unless declared NoData --------------------------------------------------
def _with_zero(array):
    array = array.copy()
    array[PIXEL] = 0
    return array


def test_zero_is_data_dbconvert(s1s2_provider, tmp_path):
    case = CASES["dbconvert"]
    params, _ = case.build(str(tmp_path), {"INPUT": _with_zero(case.rasters["INPUT"][0])})
    params["DIRECTION"] = 1  # 0 dB is a value: 1.0 linear
    run(case.alg, params)
    assert read(params["OUTPUT"])[PIXEL] == 1.0
    params["DIRECTION"] = 0  # log of zero -> NoData (SPEC), never -inf
    os.remove(params["OUTPUT"])
    run(case.alg, params)
    assert np.isnan(read(params["OUTPUT"])[PIXEL])


def test_zero_is_data_indices(s1s2_provider, tmp_path):
    rvi = CASES["rvi4s1"]
    params, _ = rvi.build(str(tmp_path), {"VH": _with_zero(rvi.rasters["VH"][0])})
    run(rvi.alg, params)
    assert read(params["OUTPUT"])[PIXEL] == 0.0  # q = 0/VV = 0: RVI4S1 = 0
    ratio = CASES["vvvhratio"]
    params, _ = ratio.build(str(tmp_path), {"VV": _with_zero(ratio.rasters["VV"][0])})
    params["OUTPUT"] = str(tmp_path / "ratio.tif")
    run(ratio.alg, params)
    assert read(params["OUTPUT"])[PIXEL] == 0.0  # VV / VH = 0
    mask = CASES["anglemask"]
    params, _ = mask.build(str(tmp_path), {"INPUT": _with_zero(mask.rasters["INPUT"][0])})
    params["OUTPUT"] = str(tmp_path / "masked.tif")
    run(mask.alg, params)
    assert read(params["OUTPUT"])[PIXEL] == 0.0


def test_zero_is_data_stack_statistics(s1s2_provider, tmp_path):
    case = CASES["stackstatistics"]
    first = _with_zero(case.rasters["INPUTS_1"][0])
    params, _ = case.build(str(tmp_path), {"INPUTS_1": first})
    run(case.alg, params)
    assert read(params["OUTPUT_COUNT"])[PIXEL] == 2
    assert read(params["OUTPUT_MEAN"])[PIXEL] == pytest.approx(
        case.rasters["INPUTS_2"][0][PIXEL] / 2, rel=1e-6)


@pytest.mark.parametrize("name", ["refinedlee", "leefilter", "focalmedian"])
def test_zero_is_data_in_speckle_filters_unless_flagged(s1s2_provider, tmp_path, name):
    case = CASES[name]
    params, _ = case.build(str(tmp_path), {"INPUT": _with_zero(case.rasters["INPUT"][0])})
    run(case.alg, params)
    kept = read(params["OUTPUT"])
    assert np.all(np.isfinite(kept))  # the zero is a value and its neighbours stay valid
    params["NODATA_ZERO"] = True
    params["OUTPUT"] = str(tmp_path / "zero_nodata.tif")
    run(case.alg, params)
    flagged = read(params["OUTPUT"])
    assert np.isnan(flagged[PIXEL]) and np.isfinite(flagged).sum() == flagged.size - 1


def test_zero_is_data_collocate(s1s2_provider, tmp_path):
    case = CASES["collocate"]
    params, _ = case.build(str(tmp_path), {"INPUT": _with_zero(case.rasters["INPUT"][0])})
    run(case.alg, params)
    assert read(params["OUTPUT"])[PIXEL] == 0.0


@pytest.mark.parametrize("name", ["ndvi", "fusendvi", "seaice"])
def test_s2_dn_zero_is_nodata(s1s2_provider, tmp_path, name):
    """SPEC: S2 DN 0 is NoData, even when the file declares no NoData."""
    case = CASES[name]
    param = {"ndvi": "RED", "fusendvi": "RED", "seaice": "S2_GREEN"}[name]
    array = _with_zero(case.rasters[param][0])
    params, paths = case.build(str(tmp_path), {param: array})
    write(paths[param], array)  # no NoData declared
    run(case.alg, params)
    if name == "fusendvi":  # a clear pixel without S2 data is filled from S1
        assert raw(params["OUTPUT_SOURCE"])[PIXEL] == 2
        assert np.sum(raw(params["OUTPUT_SOURCE"]) == 2) == 1 + 6 * SHAPE[0]  # + cloudy columns
        return
    output = "OUTPUT_S2_ICE" if name == "seaice" else "OUTPUT"
    got = read(params[output])
    assert np.isnan(got[PIXEL])
    assert np.isfinite(got).sum() == got.size - 1


# -- uint16 never wraps around ------------------------------------------------------------
def test_ndvi_uint16_red_above_nir(s1s2_provider, tmp_path):
    red = np.full(SHAPE, 5000, np.uint16)
    nir = np.full(SHAPE, 1000, np.uint16)
    params, _ = CASES["ndvi"].build(str(tmp_path), {"RED": red, "NIR": nir})
    run("s1s2:ndvi", params)
    np.testing.assert_allclose(read(params["OUTPUT"]), -4000 / 6000, rtol=1e-6)


UINT16_ALGS = ["dbconvert", "rvi4s1", "vvvhratio", "anglemask", "stackstatistics",
               "refinedlee", "leefilter", "focalmedian", "collocate"]


@pytest.mark.parametrize("name", UINT16_ALGS)
def test_uint16_input_equals_float_input(s1s2_provider, tmp_path, name):
    """The same values as uint16 and as float32 give the same result (no wrap, no overflow)."""
    case = CASES[name]
    values = {p: _rng(i).integers(1, 65535, SHAPE).astype(np.float32)
              for i, p in enumerate(case.rasters) if p != "ANGLE"}
    if "VV" in values:  # VH > VV somewhere and differences beyond the uint16 range
        values["VH"][:, ::2] = 65000
        values["VV"][:, ::2] = 3
    outputs = {}
    for kind, dtype in (("float", np.float32), ("uint16", np.uint16)):
        folder = tmp_path / kind
        folder.mkdir()
        overrides = {p: v.astype(dtype) for p, v in values.items()}
        params, _ = case.build(str(folder), overrides)
        if name == "collocate":
            params["RESAMPLING"] = 1  # bilinear: sums of large values
            params["LINEAR_UNITS"] = False
        run(case.alg, params)
        outputs[kind] = [read(params[o]) for o in case.outputs]
    for got, expected in zip(outputs["uint16"], outputs["float"]):
        np.testing.assert_allclose(got, expected, rtol=1e-5, equal_nan=True)
        assert np.isfinite(got).any()


# -- an output equal to an input is refused -----------------------------------------------
@pytest.mark.parametrize("name", RASTER_ALGS)
def test_output_equal_to_an_input_is_refused(s1s2_provider, tmp_path, name):
    case = CASES[name]
    params, paths = case.build(str(tmp_path))
    for param, path in paths.items():
        before = {p: digest(x) for p, x in paths.items()}
        trial = dict(params)
        trial[case.outputs[-1]] = path
        message = expect_error(case.alg, trial)
        assert "also an input" in message, message
        assert {p: digest(x) for p, x in paths.items()} == before, param
        assert not os.path.exists(os.path.splitext(path)[0] + ".qml")
    assert leftovers(str(tmp_path)) == []


COLLOCATED_INPUTS = [(name, param) for name in RASTER_ALGS for param in CASES[name].collocated]


@pytest.mark.parametrize("name,param", COLLOCATED_INPUTS,
                         ids=[f"{n}-{p}" for n, p in COLLOCATED_INPUTS])
def test_output_equal_to_an_input_resampled_on_the_fly_is_refused(s1s2_provider, tmp_path,
                                                                   name, param):
    """An input collocated on the fly (read through a VRT) is an input all the same."""
    case = CASES[name]
    params, paths = case.build(str(tmp_path), *misaligned(case, param))
    before = {p: digest(x) for p, x in paths.items()}
    for output in case.outputs:
        trial = dict(params)
        trial[output] = paths[param]
        message = expect_error(case.alg, trial)
        assert "also an input" in message, message
        assert {p: digest(x) for p, x in paths.items()} == before, output
    assert leftovers(str(tmp_path)) == []


# -- a failing run keeps the previous output ----------------------------------------------
@pytest.mark.parametrize("name", RASTER_ALGS)
def test_failed_run_keeps_previous_output(s1s2_provider, tmp_path, name):
    case = CASES[name]
    params, _ = case.build(str(tmp_path))
    run(case.alg, params)
    before = {o: digest(params[o]) for o in case.outputs}
    qml_before = {o: digest(os.path.splitext(params[o])[0] + ".qml") for o in case.outputs}
    bad = dict(params)
    bad[next(iter(case.bands))] = 3  # invalid band: found once the inputs are opened
    expect_error(case.alg, bad)
    assert {o: digest(params[o]) for o in case.outputs} == before
    assert {o: digest(os.path.splitext(params[o])[0] + ".qml") for o in case.outputs} == \
        qml_before
    assert leftovers(str(tmp_path)) == []


# -- cancel -------------------------------------------------------------------------------
def cancelling_feedback(at_percent=None):
    from qgis.core import QgsProcessingFeedback

    class CancelOnProgress(QgsProcessingFeedback):
        """Cancels itself on the first progress report (or the first reaching ``at_percent``)."""

        def setProgress(self, progress):  # noqa: N802 - QGIS API
            super().setProgress(progress)
            if at_percent is None or progress >= at_percent:
                self.cancel()

    return CancelOnProgress()


@pytest.mark.parametrize("at_end", [None, 50.0, 70.0, 99.999],
                         ids=["first-progress", "50pc", "70pc", "last-progress"])
@pytest.mark.parametrize("previous", [False, True], ids=["new", "existing"])
@pytest.mark.parametrize("name", RASTER_ALGS)
def test_cancelled_run_leaves_nothing(s1s2_provider, tmp_path, name, previous, at_end):
    from qgis.core import QgsProcessingException

    case = CASES[name]
    params, paths = case.build(str(tmp_path))
    inputs_before = {p: digest(x) for p, x in paths.items()}
    if previous:
        for output in case.outputs:
            write(params[output], np.zeros((2, 3), np.float32))
    before = {o: digest(params[o]) for o in case.outputs if os.path.exists(params[o])}
    feedback = cancelling_feedback(at_end)
    with pytest.raises(QgsProcessingException, match="(?i)cancel"):
        run(case.alg, params, feedback=feedback)
    assert feedback.isCanceled()
    after = {o: digest(params[o]) for o in case.outputs if os.path.exists(params[o])}
    assert after == before
    assert {p: digest(x) for p, x in paths.items()} == inputs_before
    assert leftovers(str(tmp_path)) == []


# -- collocateswath: a NetCDF swath with lon/lat arrays --------------------------------------
def swath_file(path, values=None, size=30):
    """A size x size swath of 8 m spacing over the test grid, written as NetCDF/CF."""
    from osgeo import osr
    from scipy.io import netcdf_file

    utm, wgs = osr.SpatialReference(), osr.SpatialReference()
    utm.ImportFromEPSG(32633)
    wgs.ImportFromEPSG(4326)
    wgs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    to_lonlat = osr.CoordinateTransformation(utm, wgs)
    xs = GT[0] + 8.0 * np.arange(size) - 10.0
    ys = GT[3] - 8.0 * np.arange(size) + 10.0
    points = [(x, y) for y in ys for x in xs]
    lonlat = np.array(to_lonlat.TransformPoints(points))[:, :2]
    lon, lat = lonlat[:, 0].reshape(size, size), lonlat[:, 1].reshape(size, size)
    if values is None:
        values = _rng(20).uniform(0.01, 0.3, (size, size))
    with netcdf_file(path, "w") as nc:
        nc.createDimension("y", size)
        nc.createDimension("x", size)
        for name, data in (("lon", lon), ("lat", lat)):
            var = nc.createVariable(name, "d", ("y", "x"))
            var[:] = data
        var = nc.createVariable("sigma0", "f", ("y", "x"))
        var[:] = np.where(np.isnan(values), -999.0, values).astype(np.float32)
        var._FillValue = np.float32(-999.0)
        var.coordinates = "lat lon"
    return path


def swath_params(folder, values=None):
    params = {"INPUT": swath_file(os.path.join(folder, "swath.nc"), values),
              "VARIABLE": "sigma0", "LON_VARIABLE": "lon", "LAT_VARIABLE": "lat",
              "TARGET": write(os.path.join(folder, "target.tif"), linear(21)),
              "RADIUS": 20.0, "OUTPUT": os.path.join(folder, "out.tif")}
    return params


def test_collocateswath_bad_inputs(s1s2_provider, tmp_path):
    params = swath_params(str(tmp_path))
    inputs = {p: digest(params[p]) for p in ("INPUT", "TARGET")}
    for param in ("INPUT", "TARGET"):
        message = expect_error("s1s2:collocateswath", dict(params, OUTPUT=params[param]))
        assert "also an input" in message, message
    assert {p: digest(params[p]) for p in inputs} == inputs
    run("s1s2:collocateswath", params)  # a valid run: then a failing one keeps its output
    assert np.isfinite(read(params["OUTPUT"])).all()
    before = digest(params["OUTPUT"])
    expect_error("s1s2:collocateswath", dict(params, VARIABLE="sigma0_HV"), match="VARIABLE")
    expect_error("s1s2:collocateswath", dict(params, LAT_VARIABLE="latitude"),
                 match="latitude")
    assert digest(params["OUTPUT"]) == before
    assert leftovers(str(tmp_path)) == []


def test_collocateswath_nodata(s1s2_provider, tmp_path):
    """Fill values are NoData: all-fill gives an all-NoData grid (or a clear error)."""
    from qgis.core import QgsProcessingException

    params = swath_params(str(tmp_path), np.full((30, 30), np.nan))
    try:
        run("s1s2:collocateswath", params)
    except QgsProcessingException:
        assert not os.path.exists(params["OUTPUT"])
    else:
        assert all_nodata(params["OUTPUT"])
    values = _rng(20).uniform(0.01, 0.3, (30, 30))
    values[:, 15:] = np.nan  # east half NoData (fill value): east of the grid is NoData
    values[:, 10:12] = 0.0  # zero is data
    (tmp_path / "half").mkdir()
    params = swath_params(str(tmp_path / "half"), values)
    run("s1s2:collocateswath", params)
    got = read(params["OUTPUT"])
    x = GT[0] + 10.0 * (np.arange(SHAPE[1]) + 0.5)
    east = x > GT[0] - 10.0 + 8.0 * 14.5 + 20.0  # beyond the last valid column + radius
    assert np.isnan(got[:, east]).all() and np.isfinite(got[:, x < GT[0] + 60.0]).all()
    assert (got == 0.0).any()


@pytest.mark.parametrize("previous", [False, True], ids=["new", "existing"])
def test_collocateswath_cancel(s1s2_provider, tmp_path, previous):
    from qgis.core import QgsProcessingException

    params = swath_params(str(tmp_path))
    if previous:
        write(params["OUTPUT"], np.zeros((2, 3), np.float32))
    before = digest(params["OUTPUT"]) if previous else None
    with pytest.raises(QgsProcessingException, match="(?i)cancel"):
        run("s1s2:collocateswath", params, feedback=cancelling_feedback())
    assert (digest(params["OUTPUT"]) if os.path.exists(params["OUTPUT"]) else None) == before
    assert leftovers(str(tmp_path)) == []


# -- calibrate: a SAFE product ----------------------------------------------------------------
@pytest.fixture(scope="module")
def safe_product(tmp_path_factory):
    """The bundled SAFE annotation scaled down 10x with a synthetic measurement; DN 0 in a
    corner (the no-signal border of GRD products)."""
    from osgeo import gdal
    from test_calibration_product import build_product

    safe = build_product(str(tmp_path_factory.mktemp("safe")), scale=10,
                         polarisations=("VV",))
    tiff = glob.glob(os.path.join(safe, "measurement", "*.tiff"))[0]
    dataset = gdal.Open(tiff, gdal.GA_Update)
    dataset.GetRasterBand(1).WriteArray(np.zeros((5, 7), np.uint16), 0, 0)
    dataset = None
    return os.path.join(safe, "manifest.safe"), tiff


def test_calibrate_bad_inputs(s1s2_provider, safe_product, tmp_path):
    manifest, tiff = safe_product
    inputs = {p: digest(p) for p in (manifest, tiff)}
    out = str(tmp_path / "sigma0.tif")
    params = {"INPUT": manifest, "POLARISATION": 0, "OUTPUT": out}
    for path in (manifest, tiff):  # the measurement TIFF is an input too
        message = expect_error("s1s2:calibrate", dict(params, OUTPUT=path))
        assert "also an input" in message, message
    assert {p: digest(p) for p in inputs} == inputs
    not_a_product = write(str(tmp_path / "grd.tif"), linear(22))
    expect_error("s1s2:calibrate", dict(params, INPUT=not_a_product), match="INPUT")
    run("s1s2:calibrate", params)
    got = read(out)
    assert np.isnan(got[:5, :7]).all()  # DN 0 -> NoData
    assert np.isfinite(got[5:, 7:]).mean() > 0.9
    before = digest(out)
    message = expect_error("s1s2:calibrate", dict(params, POLARISATION=2))  # HH: not in it
    assert "HH" in message, message
    assert digest(out) == before
    assert leftovers(str(tmp_path)) == []


@pytest.mark.parametrize("previous", [False, True], ids=["new", "existing"])
def test_calibrate_cancel(s1s2_provider, safe_product, tmp_path, previous):
    from qgis.core import QgsProcessingException

    out = str(tmp_path / "sigma0.tif")
    if previous:
        write(out, np.zeros((2, 3), np.float32))
    before = digest(out) if previous else None
    with pytest.raises(QgsProcessingException, match="(?i)cancel"):
        run("s1s2:calibrate", {"INPUT": safe_product[0], "POLARISATION": 0, "OUTPUT": out},
            feedback=cancelling_feedback())
    assert (digest(out) if os.path.exists(out) else None) == before
    assert leftovers(str(tmp_path)) == []


# -- through qgis_process: the message reaches the user, no traceback ------------------------
QGIS_PROCESS_CASES = [("rvi4s1", "band", "VH_BAND"), ("ndvi", "output=input", "also an input"),
                      ("anglemask", "grid", "ANGLE is not on the grid"),
                      ("vvvhratio", "units", "Input units (INPUT_UNITS): VV holds dB values")]


@pytest.mark.parametrize("name,kind,expected", QGIS_PROCESS_CASES,
                         ids=[f"{n}-{k}" for n, k, _ in QGIS_PROCESS_CASES])
def test_qgis_process_reports_bad_input(qgis_process, tmp_path, name, kind, expected):
    case = CASES[name]
    geotransforms = {"ANGLE": GT_SHIFTED} if kind == "grid" else None
    overrides = None
    if kind == "units":  # dB rasters, read as linear power
        overrides = {p: (10 * np.log10(case.rasters[p][0])).astype(np.float32)
                     for p in ("VV", "VH")}
    params, paths = case.build(str(tmp_path), overrides, geotransforms)
    before = {p: digest(x) for p, x in paths.items()}
    if kind == "band":
        params["VH_BAND"] = 3
    if kind == "output=input":
        params["OUTPUT"] = paths["NIR"]
    result = qgis_process.run(case.alg, check=False, **params)
    assert result["returncode"] != 0
    text = result["stdout"] + result["stderr"]
    assert expected in text, text[-2000:]
    assert "Traceback" not in text, text[-2000:]
    assert {p: digest(x) for p, x in paths.items()} == before
    if kind != "output=input":
        assert not os.path.exists(params["OUTPUT"])
    assert leftovers(str(tmp_path)) == []


# -- one sensor entirely NoData in the two-sensor algorithms --------------------------------
def test_fusendvi_without_s1_data(s1s2_provider, tmp_path):
    """S1 all NoData: clear pixels keep S2, cloudy ones are NoData (source 0); the fitted
    model has nothing to fit on: a clear error naming the cause, the old output kept."""
    case = CASES["fusendvi"]
    nan = np.full(SHAPE, np.nan, np.float32)
    params, _ = case.build(str(tmp_path), {"VV": nan, "VH": nan})
    run(case.alg, params)
    source = raw(params["OUTPUT_SOURCE"])
    assert np.all(source[:, :6] == 0) and np.all(source[:, 6:] == 1)
    got = read(params["OUTPUT"])
    assert np.isnan(got[:, :6]).all() and np.isfinite(got[:, 6:]).all()
    before = {o: digest(params[o]) for o in case.outputs}
    local = dict(params, MODEL=0)
    local.pop("COEFFICIENTS")
    message = expect_error(case.alg, local)
    assert "pixel" in message.lower(), message
    assert {o: digest(params[o]) for o in case.outputs} == before
    assert leftovers(str(tmp_path)) == []


def test_fusendvi_reference_off_grid_keeps_previous_outputs(s1s2_provider, tmp_path):
    case = CASES["fusendvi"]
    params, _ = case.build(str(tmp_path))
    run(case.alg, params)
    before = {o: digest(params[o]) for o in case.outputs}
    reference = write(str(tmp_path / "reference.tif"), linear(23), geotransform=GT_SHIFTED)
    message = expect_error(case.alg, dict(params, REFERENCE_NDVI=reference),
                           match="REFERENCE_NDVI")
    assert "grid" in message, message
    assert {o: digest(params[o]) for o in case.outputs} == before
    assert leftovers(str(tmp_path)) == []


def test_seaice_without_s1_data(s1s2_provider, tmp_path):
    case = CASES["seaice"]
    params, _ = case.build(str(tmp_path), {"S1": np.full(SHAPE, np.nan, np.float32)})
    result = run(case.alg, params)
    assert all_nodata(params["OUTPUT_S1_ICE"])
    assert np.isfinite(read(params["OUTPUT_S2_ICE"])).all()
    assert result["S1_ICE_CONCENTRATION"] is None and result["AGREEMENT"] is None
    assert result["S2_ICE_CONCENTRATION"] == pytest.approx(
        np.mean(case.rasters["S2_GREEN"][0] >= 2500), abs=0.05)  # holes filled: about


# -- wrong units: dB read as linear power -----------------------------------------------------
DB_AS_LINEAR = [("dbconvert", ("INPUT",), "DIRECTION"), ("rvi4s1", ("VV", "VH"), "INPUT_UNITS"),
                ("vvvhratio", ("VV", "VH"), "INPUT_UNITS"), ("fusendvi", ("VV", "VH"), "S1_UNITS"),
                ("refinedlee", ("INPUT",), "INPUT_UNITS"), ("leefilter", ("INPUT",), "INPUT_UNITS"),
                ("focalmedian", ("INPUT",), "INPUT_UNITS")]


@pytest.mark.parametrize("name,params,units", DB_AS_LINEAR, ids=[n for n, _, _ in DB_AS_LINEAR])
def test_db_input_read_as_linear_is_a_clear_error(s1s2_provider, tmp_path, name, params,
                                                  units):
    """Linear-only formulas would turn dB into an all-NoData or meaningless result."""
    case = CASES[name]
    overrides = {p: (10 * np.log10(case.rasters[p][0])).astype(np.float32) for p in params}
    built, _ = case.build(str(tmp_path), overrides)
    if units != "DIRECTION":  # linear power chosen explicitly (the default, Auto, detects dB)
        built[units] = 0
    expect_error(case.alg, built, match=units)
    assert not os.path.exists(built[case.outputs[0]])
    # a linear band with a few negatives (thermal-noise removal) is still linear
    linear_noisy = case.rasters[params[0]][0].copy()
    linear_noisy[:3] = -0.001
    (tmp_path / "noisy").mkdir()
    built, _ = case.build(str(tmp_path / "noisy"), {params[0]: linear_noisy})
    if units != "DIRECTION":
        built[units] = 0
    run(case.alg, built)
    if name in ("dbconvert", "rvi4s1", "vvvhratio"):
        assert np.isnan(read(built[case.outputs[0]])[:3]).all()


def test_seaice_db_forced_linear_is_a_clear_error(s1s2_provider, tmp_path):
    case = CASES["seaice"]
    params, _ = case.build(str(tmp_path))
    expect_error(case.alg, dict(params, S1_UNITS=1), match="S1_UNITS")
    for output in case.outputs:
        assert not os.path.exists(params[output])


@pytest.mark.parametrize("name", ["dbconvert", "stackstatistics", "seaice"])
def test_output_that_is_a_folder_is_refused(s1s2_provider, tmp_path, name):
    case = CASES[name]
    params, _ = case.build(str(tmp_path))
    folder = str(tmp_path / "folder.tif")
    os.mkdir(folder)
    expect_error(case.alg, dict(params, **{case.outputs[0]: folder}), match="folder")
    assert os.path.isdir(folder) and leftovers(str(tmp_path)) == []


# -- a damaged input found mid-run --------------------------------------------------------
def damaged_raster(path):
    """A 600 x 600 tiled GeoTIFF whose last tile is garbage: GDAL fails only when reading it."""
    from osgeo import gdal

    data = _rng(24).uniform(0.01, 0.3, (600, 600)).astype(np.float32)
    write(path, data, options=("TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256",
                               "COMPRESS=DEFLATE"))
    dataset = gdal.Open(path)
    band = dataset.GetRasterBand(1)
    offset = int(band.GetMetadataItem("BLOCK_OFFSET_2_2", "TIFF"))
    size = int(band.GetMetadataItem("BLOCK_SIZE_2_2", "TIFF"))
    dataset = band = None
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(b"\xff" * size)
    return path


@pytest.mark.parametrize("name", ["dbconvert", "refinedlee", "focalmedian", "collocate"])
def test_damaged_input_keeps_previous_output(s1s2_provider, tmp_path, name):
    case = CASES[name]
    params, _ = case.build(str(tmp_path))
    run(case.alg, params)
    before = digest(params["OUTPUT"])
    params["INPUT"] = damaged_raster(str(tmp_path / "damaged.tif"))
    if name == "collocate":
        params["TARGET"] = write(str(tmp_path / "target600.tif"), np.ones((600, 600), np.float32))
    expect_error(case.alg, params, match="damaged")
    assert digest(params["OUTPUT"]) == before
    assert leftovers(str(tmp_path)) == []


@pytest.mark.parametrize("name,param", [("fusendvi", "VV"), ("seaice", "S1")])
def test_damaged_input_collocated_on_the_fly(s1s2_provider, tmp_path, name, param):
    """The same through the warped VRT of an automatic collocation."""
    case = CASES[name]
    big = {p: np.resize(a, (600, 600)) for p, (a, _) in case.rasters.items()}
    if name == "seaice":
        big["S1"] = big["S1"] + 20.0  # positive: linear power (the damaged file is linear)
        case_params = {"S1_UNITS": 1}
    else:
        case_params = {}
    params, _ = case.build(str(tmp_path), big)
    params.update(case_params)
    damaged = damaged_raster(str(tmp_path / "damaged.tif"))
    from osgeo import gdal
    shifted = str(tmp_path / "damaged_shifted.tif")
    os.replace(damaged, shifted)
    dataset = gdal.Open(shifted, gdal.GA_Update)
    dataset.SetGeoTransform(GT_SHIFTED)
    dataset = None
    params[param] = shifted
    if name == "fusendvi":
        params["VH"] = shifted
    expect_error(case.alg, params, match="damaged")
    for output in case.outputs:
        assert not os.path.exists(params[output])
    assert leftovers(str(tmp_path)) == []


@pytest.mark.parametrize("name", ["stackstatistics", "fusendvi", "seaice"])
def test_two_outputs_on_one_file_are_refused(s1s2_provider, tmp_path, name):
    case = CASES[name]
    params, _ = case.build(str(tmp_path))
    first, second = case.outputs[:2]
    expect_error(case.alg, dict(params, **{second: params[first]}), match="different")
    assert not os.path.exists(params[first]) and leftovers(str(tmp_path)) == []


@pytest.mark.parametrize("name,mode", [("rvi4s1", None), ("vvvhratio", 0), ("vvvhratio", 1),
                                       ("vvvhratio", 2)])
def test_division_by_zero_is_nodata(s1s2_provider, tmp_path, name, mode):
    """SPEC: division by zero -> NoData (never inf); VV = VH = 0 too."""
    case = CASES[name]
    vv, vh = case.rasters["VV"][0].copy(), case.rasters["VH"][0].copy()
    vv[0, :3] = 0.0  # VV = 0 (RVI4S1: q = VH/0; ratio of dB: log of 0)
    vh[1, :3] = 0.0  # VH = 0 (VV/VH)
    vv[2, :3] = vh[2, :3] = 0.0
    params, _ = case.build(str(tmp_path), {"VV": vv, "VH": vh})
    if mode is not None:
        params["MODE"] = mode
    run(case.alg, params)
    got = read(params["OUTPUT"])
    assert not np.isinf(got).any()
    assert np.isnan(got[2, :3]).all()
    if name == "rvi4s1":
        assert np.isnan(got[0, :3]).all() and (got[1, :3] == 0).all()
    elif mode == 1:  # linear VV / VH: 0 / VH = 0 is data, VV / 0 is NoData
        assert (got[0, :3] == 0).all() and np.isnan(got[1, :3]).all()
    else:  # dB of a zero is NoData
        assert np.isnan(got[:3, :3]).all()


@pytest.mark.parametrize("nodata,dtype", [(-9999.0, np.float32), (65535, np.uint16)],
                         ids=["float-9999", "uint16-65535"])
@pytest.mark.parametrize("name", ["dbconvert", "refinedlee", "leefilter", "focalmedian",
                                  "collocate", "stackstatistics", "anglemask"])
def test_declared_nodata_value_is_nodata_out(s1s2_provider, tmp_path, name, nodata, dtype):
    """A declared NoData other than NaN (e.g. -9999) is NoData, never a value to filter."""
    case = CASES[name]
    param = "INPUTS_1" if name == "stackstatistics" else "INPUT"
    array = (case.rasters[param][0] * 1000 + 1).astype(dtype)
    array[PIXEL] = nodata
    params, paths = case.build(str(tmp_path))
    write(paths[param], array, nodata=nodata)
    if name == "stackstatistics":
        write(paths["INPUTS_2"], array, nodata=nodata)
    run(case.alg, params)
    got = read(params[case.outputs[0]])
    assert np.isnan(got[PIXEL])
    assert np.isfinite(got).sum() == got.size - 1  # the neighbours do not see -9999
    assert np.nanmax(got) < 1000 * 0.3 + 2


def test_linear_with_a_few_negatives_stays_linear_through_collocation(s1s2_provider, tmp_path):
    """Thermal-noise-removed sigma0 has a few negatives: collocate must not label it dB
    (the label would make the next algorithm refuse it as dB read as linear)."""
    from osgeo import gdal

    case = CASES["collocate"]
    values = case.rasters["INPUT"][0].copy()
    values[:2] = -0.002
    params, _ = case.build(str(tmp_path), {"INPUT": values},
                           {"INPUT": (500005.0, 10.0, 0.0, 5000005.0, 0.0, -10.0)})
    params["RESAMPLING"] = 1
    run(case.alg, params)
    dataset = gdal.Open(params["OUTPUT"])
    assert dataset.GetRasterBand(1).GetUnitType().lower() != "db"
    assert dataset.GetMetadataItem("units", "") != "dB"
    dataset = None
    vh = str(tmp_path / "vh.tif")
    write(vh, read(params["OUTPUT"]).astype(np.float32) / 4)
    out = str(tmp_path / "rvi.tif")
    run("s1s2:rvi4s1", {"VV": params["OUTPUT"], "VH": vh, "INPUT_UNITS": 0, "OUTPUT": out})
    assert np.isfinite(read(out)).sum() > 0.8 * read(out).size


def test_fusendvi_uint16_red_above_nir(s1s2_provider, tmp_path):
    case = CASES["fusendvi"]
    red = np.full(SHAPE, 5000, np.uint16)
    nir = np.full(SHAPE, 1000, np.uint16)
    params, _ = case.build(str(tmp_path), {"RED": red, "NIR": nir})
    run(case.alg, params)
    clear = raw(params["OUTPUT_SOURCE"]) == 1
    assert clear.sum() == SHAPE[0] * (SHAPE[1] - 6)
    np.testing.assert_allclose(read(params["OUTPUT"])[clear], -4000 / 6000, rtol=1e-6)


# -- several outputs: all replaced together or none ------------------------------------------
MULTI_OUTPUT = ["stackstatistics", "fusendvi", "seaice"]


def _qml(path):
    return os.path.splitext(path)[0] + ".qml"


def _state(paths):
    """Digests of outputs and their styles (None when absent)."""
    return {p: digest(p) if os.path.exists(p) else None
            for path in paths for p in (path, _qml(path))}


@pytest.mark.parametrize("stage", ["flush", "commit"])
@pytest.mark.parametrize("name", MULTI_OUTPUT)
def test_several_outputs_replaced_together_or_none(s1s2_provider, tmp_path, monkeypatch, name,
                                                   stage):
    """A failure while the last output is flushed or moved into place keeps every earlier
    output and style of the previous run, and leaves no temporary file."""
    from s1s2_toolkit.core import writer

    case = CASES[name]
    params, _ = case.build(str(tmp_path))
    run(case.alg, params)
    outputs = [params[o] for o in case.outputs]
    before = _state(outputs)
    last = os.path.basename(outputs[-1])
    if stage == "flush":
        finish = writer.AtomicGeoTiff.finish

        def failing_finish(self):
            if f".{last}." in os.path.basename(self.tmp_path):
                raise writer.S1S2Error("simulated: flushing the last output failed")
            finish(self)
        monkeypatch.setattr(writer.AtomicGeoTiff, "finish", failing_finish)
    else:
        replace = os.replace

        def failing_replace(src, dst):
            if os.path.basename(dst) == last:
                raise OSError(5, "simulated: moving the last output failed")
            replace(src, dst)
        monkeypatch.setattr(writer.os, "replace", failing_replace)
    expect_error(case.alg, params, match="simulated")
    monkeypatch.undo()
    assert _state(outputs) == before
    assert leftovers(str(tmp_path)) == []


@pytest.mark.parametrize("name", MULTI_OUTPUT)
def test_several_outputs_failure_mid_run(s1s2_provider, tmp_path, monkeypatch, name):
    """A failure while writing blocks (here the first output's writer) keeps everything."""
    from s1s2_toolkit.core import writer

    case = CASES[name]
    params, _ = case.build(str(tmp_path))
    run(case.alg, params)
    outputs = [params[o] for o in case.outputs]
    before = _state(outputs)

    def failing_write(self, data, xoff, yoff):
        raise writer.S1S2Error("simulated: writing a block failed")
    monkeypatch.setattr(writer.AtomicGeoTiff, "write", failing_write)
    expect_error(case.alg, params, match="simulated")
    monkeypatch.undo()
    assert _state(outputs) == before
    assert leftovers(str(tmp_path)) == []


def test_replace_together_restores_earlier_outputs(tmp_path, monkeypatch):
    """The core step itself: the second move fails, the first final is put back."""
    from s1s2_toolkit.core import writer

    finals = [str(tmp_path / f"out{i}.tif") for i in range(3)]
    temps = [str(tmp_path / f".out{i}.tif.x.part.tif") for i in range(3)]
    for final, tmp in zip(finals, temps):
        with open(final, "w") as handle:
            handle.write("old " + final)
        with open(tmp, "w") as handle:
            handle.write("new " + final)
    replace, calls = os.replace, []

    def failing_replace(src, dst):
        calls.append(dst)
        if dst == finals[1] and src == temps[1]:
            raise OSError(28, "No space left on device")
        replace(src, dst)
    monkeypatch.setattr(writer.os, "replace", failing_replace)
    with pytest.raises(OSError):
        writer.replace_together(list(zip(temps, finals)))
    monkeypatch.undo()
    assert [open(f).read() for f in finals] == ["old " + f for f in finals]
    assert calls[:2] == finals[:2]
    assert leftovers(str(tmp_path)) == []


@pytest.mark.parametrize("name", ["dbconvert", "stackstatistics", "seaice"])
def test_blocked_style_is_a_warning_not_a_failure(s1s2_provider, tmp_path, name):
    """A folder where the .qml goes: the raster is written, the log warns, nothing else."""
    from qgis.core import QgsProcessingFeedback

    class Recorder(QgsProcessingFeedback):
        warnings = []

        def pushWarning(self, warning):  # noqa: N802 - QGIS API
            self.warnings.append(warning)
            super().pushWarning(warning)

    case = CASES[name]
    params, _ = case.build(str(tmp_path))
    blocked = _qml(params[case.outputs[0]])
    os.mkdir(blocked)
    feedback = Recorder()
    run(case.alg, params, feedback=feedback)
    assert os.path.isdir(blocked)
    for output in case.outputs:
        assert np.isfinite(read(params[output])).any() or name == "seaice"
    for output in case.outputs[1:]:
        assert os.path.isfile(_qml(params[output]))
    assert any(blocked in w and "could not be written" in w for w in feedback.warnings), \
        feedback.warnings
    assert leftovers(str(tmp_path)) == []


# -- full disk -------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 512 kB tmpfs (root), or None where mounting is not allowed (then the write failure
    is simulated)."""
    import subprocess

    mount = tmp_path / "small"
    mount.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)],
        capture_output=True).returncode == 0
    yield str(mount) if mounted else None
    if mounted:
        subprocess.run(["umount", str(mount)], check=True)


def _big_stack_case(folder):
    """stackstatistics on 600 x 600 random dates: each float32 output about 1.4 MB."""
    case = CASES["stackstatistics"]
    big = {p: _rng(i).uniform(0.01, 0.3, (600, 600)).astype(np.float32)
           for i, p in enumerate(case.rasters)}
    params, _ = case.build(folder, big)
    params["STATISTICS"] = [2, 3]  # mean, min
    params["OUTPUT_MIN"] = params.pop("OUTPUT_COUNT")
    params.pop("OUTPUT_MEDIAN")
    return params


def _mean_kept_min_on_the_full_disk(folder, small_disk):
    """A first run writes OUTPUT_MEAN (and its style); the parameters of a second run with
    OUTPUT_MIN on the full device; returns (parameters, state of the mean, that device)."""
    params = _big_stack_case(folder)
    run("s1s2:stackstatistics", params)
    before = _state([params["OUTPUT_MEAN"]])
    disk = small_disk or os.path.join(folder, "full")
    os.makedirs(disk, exist_ok=True)
    params["OUTPUT_MIN"] = os.path.join(disk, "min.tif")
    return params, before, disk


def test_full_disk_is_refused_before_the_run(s1s2_provider, tmp_path, small_disk, monkeypatch):
    """OUTPUT_MEAN replaces an existing file, OUTPUT_MIN is on a full device: refused at once,
    with the numbers; the old mean and its style stay."""
    from s1s2_toolkit.core import writer

    params, before, disk = _mean_kept_min_on_the_full_disk(str(tmp_path), small_disk)
    if small_disk is None:  # simulate a device with 100 kB free (then both outputs are on it)
        monkeypatch.setattr(writer, "free_bytes", lambda path: 100 * 2 ** 10)
    message = expect_error("s1s2:stackstatistics", params, match="No space left on the device")
    assert f"OUTPUT_MIN '{params['OUTPUT_MIN']}'" in message, message
    assert "MB needed" in message and "MB free" in message and params["OUTPUT_MIN"] in message
    assert _state([params["OUTPUT_MEAN"]]) == before
    assert os.listdir(disk) == [] and leftovers(str(tmp_path)) == []


def test_full_disk_while_writing(s1s2_provider, tmp_path, small_disk, monkeypatch):
    """The early check passed (another program filled the disk meanwhile): the write fails,
    the message says so, nothing is left on the full device, the old mean stays."""
    from s1s2_toolkit.core import writer

    params, before, disk = _mean_kept_min_on_the_full_disk(str(tmp_path), small_disk)
    monkeypatch.setattr(writer, "check_free_space", lambda specs, grid: None)
    if small_disk is None:  # simulate GDAL's error on a full device
        finish = writer.AtomicGeoTiff.finish

        def full_finish(self):
            if self.tmp_path.startswith(disk):
                self.dataset = None
                raise self.write_error(RuntimeError(
                    "TIFFAppendToStrip:Write error at scanline 0 (No space left on device)"))
            finish(self)
        monkeypatch.setattr(writer.AtomicGeoTiff, "finish", full_finish)
    message = expect_error("s1s2:stackstatistics", params,
                           match="No space left on the device of OUTPUT_MIN")
    assert "Traceback" not in message and "TIFFAppendToStrip" not in message
    assert _state([params["OUTPUT_MEAN"]]) == before
    assert os.listdir(disk) == [] and leftovers(str(tmp_path)) == []
    if small_disk is not None:  # the space is given back
        assert writer.free_bytes(params["OUTPUT_MIN"]) > 400 * 2 ** 10


def test_full_disk_through_qgis_process(qgis_process, tmp_path, small_disk):
    """The user's view: the message, no traceback, nothing on the full device (a real small
    tmpfs only: a simulated failure cannot reach the qgis_process child)."""
    if small_disk is None:
        pytest.skip("mounting a tmpfs needs root")
    source = write(str(tmp_path / "big.tif"),
                   _rng(30).uniform(0.01, 0.3, (600, 600)).astype(np.float32))
    out = os.path.join(small_disk, "db.tif")
    result = qgis_process.run("s1s2:dbconvert", check=False, INPUT=source, DIRECTION=0,
                              OUTPUT=out)
    text = result["stdout"] + result["stderr"]
    assert result["returncode"] != 0
    assert f"No space left on the device of OUTPUT '{out}'" in text, text[-2000:]
    assert "Traceback" not in text and os.listdir(small_disk) == []
