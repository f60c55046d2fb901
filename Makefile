# The commands README.md shows. Everything installs itself into .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: install test test-oracle demo demo-distributed bench docs lint clean

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)

# The distributed extra (mpi4py + the mpich wheel) too, so that the MPI tests run; where no
# MPI wheel exists for the platform they are skipped, and say so.
$(VENV)/.installed-test: $(VENV)/bin/activate setup.py pyproject.toml
	@echo "$(PIP) install -e '.[test,distributed]'"
	@$(PIP) install -e '.[test,distributed]' || { \
	  echo "make: mpi4py/mpich could not be installed: the distributed tests will be skipped"; \
	  $(PIP) install -e '.[test]'; }
	touch $@

$(VENV)/.installed-apps: $(VENV)/.installed-test
	$(PIP) install -e '.[test,apps]'
	touch $@

$(VENV)/.installed-oracle: $(VENV)/.installed-test
	$(PIP) install 'torch==2.13.0'
	touch $@

$(VENV)/.installed-docs: $(VENV)/.installed-test
	$(PIP) install -e '.[docs]'
	touch $@

$(VENV)/.installed-bench: $(VENV)/.installed-apps
	$(PIP) install -e '.[bench]'
	touch $@

install: $(VENV)/.installed-test

test: $(VENV)/.installed-test
	$(PY) -m pytest -m "not oracle" -rs

# The PyTorch-oracle suite (differential fuzzing); torch==2.13.0 goes into .venv.
test-oracle: $(VENV)/.installed-oracle
	$(PY) -m pytest -m oracle tests

demo: $(VENV)/.installed-apps
	$(PY) -m apps.train_mnist

# The demo on 2 processes (MPI ranks) with the mpiexec installed in .venv.
demo-distributed: $(VENV)/.installed-apps
	$(VENV)/bin/mpiexec -n 2 $(PY) -m apps.train_mnist --distributed

# Results go to bench/out/ (untracked); `make bench BENCH_ARGS=--save` also rewrites the
# committed bench/RESULTS.md and docs/bench.png, `BENCH_ARGS=--quick` is a smoke run.
BENCH_ARGS ?=
bench: $(VENV)/.installed-bench
	$(PY) -m bench.run $(BENCH_ARGS)

# HTML API reference (pdoc) and the guide into docs/_build/; fails on a missing docstring.
docs: $(VENV)/.installed-docs
	$(PY) docs/build.py

lint:
	$(PIP) install ruff
	$(PY) -m ruff check python tests apps bench

clean:
	rm -rf $(VENV) build *.egg-info python/*.egg-info docs/_build
