"""bench/baseline.py at a tiny size: ours and stock LlamaIndex on the same 30 passage files.

Only the shape and the sanity of the numbers are checked, never their values (timings belong in
the benchmark's output, not in assertions). Skipped when LlamaIndex is not installed
(``requirements-bench.txt``).
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUESTIONS, PASSAGES = 10, 30

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_index") is None
        or importlib.util.find_spec("llama_index.core") is None,
        reason="LlamaIndex is not installed: pip install -c <(pip freeze) "
        "-r requirements-bench.txt",
    ),
]


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    """One tiny run (~30 s on a busy 2-core machine, most of it loading the model twice)."""
    folder = tmp_path_factory.mktemp("baseline")
    out = folder / "baseline.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TMPDIR": str(folder)}
    done = subprocess.run(
        [
            sys.executable,
            "bench/baseline.py",
            "--questions",
            str(QUESTIONS),
            "--passages",
            str(PASSAGES),
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    printed = json.loads(done.stdout)  # stdout is the JSON and nothing else
    assert json.loads(out.read_text()) == printed
    assert not list(folder.glob("bench-baseline-*")), "the work folder was left behind"
    return printed


def test_shape(result):
    assert result["benchmark"] == "baseline_llamaindex"
    assert {"cores", "python", "load"} <= set(result["machine"])
    assert result["corpus"]["questions"] == QUESTIONS
    assert result["corpus"]["passages"] == PASSAGES
    ingest = result["ingest"]
    assert {"seconds", "chunks"} <= set(ingest["ours"])
    assert {"seconds", "chunks", "chunk_size", "chunk_overlap", "embed_batch_size"} <= set(
        ingest["llamaindex"]
    )
    retrieval = result["retrieval"]
    assert retrieval["questions"] == QUESTIONS
    for name in ("ours", "llamaindex"):
        assert set(retrieval[name]) >= {
            "recall@1",
            "recall@5",
            "recall@10",
            "mrr@10",
            "p50_ms",
            "p95_ms",
        }
    assert result["versions"]["llama-index-core"]


def test_sanity(result):
    ingest, retrieval = result["ingest"], result["retrieval"]
    for name in ("ours", "llamaindex"):
        assert ingest[name]["seconds"] > 0
        assert ingest[name]["chunks"] >= PASSAGES  # every passage file gives at least one chunk
        scores = retrieval[name]
        for metric in ("recall@1", "recall@5", "recall@10", "mrr@10"):
            assert 0 <= scores[metric] <= 1
        assert scores["recall@1"] <= scores["recall@5"] <= scores["recall@10"]
        assert scores["recall@1"] <= scores["mrr@10"] <= scores["recall@10"]
        assert 0 < scores["p50_ms"] <= scores["p95_ms"]
    assert ingest["ours"]["failed"] == 0
    assert ingest["ours"]["stored_points"] == ingest["ours"]["chunks"]
    assert ingest["llamaindex"]["chunk_size"] > 0 and ingest["llamaindex"]["embed_batch_size"] > 0
    assert ingest["speedup"] == pytest.approx(
        ingest["llamaindex"]["seconds"] / ingest["ours"]["seconds"], rel=0.01
    )
