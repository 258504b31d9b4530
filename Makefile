# AIBR Notebooks. `make help` lists the targets.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help setup test

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e .
	$(PY) -m ipykernel install --prefix $(VENV) --name aiblib --display-name "aiblib (.venv)" >/dev/null
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install the project with its pinned dependencies

test: $(STAMP) ## run the test suite (installs first if needed)
	$(PY) -m pytest
