# The two commands of the README: `make run` (mini benchmark) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONFIG ?= configs/benchmark/mini.yaml
RESULTS ?= $(shell $(PY) -c "import yaml,sys; print(yaml.safe_load(open('$(CONFIG)'))['results'])" 2>/dev/null)

.PHONY: run test config report lint dry-run clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# resumes by itself after a killed run (a dead run's lock is removed, incomplete jobs rerun: pipeline/resume.py)
run: $(STAMP)
	$(PY) -m pipeline run --cores all --configfile $(CONFIG)
	$(VENV)/bin/snakemake --cores all --configfile $(CONFIG) --report $(RESULTS)/report.html

test: $(STAMP)
	$(PY) -m pytest -q

# the resolved configuration of one stage for one benchmark (its preset over the paper's defaults):
#   make config STAGE=selection BENCHMARK=paper
STAGE ?= finetune
BENCHMARK ?= mini
config: $(STAMP)
	@$(PY) -m pipeline config $(STAGE) $(BENCHMARK)

dry-run: $(STAMP)
	$(VENV)/bin/snakemake -n --configfile $(CONFIG)

lint: $(STAMP)
	$(VENV)/bin/snakemake --lint --configfile $(CONFIG)

clean:
	rm -rf results/mini

# the paper benchmark's DAG on small fakes of its 19 datasets in their real layouts, served by a local
# HTTP server (data_prep/rehearsal.py, configs/benchmark/rehearsal.yaml, configs/preset/rehearsal/)
.PHONY: rehearsal
rehearsal: $(STAMP)
	$(PY) -m data_prep.rehearsal --cores all --report

# rank a zoo of experts for a folder of class sub-folders, training nothing (selection/rank.py):
#   make rank IMAGES=path/to/folder ZOO=configs/zoo/logme_imagenet.yaml [RANK_ARGS="bootstrap=200 top_k=5"]
# then fine-tune only the top k on a held-out split of the folder (rules/rank.smk, a Snakemake checkpoint):
#   make rank IMAGES=... ZOO=... FINETUNE_TOP=3 [FINETUNE_ARGS="holdout=0.2 preset=paper"]
.PHONY: rank
rank: $(STAMP)
	@test -n "$(IMAGES)" -a -n "$(ZOO)" || { echo "make rank: give IMAGES=<folder of class folders> and ZOO=<zoo file>"; exit 2; }
ifeq ($(FINETUNE_TOP),)
	$(PY) -m selection.rank 'images=$(IMAGES)' 'zoo_file=$(ZOO)' $(RANK_ARGS)
else
	$(VENV)/bin/snakemake -s rules/rank.smk --cores all --config 'images=$(IMAGES)' 'zoo=$(ZOO)' 'top=$(FINETUNE_TOP)' $(FINETUNE_ARGS)
endif
