# nuclei-pa — two commands on a fresh machine:
#   make demo   set up .venv and run the main job on the embedded default
#   make test   set up .venv and run the test suite (what CI runs)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   := results/demo

.PHONY: setup demo test test-all lint bench clean-demo

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "nuclei-pa needs Python >= 3.11"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

# Until the Snakemake workflow lands, the demo runs the pieces that exist end to end:
# synthesise -> derive DH25 / DH25crop -> classical reference -> evaluate.
demo: $(STAMP)
	$(BIN)/nuclei-pa synth -o $(DEMO)/data/dh100 --seed 0
	$(BIN)/nuclei-pa derive remove $(DEMO)/data/dh100/train -o $(DEMO)/data/dh25/train --fraction 0.25
	$(BIN)/nuclei-pa derive crop $(DEMO)/data/dh100/train -o $(DEMO)/data/dh25crop/train --fraction 0.25
	$(BIN)/nuclei-pa classical $(DEMO)/data/dh100/test -o $(DEMO)/predictions/classical
	$(BIN)/nuclei-pa evaluate $(DEMO)/data/dh100/test $(DEMO)/predictions/classical -o $(DEMO)/eval/classical.csv

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check nuclei_pa tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_metrics.py

clean-demo:
	rm -rf $(DEMO)
