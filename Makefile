# The two commands a newcomer needs:  `make demo`  and  `make test`.
# Each creates .venv and installs what it needs on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8000

.PHONY: demo test lint chromium bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Start the server with the queue page and a demo job to watch.
demo: $(STAMP)
	$(BIN)/steptrail serve --demo --port $(PORT)

# Chromium from Debian for the browser tests (playwright drives it; no download of its own).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium with apt-get"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# mypy reads the package through a link named steptrail (the editable
# install's import hook is invisible to it): strict on domain/ and projections/.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	mkdir -p $(VENV)/mypy && ln -sfn "$(CURDIR)" $(VENV)/mypy/steptrail
	$(BIN)/mypy -p steptrail

# Run every test: unit, SQLite and PostgreSQL integration, SSE over uvicorn, browser.
test: $(STAMP) chromium lint
	$(BIN)/python -m pytest -q

# Benchmarks print measured figures and ratios to baselines measured in the same run.
bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/ingest.py --store postgresql://postgres@127.0.0.1:5432/test
	$(BIN)/python bench/replay.py
	$(BIN)/python bench/live.py
	$(BIN)/python bench/isolation.py
	$(BIN)/python bench/jobs.py
	$(BIN)/python bench/history_page.py
	$(BIN)/python bench/search.py
	$(BIN)/python bench/fanout.py
	$(BIN)/python bench/fanout.py --store postgresql://postgres@127.0.0.1:5432/test
