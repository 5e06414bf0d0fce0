# mmfast front door.  `make demo` sets everything up and runs the lecture's walk-through;
# `make test` runs the whole suite; `make bench` times mmfast against lme4 (when R is present).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
APT_PACKAGES := libsuitesparse-dev libopenblas0-pthread
R_PACKAGES   := r-base-core r-cran-lme4 r-cran-lmertest r-cran-pbkrtest r-cran-nlme r-cran-jsonlite
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SOURCES := setup.py pyproject.toml $(wildcard src/mmfast/_ext/*.pyx src/mmfast/_ext/*.pxd)

.PHONY: demo test bench setup system-deps r-deps clean

demo: setup
	$(PY) -m mmfast demo

test: setup
	$(PY) -m pytest tests

bench: setup r-deps
	$(PY) benchmarks/run.py

setup: $(VENV)/.installed

# System libraries: CHOLMOD headers and an optimised BLAS (CHOLMOD otherwise gets the reference BLAS).
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $$missing; fi

# R and lme4 for the benchmarks' same-run comparison (optional: benchmarks run without them).
r-deps:
	@missing=""; for p in $(R_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  ($(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $$missing) \
	  || echo "R could not be installed: benchmarks will time mmfast alone"; fi

$(VENV)/.installed: $(SOURCES) | system-deps
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "setuptools>=77" wheel "Cython>=3.0" "numpy>=1.26" "scipy>=1.11"
	$(PY) -m pip install -q --no-build-isolation -e ".[test]"
	touch $@

clean:
	rm -rf build $(VENV) src/*.egg-info src/mmfast/_ext/*.c src/mmfast/_ext/*.so
