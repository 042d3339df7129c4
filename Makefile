# tracelab: `make demo` and `make test` each work on a fresh machine (own venv, install, migrate).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CHROMIUM ?= /usr/bin/chromium
PYTEST_ARGS ?=

.PHONY: install demo serve test test-fast check-deploy bench chromium clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Browser tests drive Debian's Chromium (Playwright never downloads browsers here).
chromium:
	@command -v chromium >/dev/null 2>&1 || [ -x $(CHROMIUM) ] || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

# The demo judge keeps serving beside the app, so runs started from the UI reach it too.
demo: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py demo
	$(PY) -m routing.demo.judge_server --port 8002 --tokens-per-second 40 & judge=$$!; \
	  trap 'kill $$judge 2>/dev/null' EXIT INT TERM; \
	  echo "serving http://127.0.0.1:8000/ (the demo judge on :8002); Ctrl-C stops"; \
	  $(PY) manage.py runserver --noreload 127.0.0.1:8000

serve: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py runserver 127.0.0.1:8000

test: install chromium
	eval "$$($(PY) scripts/services_env.py)"; \
	  echo "tests on: $${DATABASE_URL:-SQLite (embedded)} / $${REDIS_URL:-eager Celery}"; \
	  $(PY) -m pytest $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -m "not slow and not browser and not live" $(PYTEST_ARGS)

check-deploy: install
	DJANGO_SETTINGS_MODULE=tracelab.settings_production DJANGO_SECRET_KEY=$$(head -c 48 /dev/urandom | base64) \
	  DJANGO_ALLOWED_HOSTS=tracelab.example.org $(PY) manage.py check --deploy --fail-level WARNING

bench: install
	eval "$$($(PY) scripts/services_env.py)"; $(PY) -m bench.run

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache test-output
