"""The plugin as a desktop user meets it: defaults from the data, Auto units, Advanced
parameters, tags for the toolbox search, the log (bands and units used, result summary)."""
import os

import numpy as np
import pytest

from testkit import S1_CHIP, S2_CHIP, read, write


def collecting_feedback():
    from qgis.core import QgsProcessingFeedback

    class Collecting(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.lines = []

        def pushInfo(self, info):  # noqa: N802 - QGIS API
            self.lines.append(info)
            super().pushInfo(info)

        def reportError(self, error, fatalError=False):  # noqa: N802,N803
            self.lines.append(error)
            super().reportError(error, fatalError)

    return Collecting()


def run(algorithm, parameters):
    import processing

    feedback = collecting_feedback()
    result = processing.run(algorithm, parameters, feedback=feedback)
    return result, "\n".join(feedback.lines)


def algorithms(provider):
    from qgis.core import QgsProcessingModelAlgorithm
    return [a for a in provider.algorithms() if not isinstance(a, QgsProcessingModelAlgorithm)]


# -- tags and the toolbox search -------------------------------------------------------------
def test_every_algorithm_has_tags_and_the_searches_of_the_issue_find_them(s1s2_provider):
    tags = {a.name(): {t.lower() for t in a.tags()} for a in algorithms(s1s2_provider)}
    assert len(tags) == 14
    for name, words in tags.items():
        assert len(words) >= 4, name

    def found(word):
        return {name for name, words in tags.items() if word.lower() in words}

    for word in ("SAR", "radar", "sigma0", "backscatter", "speckle", "despeckle", "Sentinel-1",
                 "Sentinel-2", "NDVI", "cloud", "fusion", "collocation", "resample", "sea ice",
                 "calibration", "time series"):
        assert found(word), word
    assert {"refinedlee", "leefilter", "focalmedian"} <= found("speckle")
    assert {"calibrate", "dbconvert", "refinedlee", "rvi4s1", "vvvhratio"} <= found("sigma0")


def test_families_have_their_own_icons(s1s2_provider):
    import os

    from s1s2_toolkit.algorithms.base import ICON_PATH, icon_path

    families = {a.ICON for a in algorithms(s1s2_provider)}
    assert {"indices", "sar_filter", "collocation", "fusion", "calibration", "sea_ice"} <= families
    for family in families:
        assert icon_path(family) != ICON_PATH and os.path.exists(icon_path(family)), family


# -- Advanced parameters ---------------------------------------------------------------------
ADVANCED = {"ndvi": {"BOA_ADD_OFFSET", "QUANTIFICATION_VALUE", "CLOUD_BUFFER"},
            # REFERENCE_NDVI stays in view: with it VV/VH are optional (temporal mode).
            "fusendvi": {"BOA_ADD_OFFSET", "COEFFICIENTS", "SPECKLE_FILTER", "CLOUD_BUFFER",
                         "NEGATIVE_REFLECTANCE"},
            "leefilter": {"LOOKS", "NODATA_ZERO"}, "calibrate": {"NEGATIVE"}}


def test_expert_parameters_are_advanced_and_inputs_are_not(s1s2_provider):
    from qgis.core import QgsProcessingParameterDefinition

    advanced = QgsProcessingParameterDefinition.Flag.FlagAdvanced
    for name, expected in ADVANCED.items():
        alg = s1s2_provider.algorithm(name)
        flagged = {p.name() for p in alg.parameterDefinitions() if p.flags() & advanced}
        assert expected <= flagged, (name, expected - flagged)
    optional = QgsProcessingParameterDefinition.Flag.FlagOptional
    for alg in algorithms(s1s2_provider):  # required inputs and the outputs stay in view
        for p in alg.parameterDefinitions():
            if p.isDestination() or (p.type() in ("raster", "multilayer", "file") and
                                     not p.flags() & optional):
                assert not p.flags() & advanced, (alg.name(), p.name())


# -- Auto units ------------------------------------------------------------------------------
def test_units_default_to_auto_everywhere(s1s2_provider):
    seen = 0
    for alg in algorithms(s1s2_provider):
        for name in ("S1_UNITS", "INPUT_UNITS"):
            p = alg.parameterDefinition(name)
            if p is None:
                continue
            seen += 1
            assert p.options()[p.defaultValue()].startswith("Auto (detect"), alg.name()
    assert seen == 7  # rvi4s1, vvvhratio, the 3 speckle filters, fusendvi, seaice


def test_auto_detects_db_and_logs_it_and_bands_come_from_descriptions(s1s2_provider, tmp_path):
    # Sen1Floods11 S1: one file, band 1 described 'VV', band 2 'VH', values in dB.
    auto, log = run("s1s2:rvi4s1", {"VV": S1_CHIP, "VH": S1_CHIP,
                                    "OUTPUT": str(tmp_path / "a.tif")})
    assert "VV backscatter (VV): band 1 'VV'" in log and "named by its band description" in log
    assert "VH backscatter (VH): band 2 'VH'" in log
    assert "Input units (INPUT_UNITS): Auto (detect) found dB" in log
    explicit, _ = run("s1s2:rvi4s1", {"VV": S1_CHIP, "VV_BAND": 1, "VH": S1_CHIP, "VH_BAND": 2,
                                      "INPUT_UNITS": 1, "OUTPUT": str(tmp_path / "e.tif")})
    np.testing.assert_array_equal(read(auto["OUTPUT"]), read(explicit["OUTPUT"]))
    # A linear input is detected as linear (no negative values, no unit metadata).
    linear = write(str(tmp_path / "lin.tif"), np.full((8, 8), 0.05, np.float32))
    _, log = run("s1s2:refinedlee", {"INPUT": linear, "OUTPUT": str(tmp_path / "f.tif")})
    assert "Auto (detect) found linear power" in log and "band 1 of lin.tif (the only band)" in log


def test_sea_ice_logs_the_detected_units(s1s2_provider, tmp_path):
    from testkit import BIGEARTHNET, patch_band

    s1 = os.path.join(BIGEARTHNET, "S1A_IW_GRDH_1SDV_20180204T043253_35VPK_57_38")
    s2 = os.path.join(BIGEARTHNET, "S2B_MSIL2A_20180204T94161_57_38")
    _, log = run("s1s2:seaice", {"S1": patch_band(s1, "VH"), "S2_GREEN": patch_band(s2, "B03"),
                                 "OUTPUT_S1_ICE": str(tmp_path / "s1.tif"),
                                 "OUTPUT_S2_ICE": str(tmp_path / "s2.tif")})
    assert "Sentinel-1 units (S1_UNITS): Auto (detect) found dB in S1" in log


def test_explicit_linear_on_db_names_the_field_as_the_dialog_shows_it(s1s2_provider, tmp_path):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException) as error:
        run("s1s2:fusendvi", {"RED": S2_CHIP, "NIR": S2_CHIP, "SCL": S2_CHIP, "SCL_BAND": 1,
                              "VV": S1_CHIP, "VH": S1_CHIP, "S1_UNITS": 0,
                              "OUTPUT": str(tmp_path / "f.tif"),
                              "OUTPUT_SOURCE": str(tmp_path / "s.tif")})
    assert str(error.value).startswith("Sentinel-1 units (S1_UNITS): VV holds dB values")
    assert "choose dB or Auto (detect)" in str(error.value)


# -- band defaults ---------------------------------------------------------------------------
def test_ndvi_of_a_13_band_stack_takes_b4_and_b8_from_the_descriptions(s1s2_provider, tmp_path):
    auto, log = run("s1s2:ndvi", {"RED": S2_CHIP, "NIR": S2_CHIP,
                                  "OUTPUT": str(tmp_path / "a.tif")})
    assert "Red band (B04) (RED): band 4 'B4' of Spain_7370579_S2Hand.tif (named by its band " \
           "description)" in log
    assert "Near-infrared band (B08) (NIR): band 8 'B8'" in log  # not band 9, 'B8A'
    explicit, _ = run("s1s2:ndvi", {"RED": S2_CHIP, "RED_BAND": 4, "NIR": S2_CHIP, "NIR_BAND": 8,
                                    "OUTPUT": str(tmp_path / "e.tif")})
    values = read(auto["OUTPUT"])
    np.testing.assert_array_equal(values, read(explicit["OUTPUT"]))
    assert np.nanstd(values) > 0.05  # not the NDVI 0 of band 1 against band 1


def test_multiband_without_descriptions_is_an_error_not_band_1(s1s2_provider, tmp_path):
    from qgis.core import QgsProcessingException

    stack = write(str(tmp_path / "stack.tif"), np.full((3, 8, 8), 1000, np.uint16))
    with pytest.raises(QgsProcessingException) as error:
        run("s1s2:ndvi", {"RED": stack, "NIR": stack, "OUTPUT": str(tmp_path / "n.tif")})
    message = str(error.value)
    assert message.startswith("Red band (B04): band") and "(RED_BAND)" in message
    assert "3 bands" in message
    assert "B4/B04" in message


# -- the result summary ----------------------------------------------------------------------
def test_ndvi_logs_a_result_summary_with_counts_and_statistics(s1s2_provider, tmp_path):
    result, log = run("s1s2:ndvi", {"RED": S2_CHIP, "NIR": S2_CHIP,
                                     "OUTPUT": str(tmp_path / "ndvi.tif")})
    values = read(result["OUTPUT"])
    valid = int(np.isfinite(values).sum())
    assert "Result summary" in log
    line = next(t for t in log.splitlines() if t.strip().startswith("output ndvi.tif"))
    assert f"valid {valid} ({100 * valid / values.size:.1f} %)" in line
    assert f"NoData {values.size - valid}" in line
    assert f"min {np.nanmin(values):.4g}" in line and f"max {np.nanmax(values):.4g}" in line
    assert f"mean {np.nanmean(values):.3g}"[:-1] in line


@pytest.mark.parametrize("algorithm,parameters", [
    ("s1s2:refinedlee", {"INPUT": S1_CHIP}),
    ("s1s2:focalmedian", {"INPUT": S1_CHIP, "RADIUS": 30.0}),
    ("s1s2:vvvhratio", {"VV": S1_CHIP, "VH": S1_CHIP}),
])
def test_every_kind_of_algorithm_logs_a_summary(s1s2_provider, tmp_path, algorithm, parameters):
    _, log = run(algorithm, dict(parameters, OUTPUT=str(tmp_path / "out.tif")))
    assert "Result summary" in log and "output out.tif" in log and "valid " in log
    assert "Auto (detect) found dB" in log


# -- messages in the user's words ------------------------------------------------------------
def test_errors_name_the_field_as_the_dialog_shows_it_with_its_id(s1s2_provider, tmp_path):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException) as error:  # a core message, translated
        run("s1s2:ndvi", {"RED": S2_CHIP, "NIR": S2_CHIP, "SCL": S2_CHIP, "SCL_BAND": 1,
                          "CLOUD_CLASSES": "3,cloud", "OUTPUT": str(tmp_path / "n.tif")})
    assert str(error.value).startswith("SCL classes masked as cloud (CLOUD_CLASSES): 'cloud'")
    with pytest.raises(QgsProcessingException) as error:
        run("s1s2:rvi4s1", {"VV": S1_CHIP, "VH": S1_CHIP, "VH_BAND": 3,
                            "OUTPUT": str(tmp_path / "r.tif")})
    assert str(error.value).startswith("VH backscatter: band (not set: by band name) "
                                       "(VH_BAND): band 3 requested")


def toolbox_search(text):
    """Algorithm ids the Processing toolbox shows for a search ``text`` (QGIS's own filter)."""
    from qgis.core import QgsApplication
    from qgis.gui import QgsProcessingToolboxProxyModel

    proxy = QgsProcessingToolboxProxyModel(None, QgsApplication.processingRegistry())
    proxy.setFilterString(text)
    found, stack = set(), [proxy.index(row, 0) for row in range(proxy.rowCount())]
    while stack:
        index = stack.pop()
        algorithm = proxy.toolboxModel().algorithmForIndex(proxy.mapToSource(index))
        if algorithm is not None:
            found.add(algorithm.id())
        stack += [proxy.index(row, 0, index) for row in range(proxy.rowCount(index))]
    return {a for a in found if a.startswith("s1s2:")}


def test_the_toolbox_search_finds_the_algorithms_by_their_tags(s1s2_provider):
    assert {"s1s2:refinedlee", "s1s2:leefilter", "s1s2:focalmedian"} <= toolbox_search("speckle")
    assert {"s1s2:calibrate", "s1s2:dbconvert", "s1s2:refinedlee"} <= toolbox_search("sigma0")
    assert "s1s2:fusionchain" in toolbox_search("fusion")
    assert toolbox_search("SAR") >= {"s1s2:calibrate", "s1s2:rvi4s1", "s1s2:seaice"}
