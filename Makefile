# Two commands set up everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# pip byte-compiles one file at a time; compileall afterwards uses every core (PYTHONDONTWRITEBYTECODE, if set,
# would otherwise leave every start compiling from source).
PIP    := $(PY) -m pip install -q --disable-pip-version-check --no-compile
COMPILE := $(PY) -m compileall -q -j 0 $$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))') >/dev/null
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
PORT ?= 8501
# Safe by default: the dashboard listens on this machine only. Expose it (behind sign-in: [auth] in
# .streamlit/secrets.toml) with e.g. `make run ADDRESS=0.0.0.0`.
ADDRESS ?= 127.0.0.1
PYTEST_WORKERS ?= 3

.PHONY: run demo demo-reset test sandbox bench docs screenshots chromium clean

# requirements.txt is the exact, tested set; then the project itself, editable (`.venv/bin/keyhealth`, and core,
# sandbox, dashboard importable from anywhere): pyproject.toml's ranges are already met, so --no-deps.
$(RUN_STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements.txt
	$(PIP) -e . --no-deps
	$(COMPILE)
	touch $@

$(DEV_STAMP): $(RUN_STAMP) requirements-dev.txt
	$(PIP) -r requirements-dev.txt
	$(COMPILE)
	touch $@

## the dashboard on the embedded defaults (SQLite in data/, Stripe itself; the sidebar switches to the demo)
run: $(RUN_STAMP)
	$(PY) -m streamlit run app.py --server.address $(ADDRESS) --server.port $(PORT)

## the dashboard against the embedded Stripe sandbox and a seeded demo database
demo: $(RUN_STAMP)
	KEYHEALTH_DEMO=1 $(PY) -m streamlit run app.py --server.address $(ADDRESS) --server.port $(PORT)

## put the demo database back as seeded (today's dates); the real database is never touched
demo-reset: $(RUN_STAMP)
	$(PY) -c "from core import runtime; from core.config import settings; n = runtime.reset_demo(settings()); print(f'demo reset: {n} checks seeded')"

## lint (ruff) first, then every test (unit, sandbox, store on SQLite and PostgreSQL, AppTest, Playwright in
## Chromium) with types (mypy) checked beside them, at the lowest priority (it takes the CPU the tests leave idle):
## mypy's report follows the tests', and either failing fails.
## In parallel (pytest-xdist): PYTEST_WORKERS=0 runs in one process; PYTEST_ARGS adds pytest options.
test: $(DEV_STAMP) chromium
	$(PY) -m ruff check .
	$(PY) -m compileall -q -j 0 core sandbox dashboard app_pages app.py bench >/dev/null
	@out=$$(mktemp); nice -n 19 $(PY) -m mypy >$$out 2>&1 & mypy=$$!; \
	echo "nice -n 19 $(PY) -m mypy (beside the tests; its report follows them)"; \
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS); tests=$$?; \
	wait $$mypy; types=$$?; echo "$(PY) -m mypy:"; cat $$out; rm -f $$out; \
	test $$tests -eq 0 && test $$types -eq 0

## the local Stripe sandbox on 127.0.0.1:12111, printing its demo keys
sandbox: $(RUN_STAMP)
	$(VENV)/bin/keyhealth sandbox

## every benchmark; writes the figures into docs/benchmarks.md
bench: $(DEV_STAMP) chromium
	$(PY) -m bench

## regenerate docs/configuration.md (from core/config.py's settings table) and docs/cli.md's reference (argparse)
docs: $(RUN_STAMP)
	$(PY) scripts/gen_docs.py

## retake docs/screenshots/ (the Playwright test in demo mode)
screenshots: $(DEV_STAMP) chromium
	KEYHEALTH_SCREENSHOTS=docs/screenshots $(PY) -m pytest tests/e2e -q

chromium:
	@scripts/install-chromium.sh

clean:
	rm -rf $(VENV) .pytest_cache bench/out tests/artifacts
