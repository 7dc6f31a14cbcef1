#!/usr/bin/env bash
# Builds dist/s1s2_toolkit.zip, installable with QGIS's "Install from ZIP".
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf dist && mkdir -p dist/stage/s1s2_toolkit
git ls-files -z -- metadata.txt __init__.py plugin.py algorithms core icons README.md LICENSE models \
    | xargs -0 -I{} cp --parents {} dist/stage/s1s2_toolkit/
(cd dist/stage && zip -qr ../s1s2_toolkit.zip s1s2_toolkit)
rm -rf dist/stage
echo "dist/s1s2_toolkit.zip"
