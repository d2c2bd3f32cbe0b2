# Two commands for a fresh machine: `make demo` (the whole pipeline, end to end) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test up down status fetch lint bench-stream bench-pit clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is needed (tomllib; apache-flink 2.0 stops at 3.11): set PYTHON=python3.11")'
	@echo "[setup] creating $(VENV) and installing dependencies (first run: a few minutes) ..."
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip > $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	@$(PY) -m pip install --progress-bar off -c constraints.txt -e '.[dev]' >> $(VENV)/install.log 2>&1 \
		|| { tail -40 $(VENV)/install.log; echo "[setup] pip install failed; full log: $(VENV)/install.log" >&2; \
		     df -h . >&2; exit 1; }
	@touch $(STAMP)
	@echo "[setup] done"

fetch: $(STAMP)
	@$(PY) -m infra fetch

demo: fetch
	@$(PY) -m jobs.demo

test: fetch
	@$(PY) -m infra promtool > /dev/null
	@$(PY) -m pytest tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure" >&2; exit 1; fi; exit $$rc

up: fetch
	@$(PY) -m infra up && $(PY) -m registry.cli apply

down:  # nothing to stop without the environment; a failed stop is a failure (exit 2)
	@if test -x $(PY); then $(PY) -m infra down; fi

status: $(STAMP)
	@$(PY) -m infra status

bench-pit: $(STAMP)
	@$(PY) bench/pit_join.py --scale 1 10

.PHONY: bench-serving
bench-serving: $(STAMP)  # load benchmark of the feature API on the running local stack (make up)
	@$(PY) -m bench.serving_load

bench-stream: $(STAMP)  # events/s and window-close-to-online latency of the stream job on the running local stack (make up)
	@$(PY) -m bench.stream

lint: $(STAMP)
	@$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy .

clean: down
	rm -rf .state
