# Every target runs from a fresh clone: `make test` installs what the tests need first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8080

.PHONY: install system autobahn demo test lint types clean bench

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

install: $(PY)
	$(PY) -m pip install --quiet -e '.[test,dev]'
	npm install --silent --no-audit --no-fund

# Chromium, redis-server and nginx for the browser, backplane and nginx tests (as root).
system:
	scripts/install-system-packages

demo: install
	$(PY) -m sockjs_gateway serve --port $(PORT)

# Autobahn|Testsuite (Python 2.7) into .autobahn/, for the WebSocket conformance test.
autobahn:
	scripts/install-autobahn

test: install system autobahn
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check sockjs_gateway tests bench
	$(VENV)/bin/ruff format --check sockjs_gateway tests bench

types: install
	$(VENV)/bin/mypy

# Side by side with the peers (installed into bench/.peers/); prints and writes
# bench/results/latest.md. QUICK=1: a 2-3 minute smoke run. PROFILE=1: py-spy the gateway.
# BENCH_ARGS: more options (python -m bench --help), e.g. BENCH_ARGS="--gateway-ref HEAD".
# Then cross-node broadcast over Redis, one node vs two (bench/backplane.py, ~2.5 minutes),
# and --workers 2 against 1 worker, WebSocket and xhr-polling echo (bench/workers.py, ~2 min),
# and channel history: publish cost with and without it, replay of 10,000 messages.
bench: install
	$(PY) -m bench $(if $(QUICK),--quick) $(if $(PROFILE),--profile) $(BENCH_ARGS)
	$(PY) -m bench.backplane $(if $(QUICK),--quick)
	$(PY) -m bench.workers $(if $(QUICK),--quick)
	$(PY) -m bench.relay $(if $(QUICK),--quick)
	$(PY) -m bench.history $(if $(QUICK),--quick)

clean:
	rm -rf $(VENV) .venv-aiohttp-low .autobahn node_modules build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis artifacts
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
