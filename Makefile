# Two commands a new user needs: `make run` and `make test`. Each builds .venv on first use.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test fuzz-long fuzz benchmark screenshots clean package package-test

# Reinstall when a requirements file changes, not on every call.
$(STAMP): requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is needed: install it, or run 'make PYTHON=/path/to/python3.11 ...'"; exit 2; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP)
	$(PY) main.py

# The optional Ray extra (run --ray): the app never needs it, but the suite tests it (tests/test_ray.py).
RAY_STAMP := $(VENV)/.ray-installed

$(RAY_STAMP): $(STAMP) requirements-ray.txt
	$(PY) -m pip install --quiet -r requirements-ray.txt
	touch $(RAY_STAMP)

# Two test processes, each taking whole files (a file's module fixtures are built once): the suite is mostly
# one-core work, so this halves it on 2 cores.
test: $(STAMP) $(RAY_STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -n 2 --dist loadfile

# 3,000 damaged run files in each file format through `report` and the app's loaders (minutes; `make test` runs 300),
# and every damaged file that reads shown in every view of the app (`make test` shows every third).
fuzz: $(STAMP)
	$(PY) tests/damaged_corpus.py --count 3000
	$(PY) tests/damaged_corpus.py --count 3000 --legacy --seed 2
	DAMAGED_FILES_IN_VIEWS=all QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q --timeout 0 \
		tests/gui/test_damaged_runs.py -k every_readable_damaged_file

# 14,200 generated configs through the validator and `run` instead of the 355 of `make test` (minutes).
fuzz-long: $(STAMP)
	FUZZ_EXAMPLES=10000 $(PY) -m pytest -q -p no:randomly --timeout 0 tests/test_config_fuzz.py

# Speed figures for the README's performance section (minutes; run on a quiet machine).
benchmark: $(STAMP)
	$(PY) benchmarks/engine_overhead.py
	QT_QPA_PLATFORM=offscreen $(PY) benchmarks/plot_redraw.py
	QT_QPA_PLATFORM=offscreen $(PY) benchmarks/gui_latency.py
	$(PY) benchmarks/search_quality.py
	$(PY) benchmarks/scaling.py
	$(PY) benchmarks/threads.py

# The README's pictures: a real sweep in the real window, offscreen.
screenshots: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) scripts/screenshots.py

clean:
	rm -rf $(VENV) build dist .pytest_cache

# ----- Packaging (docs/packaging.md). Slow (minutes), so never part of `make test`: run before a release. -----
PACKAGE_STAMP := $(VENV)/.package-installed
SYSTEM_PYTHON ?= python3

$(PACKAGE_STAMP): $(STAMP) requirements-package.txt
	$(PY) -m pip install --quiet -r requirements-package.txt
	touch $(PACKAGE_STAMP)

# dist/BatchSizeLab/ (executable dist/BatchSizeLab/BatchSizeLab) and dist/BatchSizeLab-<version>-<os>-<arch>.tar.xz
package: $(PACKAGE_STAMP)
	$(PY) -m PyInstaller --noconfirm --clean pyinstaller.spec
	sh packaging/make_archive.sh dist/BatchSizeLab

# Builds, then runs the bundle from a clean environment (env -i, empty HOME, no .venv) with the system's python3.
package-test: package
	$(SYSTEM_PYTHON) packaging/test_package.py dist/BatchSizeLab/BatchSizeLab
