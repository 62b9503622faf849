# Two set-up commands for a fresh machine: `make demo` and `make test`.
# Each creates .venv when it is missing and installs the project into it.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: demo test stress bench screenshots clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Stamps re-install when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

# pypiqe (PIQE, a peer in bench/validity.py) asks for opencv-python, which would shadow the
# headless OpenCV pixelgrade pins: it is installed without its dependencies (it needs only
# NumPy and OpenCV, both already there).
$(VENV)/.installed-bench: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) -m pip install --quiet --no-deps pypiqe==1.2
	touch $@ $(VENV)/.installed $(VENV)/.installed-test

demo: $(VENV)/.installed
	$(VENV)/bin/pixelgrade demo

test: $(VENV)/.installed-test
	$(PY) -m ruff check src tests bench scripts
	$(PY) -m pytest

# The reliability tests (tests/reliability, the fuzz test) at full size, then their figures
# into docs/reliability.md (scripts/reliability.py; PostgreSQL as for `make test`).
stress: $(VENV)/.installed-test
	$(PY) scripts/reliability.py --full --write docs/reliability.md

# bench/validity.py builds the real-photo corpus from Debian packages (apt-get download into
# .cache/corpus the first time) and scores it with its peers (PIQE, BRISQUE, image-quality-ai).
# bench/backfill.py also runs its peers: sharp (installed by `npm ci` in bench/peers the first
# time, when node and npm are there) and cleanvision (the bench extra).
bench: $(VENV)/.installed-bench
	$(PY) bench/speed.py
	$(PY) bench/validity.py
	$(PY) bench/backfill.py
	$(PY) bench/writes.py
	$(PY) bench/profile_backfill.py
	$(PY) bench/gallery.py
	$(PY) bench/autoscore.py

# docs/screenshots/*.png: the gallery in Debian's headless Chromium (apt-installed if missing).
screenshots: $(VENV)/.installed-test
	$(PY) scripts/screenshots.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info src/*.egg-info pixelgrade-demo
