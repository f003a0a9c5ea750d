"""PII redaction benchmark: precision and recall of ``rag.pii`` on a labelled set.

Prints one JSON object on stdout: per kind and overall, true positives, false positives, false
negatives, precision, recall and F1 under two matchings:

- ``exact``: a prediction counts only when its kind, start and end equal a labelled span;
- ``overlap``: a prediction counts when it overlaps a labelled span of the same kind (each
  labelled span is credited once), i.e. the value was hidden even if the edges differ.

The set is ``tests/rag/data/pii_labelled.jsonl``: one ``{"text", "spans": [{"kind", "start",
"end"}]}`` per line, business text with and without PII and hard negatives (dates, amounts,
invoice and order numbers, Luhn-invalid cards, invalid IBANs, versions, times, ranges). It was
written together with the detectors, so it is a development set: numbers on it are an upper
bound for text unlike it.

    python bench/pii.py [--data FILE] [--errors] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._machine import machine_facts  # noqa: E402
from rag.pii import KINDS, PiiRedactor  # noqa: E402

DATA = ROOT / "tests" / "rag" / "data" / "pii_labelled.jsonl"


def load(path: Path = DATA) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _ratio(a: int, b: int) -> float:
    return round(a / b, 4) if b else 1.0


def _scores(tp: int, fp: int, fn: int) -> dict:
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}


def measure(rows: list[dict], redactor: PiiRedactor | None = None) -> dict:
    """Metrics per kind and overall, plus the list of errors (exact matching)."""
    redactor = redactor or PiiRedactor()
    counts = {mode: {k: Counter() for k in KINDS} for mode in ("exact", "overlap")}
    errors: list[dict] = []
    started = time.perf_counter()
    for row in rows:
        text = row["text"]
        gold = {(s["kind"], s["start"], s["end"]) for s in row["spans"]}
        predicted = {(f.kind, f.start, f.end) for f in redactor.redact(text).findings}
        for kind in KINDS:
            g = {s for s in gold if s[0] == kind}
            p = {s for s in predicted if s[0] == kind}
            exact = counts["exact"][kind]
            exact["tp"] += len(g & p)
            exact["fp"] += len(p - g)
            exact["fn"] += len(g - p)
            credited = {s for s in g if any(_overlaps(s, q) for q in p)}
            overlap = counts["overlap"][kind]
            overlap["tp"] += len(credited)
            overlap["fp"] += sum(1 for q in p if not any(_overlaps(s, q) for s in g))
            overlap["fn"] += len(g) - len(credited)
        for kind, start, end in sorted(predicted - gold, key=lambda s: s[1]):
            errors.append({"error": "fp", "kind": kind, "value": text[start:end], "text": text})
        for kind, start, end in sorted(gold - predicted, key=lambda s: s[1]):
            errors.append({"error": "fn", "kind": kind, "value": text[start:end], "text": text})
    elapsed = time.perf_counter() - started
    result: dict = {
        "lines": len(rows),
        "lines_without_pii": sum(1 for r in rows if not r["spans"]),
        "labelled_spans": dict(Counter(s["kind"] for r in rows for s in r["spans"])),
        "ms_per_line": round(1000 * elapsed / max(len(rows), 1), 3),
    }
    for mode, by_kind in counts.items():
        table = {k: _scores(c["tp"], c["fp"], c["fn"]) for k, c in sorted(by_kind.items())}
        total = sum(by_kind.values(), Counter())
        table["overall"] = _scores(total["tp"], total["fp"], total["fn"])
        result[mode] = table
    result["errors"] = errors
    return result


def _overlaps(a: tuple, b: tuple) -> bool:
    return a[0] == b[0] and a[1] < b[2] and b[1] < a[2]


def table(result: dict, mode: str = "exact") -> str:
    """A plain-text table of one matching mode, for test output and READMEs."""
    lines = [f"{mode:<8} {'tp':>4} {'fp':>4} {'fn':>4} {'precision':>9} {'recall':>7} {'f1':>6}"]
    for kind, s in result[mode].items():
        lines.append(
            f"{kind:<8} {s['tp']:>4} {s['fp']:>4} {s['fn']:>4} "
            f"{s['precision']:>9.3f} {s['recall']:>7.3f} {s['f1']:>6.3f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--errors", action="store_true", help="also list every error")
    parser.add_argument("--out", type=Path, help="also write the JSON result to this file")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    result = measure(load(args.data))
    if not args.errors:
        result["errors"] = len(result["errors"])
    result["machine"] = machine_facts(load_before)
    text = json.dumps(result, indent=2, ensure_ascii=False)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
