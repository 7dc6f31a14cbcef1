#!/usr/bin/env bash
# Installs what is missing for `make test` / `make demo` on Debian 12 / Ubuntu:
# QGIS (Debian packages), numpy/scipy/GDAL/pyproj for Debian's python3, and a venv
# (.venv, from /usr/bin/python3 --system-site-packages) with the test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

packages=()
/usr/bin/python3 -c "import qgis.core" 2>/dev/null || packages+=(qgis python3-qgis qgis-providers)
/usr/bin/python3 -c "import scipy, pyproj" 2>/dev/null || packages+=(python3-scipy python3-pyproj)
/usr/bin/python3 -c "import osgeo.gdal_array" 2>/dev/null || packages+=(python3-gdal)
# Tests write MET Norway-style NetCDF/CF products with netCDF4.
/usr/bin/python3 -c "import netCDF4" 2>/dev/null || packages+=(python3-netcdf4)
/usr/bin/python3 -c "import ensurepip" 2>/dev/null || packages+=(python3-venv)
command -v gdal_translate >/dev/null || packages+=(gdal-bin)
# pyproj in the venv finds PROJ's data through the proj executable (GDAL only recommends it).
command -v proj >/dev/null || packages+=(proj-bin)
command -v zip >/dev/null || packages+=(zip)
if [ ${#packages[@]} -gt 0 ]; then
    echo "Installing Debian packages: ${packages[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${packages[@]}"
fi

if [ ! -x .venv/bin/python ]; then
    /usr/bin/python3 -m venv --system-site-packages .venv
fi
mkdir -p .build
# Keep Debian's numpy: QGIS's and GDAL's bindings are compiled against it.
/usr/bin/python3 -c "import numpy; print('numpy==' + numpy.__version__)" > .build/constraints.txt
.venv/bin/python -m pip install -q --disable-pip-version-check \
    -c .build/constraints.txt -r requirements-dev.txt
touch .venv/.ready
