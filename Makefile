# S1S2 Toolkit: `make demo` and `make test` set up what is missing, then run.
SHELL := /bin/bash
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
VENV := $(ROOT)/.venv
PYTHON := $(VENV)/bin/python
export QT_QPA_PLATFORM := offscreen

.PHONY: setup test test-matrix demo screenshots package clean benchmark

setup: $(VENV)/.ready

$(VENV)/.ready: scripts/setup.sh requirements-dev.txt
	bash scripts/setup.sh

test: setup
	$(PYTHON) -m pytest

# The same suite on QGIS 3.22 (host), 3.40 and 3.44 (Debian 13 and sid debootstrap roots, root only).
test-matrix:
	bash scripts/test_matrix.sh

demo: setup
	$(PYTHON) scripts/demo.py --output demo-output

# The README pictures (docs/img/), drawn by QGIS from the demo's results.
screenshots: demo
	$(PYTHON) scripts/screenshots.py --demo demo-output --output docs/img

package:
	bash scripts/package.sh

benchmark: setup
	@for script in benchmarks/bench_*.py; do echo "== $$script"; $(PYTHON) $$script || exit 1; done

clean:
	rm -rf .build demo-output dist
