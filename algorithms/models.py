"""The shipped graphical models (models/*.model3) as algorithms of the S1S2 provider.

A model file loaded as it is would be named after its title ("s1s2:NDVI fusion chain ...")
and, in QGIS 3.22, could only expose file outputs. ShippedModel gives it a short id
(``s1s2:fusionchain`` for ``models/s1s2_fusion_chain.model3``) and publishes the numbers
its children report (fit RMSE, R^2, ...) as number outputs of the model.
"""
import glob
import os

from qgis.core import (
    QgsProcessingModelAlgorithm,
    QgsProcessingOutputNumber,
)
from qgis.PyQt.QtGui import QIcon

from .base import PLUGIN_DIR, icon_path

MODELS_DIR = os.path.join(PLUGIN_DIR, "models")


def model_id(path):
    """``models/s1s2_fusion_chain.model3`` -> ``fusionchain`` (the part after ``s1s2:``)."""
    stem = os.path.splitext(os.path.basename(path))[0]
    if stem.startswith("s1s2_"):
        stem = stem[len("s1s2_"):]
    return stem.replace("_", "").lower()


class ShippedModel(QgsProcessingModelAlgorithm):
    """One shipped ``.model3``, registered under a short id with its number outputs."""

    def __init__(self, path, group_ids=None):
        super().__init__()
        self.path = path
        self.group_ids = dict(group_ids or {})
        if not self.fromFile(path):
            raise ValueError(f"{path} is not a readable QGIS model")
        self.title = QgsProcessingModelAlgorithm.displayName(self)
        self.setName(model_id(path))
        self.complete()

    def complete(self):
        """The model's outputs from its children. Children resolve only once the provider
        is registered, so the provider calls this again then (models made later, e.g. by
        ``create()`` for a run, are complete at once). Reloading the file keeps the saved
        output names on every QGIS release (3.40 renames regenerated ones)."""
        if any(child.algorithm() is None for child in self.childAlgorithms().values()):
            return
        if not self.outputDefinitions():  # loaded before its children resolved
            self.fromFile(self.path)
            self.setName(model_id(self.path))
        self.add_number_outputs()

    def add_number_outputs(self):
        """Model outputs bound to a child's number output (QGIS 3.22 publishes only file
        outputs of children): declared here so dialogs, qgis_process and parent models
        see them. The model's run already returns them as ``child:name``."""
        declared = {o.name() for o in self.outputDefinitions()}
        for child_id, child in self.childAlgorithms().items():
            algorithm = child.algorithm()
            for name, output in child.modelOutputs().items():
                definition = algorithm.outputDefinition(output.childOutputName())
                full_name = f"{child_id}:{name}"
                if full_name in declared or definition is None:
                    continue
                if definition.type() == QgsProcessingOutputNumber.typeName():
                    self.addOutput(QgsProcessingOutputNumber(full_name, output.description()))

    def displayName(self):  # noqa: N802 - QGIS API
        return self.title

    def groupId(self):  # noqa: N802 - QGIS API
        """The id of the provider's group of that name (models use the name as id), so
        the model sits in the same toolbox folder as the algorithms of its group."""
        group = self.group()
        return self.group_ids.get(group, group)

    def icon(self):
        return QIcon(icon_path("fusion"))

    def createInstance(self):  # noqa: N802
        return ShippedModel(self.path, self.group_ids)


def shipped_models(group_ids=None):
    """ShippedModel instances of every readable models/*.model3 (sorted by file name);
    ``group_ids``: {group name: group id} of the provider's algorithms."""
    models = []
    for path in sorted(glob.glob(os.path.join(MODELS_DIR, "*.model3"))):
        try:
            models.append(ShippedModel(path, group_ids))
        except ValueError:
            continue
    return models
