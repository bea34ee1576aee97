# xlt: two commands. `make serve` sets everything up and starts the API; `make test` runs the tests.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: serve test install install-test data model browser bench evaluate docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	touch $@

# torch==2.13.0 is the CPU wheel on this machine's disk (a bare "torch" pulls a CUDA build of several GB).
$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(PIP) install -e '.[test,neural,uriel]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

training_data/observations.csv: | $(VENV)/.installed
	$(BIN)/xlt data build

models/current/manifest.json: | training_data/observations.csv $(VENV)/.installed
	$(BIN)/xlt train

data: training_data/observations.csv
model: models/current/manifest.json

serve: install data model
	$(BIN)/xlt serve --host $(HOST) --port $(PORT)

# Debian chromium for the browser test; installed where we are root, otherwise that test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	  || echo "browser: chromium not installed (need root + apt-get); the browser test will skip"; }

test: install-test data model browser
	$(BIN)/python -m pytest -q -n 2

bench: install-test data model
	$(BIN)/python bench/run_all.py

evaluate: install-test data
	$(BIN)/xlt evaluate --all
	$(BIN)/xlt evaluate --readme

# docs/SERVICE.md's curl examples, answered by the shipped model (after `xlt train`; a test fails while they are stale),
# and reports/interpretation.md, the OLS view of training_data/ (after the data or the features change)
docs: install data model
	$(BIN)/python bench/service_examples.py
	$(BIN)/xlt interpret

clean:
	rm -rf $(VENV) models
