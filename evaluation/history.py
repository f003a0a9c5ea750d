"""The run history admins see: runs grouped by kind and dataset, each group with a small line
chart of its headline metrics (drawn as SVG on the server: no chart library, no script)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .models import EvalRun

RUNS_PER_GROUP = 30
# The metrics worth a line on the chart, per kind: (group, metric, label).
HEADLINE = {
    EvalRun.Kind.RETRIEVAL: (
        ("hybrid", "recall@5", "hybrid recall@5"),
        ("hybrid", "mrr@10", "hybrid MRR@10"),
        ("dense", "mrr@10", "dense MRR@10"),
        ("lexical", "mrr@10", "lexical MRR@10"),
    ),
    EvalRun.Kind.ANSWERS: (
        ("positives", "contains", "answer correct"),
        ("positives", "citation_precision", "citation precision"),
        ("negatives", "abstention_rate", "abstains without evidence"),
        ("judge", "faithfulness", "judged faithful"),
    ),
}
COLOURS = ("#2f5fd0", "#1f8a4c", "#b7791f", "#8e44ad")
WIDTH, HEIGHT, PAD = 560, 160, 24
LEFT = 40  # room for the axis labels


@dataclass(frozen=True)
class Series:
    label: str
    colour: str
    points: str  # SVG polyline points
    dots: list[tuple[float, float, str]]  # x, y, tooltip
    last: float | None


@dataclass(frozen=True)
class Row:
    run: EvalRun
    values: list[str]  # formatted, one per column ("–" when the run did not measure it)
    models: str
    gate: bool | None


@dataclass(frozen=True)
class Group:
    kind: str
    dataset: str
    rows: list[Row]  # newest first
    series: list[Series]
    columns: list[str]  # labels of the values of each row
    ticks: list[tuple[float, float, str]]  # (y, label's y, label): bottom, middle, top
    width: int = WIDTH
    height: int = HEIGHT


def run_history(*, limit: int = RUNS_PER_GROUP) -> list[Group]:
    groups: dict[tuple[str, str], list[EvalRun]] = {}
    for run in EvalRun.objects.order_by("-created_at", "-id")[:1000]:
        runs = groups.setdefault((run.kind, run.dataset), [])
        if len(runs) < limit:
            runs.append(run)
    return [
        _group(kind, dataset, runs)
        for (kind, dataset), runs in sorted(groups.items(), key=lambda item: -item[1][0].pk)
    ]


def metric_value(run: EvalRun, group: str, metric: str) -> float | None:
    value = (run.metrics or {}).get(group, {}).get(metric)
    return value if isinstance(value, int | float) else None


def _group(kind: str, dataset: str, runs: list[EvalRun]) -> Group:
    headline = HEADLINE.get(kind, ())
    present = [h for h in headline if any(metric_value(r, h[0], h[1]) is not None for r in runs)]
    chronological = list(reversed(runs))
    values = [metric_value(r, g, m) for r in runs for g, m, _ in present]
    floor = axis_floor([v for v in values if v is not None])
    series = [
        _series(chronological, group, metric, label, COLOURS[n % len(COLOURS)], floor)
        for n, (group, metric, label) in enumerate(present)
    ]
    ticks = [
        (_y(value, floor), _y(value, floor) + 4, f"{value:.2f}".rstrip("0").rstrip(".") or "0")
        for value in (floor, (floor + 1) / 2, 1.0)
    ]
    rows = [
        Row(
            run=run,
            values=[_format(metric_value(run, group, metric)) for group, metric, _ in present],
            models=", ".join(f"{role}: {name}" for role, name in (run.model_ids or {}).items()),
            gate=None if run.gate is None else bool(run.gate.get("passed")),
        )
        for run in runs
    ]
    return Group(
        kind=kind,
        dataset=dataset,
        rows=rows,
        series=series,
        columns=[h[2] for h in present],
        ticks=ticks,
    )


def axis_floor(values: list[float]) -> float:
    """The bottom of the value axis: 0, or a tenth below the lowest value when every value is
    high, so a drop from 0.99 to 0.95 shows (the axis is labelled; its top is always 1)."""
    lowest = min(values, default=0.0)
    return max(0.0, math.floor(round((lowest - 0.02) * 10, 6)) / 10)


def _y(value: float, floor: float) -> float:
    share = (max(floor, min(1.0, value)) - floor) / (1.0 - floor)
    return round(HEIGHT - PAD - share * (HEIGHT - 2 * PAD), 1)


def _format(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _series(
    runs: Sequence[EvalRun], group: str, metric: str, label: str, colour: str, floor: float
) -> Series:
    """Values in [floor, 1]: one axis for every line of the chart."""
    step = (WIDTH - LEFT - PAD) / max(len(runs) - 1, 1)
    dots = []
    for n, run in enumerate(runs):
        value = metric_value(run, group, metric)
        if value is None:
            continue
        x = LEFT + n * step if len(runs) > 1 else (WIDTH + LEFT - PAD) / 2
        dots.append((round(x, 1), _y(value, floor), f"run #{run.pk}: {label} {value:.3f}"))
    values = [metric_value(r, group, metric) for r in runs]
    last = next((v for v in reversed(values) if v is not None), None)
    return Series(
        label=label,
        colour=colour,
        points=" ".join(f"{x},{y}" for x, y, _ in dots),
        dots=dots,
        last=last,
    )
