"""bench/_machine.py: the machine facts every benchmark records under "machine"."""

import json
import subprocess
import sys
from pathlib import Path

from bench._machine import DISTRIBUTIONS, cpu_model, machine_facts, ram_gib

ROOT = Path(__file__).resolve().parents[2]


def test_machine_facts_has_the_keys_with_sane_types():
    facts = machine_facts()
    assert set(facts) == {
        "cores",
        "ram_gib",
        "cpu_model",
        "python",
        "platform",
        "torch",
        "torch_threads",
        "versions",
        "load",
    }
    assert isinstance(facts["cores"], int) and facts["cores"] >= 1
    assert isinstance(facts["ram_gib"], float) and facts["ram_gib"] > 0
    assert isinstance(facts["cpu_model"], str) and facts["cpu_model"]
    assert facts["python"].count(".") == 2
    assert isinstance(facts["platform"], str) and facts["platform"]
    assert isinstance(facts["torch"], str) and facts["torch"][0].isdigit()
    assert isinstance(facts["torch_threads"], int) and facts["torch_threads"] >= 1
    assert set(facts["versions"]) == set(DISTRIBUTIONS)
    for name in ("django", "qdrant-client", "sentence-transformers", "celery", "openai"):
        assert isinstance(facts["versions"][name], str), name
    before, now = facts["load"]
    assert before is None  # not given
    assert isinstance(now, float) and now >= 0
    json.dumps(facts)  # goes into the JSON results as is


def test_load_before_accepts_getloadavg_or_a_number():
    assert machine_facts((1.234, 0.5, 0.25))["load"][0] == 1.23
    assert machine_facts(0.5)["load"][0] == 0.5


def test_ram_and_cpu_model_parse_proc_files(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16384000 kB\nMemFree:        1 kB\n")
    assert ram_gib(meminfo) == 15.6
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Intel(R) Xeon(R)   CPU @ 2.20GHz\n")
    assert cpu_model(cpuinfo) == "Intel(R) Xeon(R) CPU @ 2.20GHz"
    assert ram_gib(tmp_path / "missing") is None
    assert cpu_model(tmp_path / "missing")  # falls back to what platform knows


def test_pii_bench_writes_out_with_the_machine(tmp_path):
    """pii.py, run as `make bench` runs it, writes the same JSON to --out as to stdout."""
    out = tmp_path / "nested" / "pii.json"
    done = subprocess.run(
        [sys.executable, "bench/pii.py", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result == json.loads(done.stdout)
    assert result["lines"] > 0 and result["exact"]["overall"]["recall"] > 0
    assert result["machine"]["cores"] >= 1 and len(result["machine"]["load"]) == 2
