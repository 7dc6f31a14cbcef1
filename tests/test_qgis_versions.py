"""Code stays loadable on QGIS 3.22 through 4.x (Qt6): a scan of the plugin, scripts, tests and
benchmarks for enum spellings that only some releases accept (QGIS and Qt enums), exec_(),
PyQt5 imports and numpy 1-only np.array(copy=False), plus the metadata that lets the plugin installer offer the plugin on QGIS 4.
No QGIS needed."""
import ast
import configparser
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCANNED = ["__init__.py", "plugin.py", "algorithms", "scripts", "tests", "benchmarks"]

# Nested enum types reached through their class (QgsProcessingParameterNumber.Type.Double).
ENUM_TYPES = {"Type", "Flag", "Flags", "SourceType", "Behavior", "Source", "ModelChildParameterSource"}
# Members that QGIS code often reaches through an instance (source.ChildOutput,
# definition.FlagOptional) or the class (QgsProcessing.TypeRaster): unscoped on Qt6.
UNSCOPED_MEMBER = re.compile(r"^(Flag[A-Z]\w*|Type[A-Z]\w*|ChildOutput|ModelParameter|StaticValue|"
                             r"ModelOutput|ExpressionText)$")
FORBIDDEN_CALLS = {"exec_"}
# Classes whose enum values must be reached through their enum type on Qt6 (Qt.AlignCenter ->
# Qt.AlignmentFlag.AlignCenter, QImage.Format_ARGB32 -> QImage.Format.Format_ARGB32).
QT_OR_QGIS_CLASS = re.compile(r"^(Qgs\w*|Qgis|Qt|Q[A-Z]\w*)$")


def unscoped_enums(source, filename="<snippet>"):
    """[(line, spelling)] of enum values spelled without their enum type, and of exec_() and
    PyQt5 imports, in Python source (comments and strings are not code: ignored)."""
    tree = ast.parse(source, filename)
    inner = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            owner = node.value
            owner_name = owner.id if isinstance(owner, ast.Name) else \
                owner.attr if isinstance(owner, ast.Attribute) else ""
            spelling = f"{owner_name}.{node.attr}"
            direct_leaf = (isinstance(owner, ast.Name) and QT_OR_QGIS_CLASS.match(owner.id)
                           and node.attr[:1].isupper() and not node.attr.isupper()
                           and node.attr not in ENUM_TYPES and id(node) not in inner)
            in_qgis_enum = isinstance(owner, ast.Attribute) and \
                isinstance(owner.value, ast.Name) and owner.value.id == "Qgis"
            scoped = owner_name in ENUM_TYPES or in_qgis_enum
            if direct_leaf or (UNSCOPED_MEMBER.match(node.attr) and not scoped):
                found.append((node.lineno, spelling))
            elif node.attr in FORBIDDEN_CALLS:
                found.append((node.lineno, spelling))
        elif isinstance(node, ast.Call) and numpy_array_copy_false(node):
            found.append((node.lineno, "np.array(copy=False)"))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [alias.name for alias in node.names]
            found += [(node.lineno, name) for name in names if name.split(".")[0] == "PyQt5"]
    return sorted(found)


def numpy_array_copy_false(call):
    """np.array(..., copy=False) or copy=<a variable>: False means 'never copy' on numpy 2, an
    error where a copy is needed (use np.asarray)."""
    func = call.func
    return (isinstance(func, ast.Attribute) and func.attr == "array"
            and isinstance(func.value, ast.Name) and func.value.id in ("np", "numpy")
            and any(k.arg == "copy" and not (isinstance(k.value, ast.Constant)
                                             and k.value.value is True)
                    for k in call.keywords))


def python_files():
    for entry in SCANNED:
        path = os.path.join(ROOT, entry)
        if os.path.isfile(path):
            yield path
        for folder, subfolders, files in os.walk(path):
            subfolders[:] = [s for s in subfolders if s not in ("data", "__pycache__")]
            yield from (os.path.join(folder, f) for f in sorted(files) if f.endswith(".py"))


@pytest.mark.parametrize("snippet, expected", [
    ("QgsProcessingParameterNumber('X', 'x', QgsProcessingParameterNumber.Double)",
     [(1, "QgsProcessingParameterNumber.Double")]),
    ("p = QgsProcessingParameterFile('F', 'f', behavior=QgsProcessingParameterFile.File)",
     [(1, "QgsProcessingParameterFile.File")]),
    ("x = [QgsProcessing.TypeRaster]", [(1, "QgsProcessing.TypeRaster")]),
    ("ok = d.flags() & d.FlagOptional", [(1, "d.FlagOptional")]),
    ("if s.source() == s.ChildOutput:\n    pass", [(1, "s.ChildOutput")]),
    ("feedback.pushMessage('x', Qgis.Critical)", [(1, "Qgis.Critical")]),
    ("dialog.exec_()", [(1, "dialog.exec_")]),
    ("label.setAlignment(Qt.AlignCenter)", [(1, "Qt.AlignCenter")]),
    ("image = QImage(4, 4, QImage.Format_ARGB32)", [(1, "QImage.Format_ARGB32")]),
    ("label.setAlignment(Qt.AlignmentFlag.AlignCenter)", []),
    ("image = QImage(4, 4, QImage.Format.Format_ARGB32)", []),
    ("text = QCoreApplication.translate('S1S2', 'x')", []),
    ("from PyQt5.QtCore import QVariant", [(1, "PyQt5.QtCore")]),
    ("import PyQt5", [(1, "PyQt5")]),
    ("b = np.array(a, dtype=np.float32, copy=False)", [(1, "np.array(copy=False)")]),
    ("b = np.array(a, dtype=np.float32, copy=copy)", [(1, "np.array(copy=False)")]),
    ("b = np.array(a, dtype=np.float32, copy=True)", []),
    ("b = np.asarray(a, dtype=np.float32)", []),
    ("b = a.astype(np.float32, copy=False)", []),
    # the spellings that work from 3.22 to 4.x pass
    ("t = QgsProcessingParameterNumber.Type.Double", []),
    ("t = QgsProcessing.SourceType.TypeRaster", []),
    ("f = QgsProcessingParameterDefinition.Flag.FlagOptional", []),
    ("b = QgsProcessingParameterFile.Behavior.File", []),
    ("s = Qgis.ProcessingModelChildParameterSource.ChildOutput", []),
    ("s = ModelChildParameterSource.ChildOutput", []),
    ("r = QgsApplication.processingRegistry()", []),
    ("# QgsProcessing.TypeRaster in a comment\nx = 'QgsProcessingParameterNumber.Double'", []),
    ("from qgis.PyQt.QtCore import QVariant", []),
])
def test_the_scan_finds_unscoped_spellings(snippet, expected):
    assert unscoped_enums(snippet) == expected


def test_plugin_scripts_and_tests_use_spellings_valid_from_qgis_3_22_to_4():
    files = list(python_files())
    assert any(f.endswith(os.path.join("algorithms", "provider.py")) for f in files)
    problems = []
    for path in files:
        with open(path, encoding="utf-8") as handle:
            source = handle.read()
        problems += [f"{os.path.relpath(path, ROOT)}:{line}: {spelling}"
                     for line, spelling in unscoped_enums(source, path)]
    assert not problems, (
        "Spell enums with their type (QgsProcessingParameterNumber.Type.Double, "
        "QgsProcessing.SourceType.TypeRaster, QgsProcessingParameterDefinition.Flag.FlagOptional); "
        "names that moved to Qgis belong in algorithms/compat.py:\n" + "\n".join(problems))


def test_metadata_offers_the_plugin_on_qgis_4_qt6():
    metadata = configparser.ConfigParser(interpolation=None)
    metadata.read(os.path.join(ROOT, "metadata.txt"), encoding="utf-8")
    general = metadata["general"]
    assert general["qgisMinimumVersion"] == "3.22"
    assert general["qgisMaximumVersion"].startswith("4.")
    assert general["supportsQt6"] == "True"
