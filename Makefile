# AIBR Notebooks. `make help` lists the targets.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PAPERMILL := $(PY) -m papermill --kernel aiblib --log-level WARNING
RESULTS ?= results

# β sweep / single runs (see `make sweep`, `make run`)
PROTOCOL ?= dg
BETAS ?= 0 1e-4 1e-3 1e-2
SEEDS ?= 0 1 2
SWEEP_RESULTS ?= $(RESULTS)/sweep-$(PROTOCOL)
# paper runs (see `make paper`)
RUN ?= dg-r50
GPUS ?= 1

.DEFAULT_GOAL := help
.PHONY: help setup test test-fast reproduce data run sweep report paper lab clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e .
	$(PY) -m ipykernel install --prefix $(VENV) --name aiblib --display-name "aiblib (.venv)" >/dev/null
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install the project with its pinned dependencies

test: $(STAMP) ## run the test suite (installs first if needed; includes a papermill smoke run of every notebook)
	$(PY) -m pytest

test-fast: $(STAMP) ## the quick tests only (no test marked slow: no training runs, no notebooks, no torchrun)
	$(PY) -m pytest -m "not slow"

data: $(STAMP) ## 00: generate + prepare the synthetic domains (or check a real root: make data PARAMS=params/paper/dg-r50.yaml)
	mkdir -p $(RESULTS)
	$(PAPERMILL) notebooks/00-prepare-data.ipynb $(RESULTS)/00-prepare-data.ipynb -f $(or $(PARAMS),params/synthetic-dg.yaml)

# One experiment: 01-train then 02-evaluate-cross-domain, executed copies in results/NAME/.
# make run PROTOCOL=dg NAME=dg-aib [EXTRA="-p beta 1e-4 -p seed 1"]
run: $(STAMP) ## 01+02 for one run: make run PROTOCOL=dg NAME=dg-aib EXTRA="-p beta 1e-4"
	@test -n "$(NAME)" || (echo "make run needs NAME=..." >&2; exit 2)
	mkdir -p $(RESULTS)/$(NAME)
	$(PAPERMILL) notebooks/01-train.ipynb $(RESULTS)/$(NAME)/01-train.ipynb -f params/synthetic-$(PROTOCOL).yaml -p name $(NAME) -p results_root $(RESULTS) $(EXTRA)
	$(PAPERMILL) notebooks/02-evaluate-cross-domain.ipynb $(RESULTS)/$(NAME)/02-evaluate-cross-domain.ipynb -f params/synthetic-$(PROTOCOL).yaml -p name $(NAME) -p results_root $(RESULTS) $(EXTRA)

attention: $(STAMP) ## 03 for one protocol: baseline vs AIB attention and uncertainty maps
	mkdir -p $(RESULTS)/$(PROTOCOL)-aib-attention
	$(PAPERMILL) notebooks/03-visualize-attention.ipynb $(RESULTS)/$(PROTOCOL)-aib-attention/03-visualize-attention.ipynb -f params/synthetic-$(PROTOCOL).yaml -p baseline_name $(PROTOCOL)-baseline -p aib_name $(PROTOCOL)-aib -p interactive False -p results_root $(RESULTS)

report: $(STAMP) ## 04: gather every run under results/ into summary.csv, README.md and plots
	$(PAPERMILL) notebooks/04-report.ipynb $(RESULTS)/04-report.ipynb -p results_root $(RESULTS)

reproduce: $(STAMP) ## the embedded default, end to end: 00 -> 01 -> 02 -> 03 -> 04 for DG and Night, baseline and AIB
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory data && \
	for p in dg night; do \
	  $(MAKE) --no-print-directory run PROTOCOL=$$p NAME=$$p-baseline EXTRA="-p attention False" && \
	  $(MAKE) --no-print-directory run PROTOCOL=$$p NAME=$$p-aib EXTRA="-p attention True" && \
	  $(MAKE) --no-print-directory attention PROTOCOL=$$p || exit 1; \
	done && \
	$(MAKE) --no-print-directory report && \
	echo "make reproduce: $$(( $$(date +%s) - start )) s"

sweep: $(STAMP) ## β × seed sweep into results/sweep-PROTOCOL/: make sweep BETAS="0 1e-4 1e-3 1e-2" SEEDS="0 1 2" PROTOCOL=dg
	$(MAKE) --no-print-directory data
	for s in $(SEEDS); do \
	  $(MAKE) --no-print-directory run RESULTS=$(SWEEP_RESULTS) PROTOCOL=$(PROTOCOL) NAME=$(PROTOCOL)-baseline-s$$s EXTRA="-p attention False -p seed $$s" || exit 1; \
	  for b in $(BETAS); do \
	    $(MAKE) --no-print-directory run RESULTS=$(SWEEP_RESULTS) PROTOCOL=$(PROTOCOL) NAME=$(PROTOCOL)-aib-b$$b-s$$s EXTRA="-p attention True -p beta $$b -p seed $$s" || exit 1; \
	  done; \
	done
	$(MAKE) --no-print-directory report RESULTS=$(SWEEP_RESULTS)

paper: $(STAMP) ## a paper run on real data: make paper RUN=dg-r50 GPUS=4 (params/paper/RUN.yaml)
	@test -f params/paper/$(RUN).yaml || (echo "no params/paper/$(RUN).yaml; choose from: $$(ls params/paper | sed 's/.yaml//' | tr '\n' ' ')" >&2; exit 2)
	mkdir -p $(RESULTS)/paper-$(RUN)
	$(PAPERMILL) notebooks/01-train.ipynb $(RESULTS)/paper-$(RUN)/01-train.ipynb -f params/paper/$(RUN).yaml -p name paper-$(RUN) -p gpus $(GPUS) -p results_root $(RESULTS)
	$(PAPERMILL) notebooks/02-evaluate-cross-domain.ipynb $(RESULTS)/paper-$(RUN)/02-evaluate-cross-domain.ipynb -f params/paper/$(RUN).yaml -p name paper-$(RUN) -p results_root $(RESULTS)

lab: $(STAMP) ## JupyterLab with the project's kernel (installs jupyterlab into .venv)
	$(PY) -m pip install --quiet jupyterlab
	$(VENV)/bin/jupyter lab notebooks/

clean: ## remove runs/, the synthetic data and caches (keeps results/ and .venv)
	rm -rf runs data/synthetic .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
