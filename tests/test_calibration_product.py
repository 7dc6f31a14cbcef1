"""s1s2:calibrate end to end on a real SAFE product with a synthetic measurement TIFF.

The bundled product (tests/data/s1_safe/*.zip) has real annotation, calibration
and noise XML but an empty measurement folder. ``build_product`` adds a
measurement TIFF of the declared size with a patterned DN. For a fast test the
annotation is scaled down by ``scale`` consistently (image size, vector lines
and pixels, azimuth noise blocks, geolocation grid); the benchmark uses the
full 25 931 x 16 854 px size (benchmarks/bench_calibrate.py).

Expected values are computed here independently, pixel by pixel, straight from
the XML: np.interp along each vector's pixels, then linear in line.
"""
import math
import os
import shutil
import zipfile
from xml.etree import ElementTree

import numpy as np
import pytest
from osgeo import gdal

from testkit import DATA_DIR, read

S1_ZIP = os.path.join(DATA_DIR, "s1_safe",
                      "S1A_IW_GRDH_1SDV_20210119T031653_20210119T031718_036201_043ED0_8255.zip")


# -- building a product ------------------------------------------------------------------
def synthetic_dn(rows, cols):
    """Patterned uint16 DN (0..399) on the outer product of rows x cols; 0 on a 3-px border."""
    rows = np.asarray(rows)[:, None]
    cols = np.asarray(cols)[None, :]
    dn = (((cols // 8) * 37 + (rows // 8) * 11) % 400).astype(np.uint16)
    dn[:, (cols[0] < 3)] = 0
    return dn


def _scale_list(text, scale, values=None):
    """Scale a space-separated index list; drop indices that collapse onto the previous one."""
    old = [int(v) for v in text.split()]
    new, keep = [], []
    for i, v in enumerate(old):
        s = int(round(v / scale))
        if new and s <= new[-1]:
            continue
        new.append(s)
        keep.append(i)
    vals = None
    if values is not None:
        vals = " ".join(values.split()[i] for i in keep)
    return " ".join(map(str, new)), len(new), vals


def _scale_vector_pixels(vector, value_tags, scale):
    pixel = vector.find("pixel")
    luts = [vector.find(t) for t in value_tags if vector.find(t) is not None]
    new_text, count, _ = _scale_list(pixel.text, scale)
    # same kept indices for every LUT of the vector
    old = [int(v) for v in pixel.text.split()]
    keep, last = [], None
    for i, v in enumerate(old):
        s = int(round(v / scale))
        if last is not None and s <= last:
            continue
        keep.append(i)
        last = s
    for lut in luts:
        parts = lut.text.split()
        lut.text = " ".join(parts[i] for i in keep)
        lut.set("count", str(len(keep)))
    pixel.text = new_text
    pixel.set("count", str(count))


def _scale_line_vectors(vector_list, scale, value_tags):
    """Scale the line of each vector; a vector whose line collapses onto the previous goes."""
    last = None
    for v in list(vector_list):
        line = int(round(int(v.find("line").text) / scale))
        if last is not None and line <= last:
            vector_list.remove(v)
            continue
        v.find("line").text = str(line)
        _scale_vector_pixels(v, value_tags, scale)
        last = line
    vector_list.set("count", str(len(vector_list)))


def _scale_xml(data, kind, scale):
    root = ElementTree.fromstring(data)
    sc = lambda v: str(int(round(int(v) / scale)))  # noqa: E731
    if kind == "annotation":
        info = root.find("imageAnnotation/imageInformation")
        for tag in ("numberOfSamples", "numberOfLines"):
            el = info.find(tag)
            el.text = str(int(math.ceil(int(el.text) / scale)))
        for p in root.findall("geolocationGrid/geolocationGridPointList/geolocationGridPoint"):
            for tag in ("line", "pixel"):
                p.find(tag).text = sc(p.find(tag).text)
    elif kind == "calibration":
        _scale_line_vectors(root.find("calibrationVectorList"), scale,
                            ("sigmaNought", "betaNought", "gamma", "dn"))
    elif kind == "noise":
        _scale_line_vectors(root.find("noiseRangeVectorList"), scale, ("noiseRangeLut",))
        for v in root.findall("noiseAzimuthVectorList/noiseAzimuthVector"):
            for tag in ("firstAzimuthLine", "lastAzimuthLine", "firstRangeSample",
                        "lastRangeSample"):
                v.find(tag).text = sc(v.find(tag).text)
            lut = v.find("noiseAzimuthLut")
            text, count, vals = _scale_list(v.find("line").text, scale, lut.text)
            v.find("line").text, lut.text = text, vals
            v.find("line").set("count", str(count))
            lut.set("count", str(count))
        # adjacent swath blocks must not overlap after rounding
        blocks = root.findall("noiseAzimuthVectorList/noiseAzimuthVector")
        for a, b in zip(blocks, blocks[1:]):
            if int(a.find("lastRangeSample").text) >= int(b.find("firstRangeSample").text):
                a.find("lastRangeSample").text = str(int(b.find("firstRangeSample").text) - 1)
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)


def build_product(dest_dir, scale=1, source_zip=S1_ZIP, polarisations=("VV", "VH")):
    """Unpack the bundled SAFE into ``dest_dir``, scale its annotation by 1/``scale`` and
    add patterned uint16 measurement TIFFs of the declared size; returns the .SAFE path."""
    with zipfile.ZipFile(source_zip) as archive:
        for name in archive.namelist():
            if name.endswith("/") or name.endswith(".pdf") or "/preview/" in name \
                    or "/support/" in name:
                continue
            target = os.path.join(dest_dir, name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            data = archive.read(name)
            base = os.path.basename(name)
            if scale != 1 and name.endswith(".xml"):
                kind = "calibration" if base.startswith("calibration-") else \
                    "noise" if base.startswith("noise-") else "annotation"
                data = _scale_xml(data, kind, scale)
            with open(target, "wb") as handle:
                handle.write(data)
    safe = os.path.join(dest_dir, os.path.basename(source_zip)[:-4] + ".SAFE")
    for ann in sorted(os.listdir(os.path.join(safe, "annotation"))):
        if not ann.endswith(".xml"):
            continue
        pol = ann.split("-")[3].upper()
        if pol not in polarisations:
            continue
        info = ElementTree.parse(os.path.join(safe, "annotation", ann)).getroot().find(
            "imageAnnotation/imageInformation")
        width, height = int(info.findtext("numberOfSamples")), int(info.findtext("numberOfLines"))
        os.makedirs(os.path.join(safe, "measurement"), exist_ok=True)
        path = os.path.join(safe, "measurement", ann[:-4] + ".tiff")
        ds = gdal.GetDriverByName("GTiff").Create(
            path, width, height, 1, gdal.GDT_UInt16,
            ["TILED=YES", "COMPRESS=DEFLATE", "PREDICTOR=2", "BIGTIFF=IF_SAFER"])
        # the TIFF tags of real measurement files (readers such as OTB look for them)
        ds.SetMetadata({"TIFFTAG_IMAGEDESCRIPTION": "Sentinel-1A IW GRD HR L1",
                        "TIFFTAG_SOFTWARE": "Sentinel-1 IPF 003.31",
                        "TIFFTAG_DATETIME": "2021:01:19 03:16:53"})
        band = ds.GetRasterBand(1)
        cols = np.arange(width)
        for y in range(0, height, 512):
            rows = np.arange(y, min(y + 512, height))
            band.WriteArray(synthetic_dn(rows, cols), 0, y)
        ds = None
    return safe


def zip_product(safe, zip_path):
    """Zip a .SAFE folder like the ESA download (the .SAFE folder at the archive root)."""
    parent = os.path.dirname(safe)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_STORED) as archive:
        for folder, _, files in os.walk(safe):
            for name in files:
                full = os.path.join(folder, name)
                archive.write(full, os.path.relpath(full, parent))
    return zip_path


# -- the independent reference -----------------------------------------------------------
def _vectors(root, path, lut_tag):
    out = []
    for v in root.findall(path):
        out.append((int(v.findtext("line")), np.array(v.findtext("pixel").split(), float),
                    np.array(v.findtext(lut_tag).split(), float)))
    return out


def _interp_vectors(vectors, line, pixel):
    lines = [v[0] for v in vectors]
    i = max(0, min(len(lines) - 2, int(np.searchsorted(lines, line, side="right")) - 1))
    (l0, p0, v0), (l1, p1, v1) = vectors[i], vectors[i + 1]
    a, b = np.interp(pixel, p0, v0), np.interp(pixel, p1, v1)
    t = min(max((line - l0) / (l1 - l0), 0.0), 1.0)
    return a + t * (b - a)


def expected_sigma0(safe, pol, line, pixel, coefficient_tag="sigmaNought", noise=True):
    stem = [n for n in os.listdir(os.path.join(safe, "annotation"))
            if n.endswith(".xml") and f"-{pol.lower()}-" in n][0]
    cal = ElementTree.parse(os.path.join(safe, "annotation", "calibration",
                                         "calibration-" + stem)).getroot()
    lut = _interp_vectors(_vectors(cal, "calibrationVectorList/calibrationVector",
                                   coefficient_tag), line, pixel)
    dn = float(synthetic_dn([line], [pixel])[0, 0])
    eta = 0.0
    if noise:
        nroot = ElementTree.parse(os.path.join(safe, "annotation", "calibration",
                                               "noise-" + stem)).getroot()
        eta = _interp_vectors(_vectors(nroot, "noiseRangeVectorList/noiseRangeVector",
                                       "noiseRangeLut"), line, pixel)
        for block in nroot.findall("noiseAzimuthVectorList/noiseAzimuthVector"):
            if int(block.findtext("firstAzimuthLine")) <= line <= \
                    int(block.findtext("lastAzimuthLine")) and \
                    int(block.findtext("firstRangeSample")) <= pixel <= \
                    int(block.findtext("lastRangeSample")):
                eta *= np.interp(line, np.array(block.findtext("line").split(), float),
                                 np.array(block.findtext("noiseAzimuthLut").split(), float))
    if dn == 0:
        return math.nan
    value = (dn * dn - eta) / (lut * lut)
    return value if value > 0 else math.nan


def sample_points(width, height, n=60, seed=3):
    rng = np.random.default_rng(seed)
    pts = list(zip(rng.integers(0, height, n), rng.integers(0, width, n)))
    pts += [(0, 0), (0, 5), (height - 1, width - 1), (height // 2, width // 3)]
    return pts


# -- tests ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_product(tmp_path_factory):
    return build_product(str(tmp_path_factory.mktemp("s1safe")), scale=10)


def test_scaled_product_is_consistent(small_product):
    from s1s2_toolkit.core.s1annotation import SafeProduct

    product = SafeProduct(small_product)
    ann = product.annotation("VH")
    assert (ann.width, ann.height) == (2594, 1686)  # ceil(25931 / 10), ceil(16854 / 10)
    ds = gdal.Open(product.measurement_path("VH"))
    assert (ds.RasterXSize, ds.RasterYSize) == (ann.width, ann.height)
    assert len(product.noise("VH").azimuth) == 3


def test_qgis_process_calibrate_matches_formula(qgis_process, small_product, tmp_path):
    out = str(tmp_path / "sigma0_vh.tif")
    result = qgis_process.run("s1s2:calibrate", INPUT=small_product, POLARISATION=1,
                              COEFFICIENT=0, NOISE_REMOVAL=True, OUTPUT_DB=False, NEGATIVE=0,
                              OUTPUT=out)
    assert result["results"]["OUTPUT"] == out
    got = read(out)
    ds = gdal.Open(out)
    assert (ds.RasterXSize, ds.RasterYSize) == (2594, 1686)
    gcps = ds.GetGCPs()
    assert len(gcps) == 210 and ds.GetGCPSpatialRef() is not None
    assert gcps[0].GCPX == pytest.approx(34.9827251364596) and gcps[0].GCPPixel == 0
    assert ds.GetMetadataItem("ACQUISITION_START") == "2021-01-19T03:16:53.799379"
    for line, pixel in sample_points(2594, 1686):
        want = expected_sigma0(small_product, "VH", int(line), int(pixel))
        if math.isnan(want):
            assert math.isnan(got[line, pixel]), (line, pixel)
        else:
            assert got[line, pixel] == pytest.approx(want, rel=2e-5), (line, pixel)
    assert np.isnan(got[:, :3]).all()  # DN 0 border -> NoData
    finite = np.isfinite(got)
    assert finite.mean() > 0.5 and (got[finite] > 0).all()


def test_calibrate_zip_db_floor_and_gamma(small_product, tmp_path):
    """The same product zipped (read through /vsizip/), dB output, floor policy, gamma0."""
    from s1s2_toolkit.core.calibration import calibrate

    archive = zip_product(small_product, str(tmp_path / "product.zip"))
    out = str(tmp_path / "g0_db.tif")
    calibrate(archive, "VV", out, coefficient="gamma0", output_db=True, negative="floor",
              block_pixels=300 * 300)
    got = read(out)
    n_floor = 0
    for line, pixel in sample_points(2594, 1686, seed=5):
        dn = synthetic_dn([line], [pixel])[0, 0]
        want = expected_sigma0(small_product, "VV", int(line), int(pixel), "gamma")
        if dn == 0:
            assert math.isnan(got[line, pixel])
        elif math.isnan(want):  # noise > signal: clamped to 1e-5 = -50 dB
            assert got[line, pixel] == pytest.approx(-50.0)
            n_floor += 1
        else:
            assert got[line, pixel] == pytest.approx(10 * math.log10(want), abs=1e-4)
    assert n_floor > 0


def test_calibrate_without_noise_removal(small_product, tmp_path):
    from s1s2_toolkit.core.calibration import calibrate_safe

    out = str(tmp_path / "b0.tif")
    calibrate_safe(os.path.join(small_product, "manifest.safe"), "vh", out, coefficient="beta0",
                   noise_removal=False)
    got = read(out)
    # beta0 LUT is constant (474.0 in every vector): DN^2 / 474^2 exactly
    dn = synthetic_dn(np.arange(got.shape[0]), np.arange(got.shape[1])).astype(float)
    want = np.where(dn > 0, dn * dn / 474.0 ** 2, np.nan)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_inconsistent_and_annotation_only_products_are_refused(tmp_path):
    from s1s2_toolkit.core.calibration import calibrate
    from s1s2_toolkit.core.errors import S1S2Error

    with pytest.raises(S1S2Error, match="measurement file"):
        calibrate(S1_ZIP, "VV", str(tmp_path / "x.tif"))
    with pytest.raises(S1S2Error, match="no HH annotation"):
        calibrate(S1_ZIP, "HH", str(tmp_path / "x.tif"))
    safe = build_product(str(tmp_path / "p"), scale=10, polarisations=("VV",))
    meas = os.path.join(safe, "measurement")
    vv = os.path.join(meas, os.listdir(meas)[0])
    gdal.Translate(vv + ".tmp.tif", vv, srcWin=[0, 0, 100, 100])
    shutil.move(vv + ".tmp.tif", vv)
    with pytest.raises(S1S2Error, match="annotation declares 2594 x 1686"):
        calibrate(safe, "VV", str(tmp_path / "x.tif"))
    assert not os.path.exists(str(tmp_path / "x.tif"))


@pytest.mark.skipif(shutil.which("otbcli") is None, reason="Orfeo ToolBox (otb-bin) not installed")
def test_matches_orfeo_toolbox_sarcalibration(small_product, tmp_path):
    """Reference tool: OTB SARCalibration -lut sigma -removenoise 1 on the same product.

    OTB writes 0 where the toolkit writes NoData (DN 0, noise > signal). Where the signal
    is well above the noise (DN^2 > 2 noise) both agree to 1e-4 (99.9 %) and 2e-3 (all).
    """
    import subprocess

    from s1s2_toolkit.core.calibration import calibrate
    from s1s2_toolkit.core.s1annotation import SafeProduct

    product = SafeProduct(small_product)
    otb = str(tmp_path / "otb.tif")
    proc = subprocess.run(["otbcli", "SARCalibration", "-in", product.measurement_path("VH"),
                           "-out", otb, "-lut", "sigma", "-removenoise", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    ours = read(calibrate(small_product, "VH", str(tmp_path / "ours.tif")))
    theirs = read(otb)
    assert ((theirs > 0) == np.isfinite(ours)).all()
    rows, cols = np.arange(ours.shape[0]), np.arange(ours.shape[1])
    dn = synthetic_dn(rows, cols).astype(float)
    strong = np.isfinite(ours) & (dn * dn > 2 * product.noise("VH").evaluate(rows, cols))
    rel = np.abs(theirs[strong] / ours[strong] - 1)
    assert strong.sum() > 0.5 * ours.size
    assert np.quantile(rel, 0.999) < 1e-4 and rel.max() < 2e-3
