"""BOA_ADD_OFFSET / RADIO_ADD_OFFSET read from a (synthetic, minimal) SAFE product."""
import os
import shutil

import numpy as np
import pytest

from s1s2_toolkit.core import BandSource, S1S2Error
from s1s2_toolkit.core import indices, safe_metadata
from testkit import bigearthnet_pairs, patch_band, read

# Element names and nesting of ESA's Level-2A product metadata (PSD 14.9, baseline >= 04.00).
MTD_L2A = """<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-2A_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd">
  <n1:General_Info>
    <Product_Info><PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE></Product_Info>
    <Product_Image_Characteristics>
      <QUANTIFICATION_VALUES_LIST>
        <BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>
        <AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>
        <WVP_QUANTIFICATION_VALUE unit="cm">1000.0</WVP_QUANTIFICATION_VALUE>
      </QUANTIFICATION_VALUES_LIST>
      {offsets}
    </Product_Image_Characteristics>
  </n1:General_Info>
</n1:Level-2A_User_Product>
"""

MTD_L1C = """<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-1C_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-1C.xsd">
  <n1:General_Info>
    <Product_Image_Characteristics>
      <QUANTIFICATION_VALUE unit="none">10000</QUANTIFICATION_VALUE>
      <Radiometric_Offset_List>
{offsets}
      </Radiometric_Offset_List>
    </Product_Image_Characteristics>
  </n1:General_Info>
</n1:Level-1C_User_Product>
"""


def boa_offsets(values):
    items = "\n".join(f'        <BOA_ADD_OFFSET band_id="{i}">{v}</BOA_ADD_OFFSET>'
                      for i, v in enumerate(values))
    return f"<BOA_ADD_OFFSET_VALUES_LIST>\n{items}\n      </BOA_ADD_OFFSET_VALUES_LIST>"


def make_safe(root, name, mtd_name, mtd_text, bands=None):
    """A SAFE folder with the MTD file and band files copied into R10m."""
    safe = os.path.join(root, name)
    img = os.path.join(safe, "GRANULE", "L2A_T33UUP_A010508_20170613T101032", "IMG_DATA", "R10m")
    os.makedirs(img)
    with open(os.path.join(safe, mtd_name), "w", encoding="utf-8") as handle:
        handle.write(mtd_text)
    paths = {}
    for band, source in (bands or {}).items():
        paths[band] = os.path.join(img, f"T33UUP_20220613T101031_{band}_10m.tif")
        shutil.copy(source, paths[band])
    return safe, paths


@pytest.fixture
def patch():
    s2 = bigearthnet_pairs()[0][0]
    return {"B04": patch_band(s2, "B04"), "B08": patch_band(s2, "B08")}


def test_l2a_offset_read_per_band_and_used_by_ndvi(tmp_path, patch):
    values = [-1000] * 13
    values[7] = -900  # B08 differs, to show the band is looked up by band_id
    safe, paths = make_safe(str(tmp_path), "S2A_MSIL2A_20220613T101031_N0400.SAFE",
                            "MTD_MSIL2A.xml", MTD_L2A.format(baseline="04.00",
                                                             offsets=boa_offsets(values)), patch)
    assert safe_metadata.boa_add_offset_for(paths["B04"]) == -1000.0
    assert safe_metadata.boa_add_offset_for(paths["B08"]) == -900.0
    assert safe_metadata.quantification_for(paths["B04"]) == 10000.0
    assert safe_metadata.find_metadata(safe) == os.path.join(safe, "MTD_MSIL2A.xml")
    # Different offsets in one NDVI: the user must decide.
    with pytest.raises(S1S2Error, match="BOA_ADD_OFFSET"):
        indices.ndvi_file(BandSource(paths["B04"]), BandSource(paths["B08"]),
                          str(tmp_path / "x.tif"))


def test_ndvi_reads_minus_1000_from_the_product(tmp_path, patch):
    safe, paths = make_safe(str(tmp_path), "S2B_MSIL2A_20220613T101031_N0400.SAFE",
                            "MTD_MSIL2A.xml", MTD_L2A.format(baseline="04.00",
                                                             offsets=boa_offsets([-1000] * 13)),
                            patch)
    auto = read(indices.ndvi_file(BandSource(paths["B04"]), BandSource(paths["B08"]),
                                  str(tmp_path / "auto.tif")))
    red, nir = read(patch["B04"]) - 1000, read(patch["B08"]) - 1000
    expected = (nir - red) / (nir + red)
    expected[(red <= 0) | (nir <= 0)] = np.nan  # NEGATIVE_REFLECTANCE "mask" (the default)
    np.testing.assert_allclose(auto, expected, rtol=2e-6, atol=1e-6)
    # An explicit value wins over the metadata; outside a SAFE the default is 0.
    explicit = read(indices.ndvi_file(BandSource(paths["B04"]), BandSource(paths["B08"]),
                                      str(tmp_path / "zero.tif"), boa_add_offset=0.0))
    outside = read(indices.ndvi_file(BandSource(patch["B04"]), BandSource(patch["B08"]),
                                     str(tmp_path / "out.tif")))
    np.testing.assert_array_equal(explicit, outside)
    assert safe_metadata.boa_add_offset_for(patch["B04"]) is None
    assert not np.allclose(auto, outside)


def test_old_baseline_without_offsets_is_zero_and_l1c_radio_offset(tmp_path):
    safe, _ = make_safe(str(tmp_path), "S2A_MSIL2A_20170613T101031_N0205.SAFE",
                        "MTD_MSIL2A.xml", MTD_L2A.format(baseline="02.05", offsets=""))
    assert safe_metadata.boa_add_offset_for(os.path.join(safe, "GRANULE", "x_B04_10m.jp2")) == 0.0
    items = "\n".join(f'        <RADIO_ADD_OFFSET band_id="{i}">-1000</RADIO_ADD_OFFSET>'
                      for i in range(13))
    l1c, _ = make_safe(str(tmp_path), "S2A_MSIL1C_20230101T101031_N0509.SAFE", "MTD_MSIL1C.xml",
                       MTD_L1C.format(offsets=items))
    band = os.path.join(l1c, "GRANULE", "L1C_T33UUP", "IMG_DATA", "T33UUP_20230101T101031_B8A.jp2")
    assert safe_metadata.band_name_of(band) == "B8A"
    assert safe_metadata.boa_add_offset_for(band) == -1000.0
    assert safe_metadata.quantification_for(band) == 10000.0
    # The GDAL SENTINEL2 subdataset name points at the MTD file.
    sub = f"SENTINEL2_L1C:{os.path.join(l1c, 'MTD_MSIL1C.xml')}:10m:EPSG_32633"
    assert safe_metadata.band_name_of(sub, 4) == "B08"
    assert safe_metadata.boa_add_offset_for(sub, 4) == -1000.0


def test_band_names_and_malformed_metadata(tmp_path):
    assert safe_metadata.band_name_of("T32TQM_20220301T101021_B04_10m.jp2") == "B04"
    assert safe_metadata.band_name_of("S2A_MSIL2A_x_87_48_B8.tif") == "B08"
    assert safe_metadata.band_name_of("stack.tif") is None
    safe, _ = make_safe(str(tmp_path), "BAD.SAFE", "MTD_MSIL2A.xml", "<not xml")
    with pytest.raises(S1S2Error, match="Cannot read the product metadata"):
        safe_metadata.boa_add_offset_for(os.path.join(safe, "b_B04.tif"))
