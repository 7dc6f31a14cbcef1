"""Enum names that moved between QGIS releases, spelled once for 3.22 through 4.x.

Scoped spellings such as ``QgsProcessingParameterNumber.Type.Double`` work on every release
from 3.22 and are used directly. Only names that QGIS moved to the ``Qgis`` namespace without
keeping the old spelling live here.
"""
from qgis.core import Qgis, QgsProcessingModelChildParameterSource

# QGIS 3.34 moved QgsProcessingModelChildParameterSource.Source to
# Qgis.ProcessingModelChildParameterSource (ChildOutput, ModelParameter, StaticValue, ...).
ModelChildParameterSource = getattr(
    Qgis, "ProcessingModelChildParameterSource", None) or QgsProcessingModelChildParameterSource.Source
