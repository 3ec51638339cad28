# depotctl — every target creates .venv on first use and installs the project into it.
# Needs only Python 3.11+ and make.

PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint soak demo bench clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "depotctl needs Python 3.11 or newer on PATH (python3, python3.11 …)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,dev,plot,acnsim]'
	@touch $(STAMP)

install: $(STAMP)

test: lint
	$(BIN)/python -m pytest

# The safety invariant under many more random fault sequences than `make test` runs (the
# invariant-soak Hypothesis profile; DEPOTCTL_SOAK_EXAMPLES / DEPOTCTL_SOAK_STEPS change its size),
# and the CSMS away for a real minute in the middle of transactions (local-controller mode).
soak: $(STAMP)
	DEPOTCTL_SOAK=1 $(BIN)/python -m pytest tests/daemon/test_invariant.py -s
	DEPOTCTL_OUTAGE_S=60 $(BIN)/python -m pytest tests/upstream/test_outage.py -k away_mid_transaction

lint: $(STAMP)
	$(BIN)/ruff check $(wildcard controller hil tests bench)
	$(BIN)/mypy

DURATION ?= 180

# the demo is the test rig's (hil/, not installed): run from the source tree
demo: $(STAMP)
	$(BIN)/python -m hil.demo --duration $(DURATION)

bench: $(STAMP)
	$(BIN)/python bench/planner.py
	$(BIN)/python bench/meter.py
	$(BIN)/python bench/ocpp.py
	$(BIN)/python bench/quality.py
	$(BIN)/python bench/met_gap.py
	$(BIN)/python bench/loop.py
	$(BIN)/python bench/acnsim.py
	$(BIN)/python bench/arrivals.py

# requirements.txt: the runtime dependencies ([project.dependencies]) locked, each pinned with its
# hashes, for the depot PC's service install (README, "Running as a service"); uv's name for a locked
# requirements file. One universal resolution for Python 3.11+ on every platform (x86_64 and aarch64
# Linux alike); pins already in the file are kept where the ranges still allow them, and
# `make lock UPGRADE=1` takes the newest. tests/test_lock.py checks it against pyproject.toml.
# `make install` and `make test` install from the ranges in pyproject.toml, not from this file.
.PHONY: lock
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --quiet --no-config --universal --python-version 3.11 \
		--generate-hashes --custom-compile-command 'make lock' $(if $(UPGRADE),--upgrade) -o requirements.txt

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis *.egg-info
