# Classgate: `make run` serves a demo on http://127.0.0.1:5000, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
STAMP := $(VENV)/.installed

.PHONY: run serve test e2e lint migrate demo clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

migrate: $(STAMP)
	mkdir -p instance
	$(BIN)/alembic upgrade head

demo: migrate
	$(BIN)/flask --app app demo --if-empty

run: demo
	@echo "Classgate on http://127.0.0.1:$(PORT)  (demo codes: $(BIN)/flask --app app demo --json)"
	PORT=$(PORT) $(BIN)/flask --app app run --host 127.0.0.1 --port $(PORT)

# Production-style: gunicorn with gunicorn.conf.py (workers from the CPU count, tokens masked in the access log).
serve: migrate
	PORT=$(PORT) $(BIN)/gunicorn -c gunicorn.conf.py app:app

# Everything, browser tests included (skipped, with the reason, when /usr/bin/chromium is missing).
test: $(STAMP)
	$(BIN)/python -m pytest -q

# Only the browser tests: the journeys in Debian's Chromium, axe-core on every page; screenshots in test-artifacts/.
e2e: $(STAMP)
	$(BIN)/python -m pytest -q tests/e2e

# Classgate's parent journeys under load beside two minimal apps, and batch timings (about 8 minutes).
# Results in bench/results/; BENCH_ARGS="--backends sqlite --duration 10" and the like change the run.
bench: $(STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# ruff, and bandit with no medium or high finding (justified exceptions are marked inline with nosec).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/bandit -c pyproject.toml -r membership app.py bench migrations -ll -q

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-artifacts
