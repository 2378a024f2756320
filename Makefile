# `make demo` and `make test` work on a fresh Debian machine with only Python 3.11.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.twin-installed

SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Servers the tests talk to (Debian packages): Mosquitto (+ its clients) and InfluxDB;
# and headless Chromium, in which the tests open `twin report` pages.
SERVERS := /usr/sbin/mosquitto /usr/bin/mosquitto_sub /usr/bin/influxd /usr/bin/chromium

.PHONY: setup servers demo test lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch first, pinned: 2.13.0 is a CPU wheel on this machine's disk; any other torch
# requirement would pull a multi-GB CUDA build.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

$(SERVERS) &:
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
		mosquitto mosquitto-clients influxdb chromium >/dev/null

servers: $(SERVERS)

# The demo day with its rule controller, diagnosed, and the same day without control:
# runs/demo/report.html is the run; runs/demo/compare.html puts it beside `none`.
demo: setup
	$(BIN)/twin run scenarios/microgrid_day.yaml --out runs/demo
	$(BIN)/twin diagnose runs/demo
	$(BIN)/twin run scenarios/microgrid_day.yaml --set controller=none --out runs/demo-none
	$(BIN)/twin report runs/demo
	$(BIN)/twin report runs/demo-none runs/demo --out runs/demo/compare.html

test: setup servers
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

bench: setup
	$(BIN)/python benchmarks/run_year.py

clean:
	rm -rf runs .pytest_cache .ruff_cache
