# nuclei-pa — two commands on a fresh machine:
#   make demo   set up .venv and run the main job on the embedded default
#   make test   set up .venv and run the test suite (what CI runs)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORES  ?= $(shell nproc)

.PHONY: setup demo test clients lint bench clean-demo

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11, 4), "nuclei-pa needs Python >= 3.11.4"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

# The main job: the whole workflow on the embedded default (synthetic data, slim model, CPU):
# data -> DH25 / DH25crop -> one training per model -> every checkpoint evaluated -> Tables 1-4,
# Figure 4 and the example/attention figures in results/, plus an HTML report.
demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --cores 1 --report results/report.html
	@echo "Findings: results/findings.md  Tables: results/tables/*.md  Figures: results/figures/  Report: results/report.html"

# Real clients for the round-trip tests: ImageJ (our ROI sets) and Chromium (the report page),
# from apt on Debian/Ubuntu as root (~2 min the first time); where they cannot be installed
# those tests are skipped and say why.
CLIENTS := imagej xvfb xauth chromium
clients:
	@if [ -f /usr/share/java/ij.jar ] && command -v xvfb-run >/dev/null && command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing $(CLIENTS) (apt) for the ImageJ and browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(CLIENTS) >/dev/null) \
	  || echo "note: could not install $(CLIENTS); the tests that need them will be skipped"; \
	else echo "note: $(CLIENTS) not installed (apt-get install $(CLIENTS)); the tests that need them will be skipped"; fi

# One pytest worker per core, a test file per worker (tests/conftest.py starts the longest first).
test: $(STAMP) clients
	$(BIN)/ruff check .
	$(BIN)/snakefmt --check workflow
	$(BIN)/pytest -q -n $(CORES) --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/snakefmt --check workflow
	$(BIN)/snakemake --lint --cores 1

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_metrics.py

clean-demo:
	rm -rf results/data results/trainsets results/models results/eval results/tables results/figures results/measure results/logs results/benchmarks results/findings.md results/findings.csv results/report.html
