"""S1S2 Toolkit QGIS plugin entry point.

Nothing here imports qgis at module level, so ``s1s2_toolkit.core`` can be
imported headless without QGIS installed.
"""


def classFactory(iface):  # noqa: N802 - QGIS plugin API name
    from .plugin import S1S2Plugin

    return S1S2Plugin(iface)
