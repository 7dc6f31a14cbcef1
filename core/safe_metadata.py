"""Radiometric offsets of Sentinel-2 SAFE products (``MTD_MSIL2A.xml`` / ``MTD_MSIL1C.xml``).

Since processing baseline 04.00 (products from 2022-01-25) DN -> reflectance is
``(DN + offset) / QUANTIFICATION_VALUE`` with ``offset = -1000``; before it there
is no offset element and the offset is 0. The product metadata holds, under
``General_Info/Product_Image_Characteristics``:

* L2A: ``BOA_ADD_OFFSET_VALUES_LIST/BOA_ADD_OFFSET band_id="0..12"`` and
  ``QUANTIFICATION_VALUES_LIST/BOA_QUANTIFICATION_VALUE``;
* L1C: ``Radiometric_Offset_List/RADIO_ADD_OFFSET band_id="0..12"`` and
  ``QUANTIFICATION_VALUE``.

``band_id`` counts the 13 bands B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B10 B11 B12
from 0. An input "lies in a SAFE product" when its path (a band file such as
``.../S2B_MSIL2A_...SAFE/GRANULE/.../IMG_DATA/R10m/T32TQM_..._B04_10m.jp2``, the
SAFE folder, the MTD file itself or a GDAL ``SENTINEL2_L2A:<MTD>:10m:...``
subdataset name) has a ``*.SAFE`` ancestor holding the MTD file.
"""
import os
import re
import xml.etree.ElementTree as ET
from typing import Dict, Optional, Tuple

from .errors import S1S2Error

BAND_IDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10",
            "B11", "B12")
MTD_NAMES = ("MTD_MSIL2A.xml", "MTD_MSIL1C.xml")
# GDAL SENTINEL2 driver subdataset order of the 10 m group (B4, B3, B2, B8).
_SUBDATASET_BANDS = {"10m": ("B04", "B03", "B02", "B08"),
                     "20m": ("B05", "B06", "B07", "B8A", "B11", "B12"),
                     "60m": ("B01", "B09", "B10")}


def find_metadata(path: str) -> Optional[str]:
    """The MTD_MSIL2A.xml / MTD_MSIL1C.xml of the SAFE product holding ``path``, or None."""
    if not path:
        return None
    match = re.match(r"^SENTINEL2_L[12][AC]:(.*\.xml):", path)
    if match:
        path = match.group(1)
    path = os.path.abspath(path)
    if os.path.basename(path) in MTD_NAMES and os.path.isfile(path):
        return path
    folder = path
    while True:
        if folder.upper().endswith(".SAFE") and os.path.isdir(folder):
            for name in MTD_NAMES:
                candidate = os.path.join(folder, name)
                if os.path.isfile(candidate):
                    return candidate
            return None
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def band_name_of(path: str, band: int = 1) -> Optional[str]:
    """The S2 band (``"B04"``...) an input holds, from its file name or subdataset, or None."""
    match = re.match(r"^SENTINEL2_L[12][AC]:.*\.xml:(\d+m):", path or "")
    if match:
        names = _SUBDATASET_BANDS.get(match.group(1), ())
        return names[band - 1] if 0 < band <= len(names) else None
    found = re.findall(r"(?:^|[_.\-])(B(?:0?[1-9]|1[0-2]|8A))(?=[_.\-]|$)",
                       os.path.basename(path or ""), flags=re.IGNORECASE)
    if not found:
        return None
    name = found[-1].upper()
    return name if name == "B8A" or len(name) == 3 else "B0" + name[1:]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def read_radiometry(mtd_path: str) -> Tuple[Dict[int, float], Optional[float]]:
    """({band_id: offset}, quantification) from an MTD file; missing elements -> {} / None."""
    try:
        root = ET.parse(mtd_path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise S1S2Error(f"Cannot read the product metadata '{mtd_path}' ({exc}).") from None
    offsets, quantification = {}, None
    for element in root.iter():
        name = _local(element.tag)
        if name in ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET"):
            try:
                offsets[int(element.get("band_id"))] = float(element.text)
            except (TypeError, ValueError):
                raise S1S2Error(f"{mtd_path}: malformed {name} element.") from None
        elif name in ("BOA_QUANTIFICATION_VALUE", "L2A_BOA_QUANTIFICATION_VALUE",
                      "QUANTIFICATION_VALUE"):
            try:
                quantification = float(element.text)
            except (TypeError, ValueError):
                raise S1S2Error(f"{mtd_path}: malformed {name} element.") from None
    return offsets, quantification


def boa_add_offset_for(path: str, band: int = 1) -> Optional[float]:
    """BOA_ADD_OFFSET (L2A) or RADIO_ADD_OFFSET (L1C) of the band at ``path``.

    None when ``path`` is not inside a SAFE product. 0.0 for a product without
    offsets (processing baseline < 04.00). When the band cannot be told from the
    file name, the offset common to all bands is returned (they are all -1000 in
    current products); differing offsets then raise S1S2Error.
    """
    mtd = find_metadata(path)
    if mtd is None:
        return None
    offsets, _ = read_radiometry(mtd)
    if not offsets:
        return 0.0
    name = band_name_of(path, band)
    if name is not None and BAND_IDS.index(name) in offsets:
        return offsets[BAND_IDS.index(name)]
    values = set(offsets.values())
    if len(values) == 1:
        return values.pop()
    raise S1S2Error(f"{path}: cannot tell which band this is, and the offsets in {mtd} differ "
                    "per band; set BOA_ADD_OFFSET explicitly.")


def quantification_for(path: str) -> Optional[float]:
    """QUANTIFICATION_VALUE of the SAFE product holding ``path``, or None."""
    mtd = find_metadata(path)
    if mtd is None:
        return None
    return read_radiometry(mtd)[1]
