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

# The app on the embedded demo database (created or topped up first), or on
# DATABASE_URL when set: that database is served as it is, never written to.
run: $(VENV)/.installed
	@if [ -z "$$DATABASE_URL" ]; then $(VENV)/bin/analytics demo; fi
	$(VENV)/bin/streamlit run analytics_app/Home.py --server.port 8501 --server.headless true \
	  --theme.base "$$($(PY) -c 'from analytics_core.config import load_config; print(load_config().theme)' 2>/dev/null || echo light)"

test: $(VENV)/.installed
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
