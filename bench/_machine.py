"""The machine a benchmark ran on, recorded under ``"machine"`` in every bench/ JSON result.

Numbers from a shared 2-core machine mean little without the facts next to them: cores, RAM, CPU
model, the library versions and torch's intra-op threads, and the 1-minute load average before
the run and at the end of it (anything above 0 that is not the benchmark slows it).

Scripts run as ``python bench/x.py`` import it as ``bench._machine`` (the project root is on
``sys.path``); no Django and no torch at import time (torch is imported when the facts are taken,
if it is installed).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
from pathlib import Path

# Distributions whose versions change the numbers; None when one is not installed.
DISTRIBUTIONS = (
    "django",
    "qdrant-client",
    "sentence-transformers",
    "transformers",
    "celery",
    "openai",
)


def load_average() -> float | None:
    """The 1-minute load average now (None where the OS has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def ram_gib(meminfo: Path = Path("/proc/meminfo")) -> float | None:
    """Total RAM in GiB, from ``MemTotal`` (kB)."""
    try:
        match = re.search(r"^MemTotal:\s+(\d+)\s*kB", meminfo.read_text(), re.MULTILINE)
    except OSError:
        return None
    return round(int(match.group(1)) / 2**20, 1) if match else None


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The first ``model name`` of /proc/cpuinfo, else what ``platform`` knows."""
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
    except OSError:
        match = None
    if match:
        return " ".join(match.group(1).split())
    return platform.processor() or platform.machine() or "unknown"


def version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _torch() -> tuple[str | None, int | None]:
    try:
        import torch
    except ImportError:
        return None, None
    return torch.__version__, torch.get_num_threads()


def machine_facts(load_before: float | tuple[float, ...] | None = None) -> dict:
    """Facts about this machine and process, taken now (call it at the end of a run).

    ``load_before``: the 1-minute load average taken before the run (``os.getloadavg()`` or
    its first value); ``load`` is ``[before, now]``, ``before`` null when not given.
    ``torch_threads`` is this process's intra-op thread count at the time of the call.
    """
    if isinstance(load_before, tuple | list):
        load_before = load_before[0] if load_before else None
    torch_version, torch_threads = _torch()
    return {
        "cores": os.cpu_count(),
        "ram_gib": ram_gib(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch_version,
        "torch_threads": torch_threads,
        "versions": {name: version(name) for name in DISTRIBUTIONS},
        "load": [None if load_before is None else round(float(load_before), 2), load_average()],
    }


def emit(result: dict, *, stdout, out: Path | None) -> None:
    """The result as indented JSON on ``stdout`` (the real one: scripts send everything else to
    stderr) and, with ``--out``, into that file."""
    text = json.dumps(result, indent=2)
    print(text, file=stdout, flush=True)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
