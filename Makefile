VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PYTHON ?= python3

.PHONY: run test lint format bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[test]'
	touch $@

# The app on the embedded demo database data/demo.duckdb (created or topped up first), or
# on DATABASE_URL when set: that database is served as it is, never written to.
run: $(VENV)/.installed
	ANALYTICS_DEMO_DB="$(CURDIR)/data/demo.duckdb" $(VENV)/bin/analytics serve --port 8501 $(SERVE_ARGS)

# The same, with a local Prometheus (Debian's prometheus on 127.0.0.1:9090) holding the
# demo's traffic and resource gauges: the Performance page reads it. Optional.
.PHONY: run-prometheus
run-prometheus: $(VENV)/.installed
	sh scripts/run-prometheus.sh

test: $(VENV)/.installed
	sh scripts/install-test-packages.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest -n 2 --dist loadfile $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) data/demo.duckdb data/demo.duckdb.wal

# Speed and memory, measured (never asserted in tests): writes bench/RESULTS.md.
bench: $(VENV)/.installed
	$(PY) bench/run.py $(BENCH_ARGS)

# Anomaly detector quality on the labelled cloud-monitoring series (never asserted in
# tests): writes bench/INSIGHTS.md. Data: ../shared/data/cloud-monitoring or $CLOUD_MONITORING_DIR.
.PHONY: eval-insights
eval-insights: $(VENV)/.installed
	$(PY) bench/eval_insights.py $(EVAL_ARGS)

# Page build time and peak memory at 10M requests / 2M detections over 400 days on PostgreSQL
# (never asserted in tests; seeding takes minutes, the databases are kept for the next run):
# writes bench/SCALE.md. BENCH_ARGS="--quick" to try it out; see bench/scale.py --help.
.PHONY: bench-scale
bench-scale: $(VENV)/.installed
	$(PY) bench/scale.py $(BENCH_ARGS)
