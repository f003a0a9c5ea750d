"""Plots of the benchmark results: reads DIR/NAME.json, writes DIR/NAME.png next to each.

    python bench/plots.py [DIR]        # default docs/benchmarks (what `make bench` fills)

One PNG per result file the script knows (ingest, retrieval, scale, chat, local_llm, resilience,
pii, baseline, manuals); each carries a footnote with the machine it ran on (cores, RAM, CPU
model, torch and its threads, load average before -> after). A missing file is skipped with a note on stderr;
a file that cannot be plotted is reported on stderr and the exit status is 1. Only needs
matplotlib (Agg backend, no display).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FormatStrFormatter, LogLocator  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = ROOT / "docs" / "benchmarks"
MODES = ("dense", "lexical", "hybrid")
COLORS = {"dense": "#4c72b0", "lexical": "#dd8452", "hybrid": "#55a868"}
SECOND = "#8172b3"


def note(message: str) -> None:
    print(f"[plots] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Shared pieces
# ---------------------------------------------------------------------------------------------


def short_cpu(model: str | None) -> str:
    """'Intel(R) Xeon(R) CPU @ 2.20GHz' -> 'Intel Xeon @ 2.20GHz', at most ~32 characters."""
    if not model:
        return "CPU ?"
    text = re.sub(r"\((R|TM|tm|r)\)", "", model)
    text = re.sub(r"\b(CPU|Processor|\d+-Core)\b", "", text)
    text = " ".join(text.split())
    return text if len(text) <= 32 else text[:31] + "…"


def machine_line(machine: dict | None) -> str:
    """The footnote: what the numbers were measured on."""
    if not machine:
        return "machine: not recorded"
    parts = [f"{machine.get('cores', '?')} cores"]
    if machine.get("ram_gib") is not None:
        parts.append(f"{machine['ram_gib']} GiB RAM")
    parts.append(short_cpu(machine.get("cpu_model")))
    threads = machine.get("torch_threads", machine.get("threads"))
    if machine.get("torch"):
        parts.append(f"torch {machine['torch']}, {threads} threads")
    load = machine.get("load")
    if isinstance(load, list) and load:
        shown = [("?" if x is None else f"{x:g}") for x in load[:2]]
        parts.append("load " + " → ".join(shown))
    if machine.get("python"):
        parts.append(f"Python {machine['python']}")
    return " · ".join(parts)


def figure(title: str, result: dict, columns: int = 1, width: float = 9.0):
    fig, axes = plt.subplots(1, columns, figsize=(width, 4.6), squeeze=False)
    fig.suptitle(title, fontsize=12, fontweight="bold")
    fig.text(0.5, 0.01, machine_line(result.get("machine")), ha="center", fontsize=8, color="#555")
    return fig, list(axes[0])


def save(fig, path: Path) -> None:
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def label_bars(ax, bars, fmt: str = "{:g}") -> None:
    for bar in bars:
        height = bar.get_height()
        if height is None:
            continue
        ax.annotate(
            fmt.format(height),
            (bar.get_x() + bar.get_width() / 2, height),
            ha="center",
            va="bottom",
            fontsize=7,
            xytext=(0, 2),
            textcoords="offset points",
        )


def grouped_bars(ax, groups: list[str], series: dict[str, list[float]], colors=None, fmt="{:g}"):
    """Bars of each series side by side within each group."""
    count = max(len(series), 1)
    width = 0.8 / count
    for n, (name, values) in enumerate(series.items()):
        offsets = [g + (n - (count - 1) / 2) * width for g in range(len(groups))]
        color = (colors or {}).get(name)
        bars = ax.bar(offsets, [v or 0 for v in values], width, label=name, color=color)
        label_bars(ax, bars, fmt)
    ax.set_xticks(range(len(groups)), groups)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax.margins(y=0.15)


# ---------------------------------------------------------------------------------------------
# One function per result file
# ---------------------------------------------------------------------------------------------


def plot_ingest(result: dict, path: Path) -> None:
    fig, (ax,) = figure(
        f"Ingestion: {result['docs']} {result.get('format', '')} documents, "
        f"{result['chunks']} chunks",
        result,
        width=7,
    )
    names = ["pipeline\n(parse+chunk+embed+index)", "embedder alone\n(same texts)"]
    values = [result["chunks_per_s"], result["raw_embed_chunks_per_s"]]
    bars = ax.bar(names, values, color=[COLORS["hybrid"], COLORS["dense"]], width=0.5)
    label_bars(ax, bars)
    ax.set_ylabel("chunks / s")
    if result.get("ratio") is not None:
        ax.set_title(f"pipeline keeps {result['ratio']:.0%} of raw embedding speed", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.margins(y=0.15)
    save(fig, path)


def plot_retrieval(result: dict, path: Path) -> None:
    if "modes" not in result:
        raise ValueError("no 'modes' (a --sweep result?): nothing to plot")
    modes = [m for m in MODES if m in result["modes"]]
    fig, (quality, latency) = figure(
        f"Retrieval on HaluEval-QA: {result['questions']} questions, {result['passages']} passages",
        result,
        columns=2,
        width=11,
    )
    metrics = ["recall@1", "recall@5", "recall@10", "mrr@10"]
    grouped_bars(
        quality,
        metrics,
        {m: [result["modes"][m].get(x) for x in metrics] for m in modes},
        COLORS,
        "{:.2f}",
    )
    quality.set_ylim(0, 1.12)
    quality.set_title("quality (higher is better)", fontsize=9)
    timing = result.get("latency_ms") or {}
    timed = [m for m in modes if m in timing]
    if timed:
        grouped_bars(
            latency,
            ["p50", "p95"],
            {m: [timing[m]["p50"], timing[m]["p95"]] for m in timed},
            COLORS,
            "{:.0f}",
        )
        queries = timing[timed[0]].get("queries")
        latency.set_title(f"query latency, ms ({queries} queries per mode)", fontsize=9)
        latency.set_ylabel("ms")
    else:
        latency.set_axis_off()
    save(fig, path)


BACKEND_COLORS = {"edge": "#4c72b0", "edge-optimized": "#55a868", "local": "#c44e52"}


def plot_scale(result: dict, path: Path) -> None:
    """Per mode, whole-query p50 and p95 against corpus size for each store (log scale: local
    mode is two orders slower), then the hybrid store share, with the latency target."""
    rows = result["results"]
    names = list(result.get("backends") or {})
    target = result.get("target") or {}
    fig, axes = figure(
        f"Query latency vs corpus size ({result['queries']} queries, k={result.get('k', 10)}, "
        "collection filter on)",
        result,
        columns=4,
        width=17,
    )
    panels = [(mode, "total", f"{mode}: whole query") for mode in result.get("modes", MODES)]
    panels.append(("hybrid", "store", "hybrid: store share (without the query embedding)"))
    for ax, (mode, part, title) in zip(axes, panels, strict=False):
        for name in names:
            points = [
                (row["chunks"], row["backends"][name]["latency_ms"][mode][part])
                for row in rows
                if name in row["backends"]
            ]
            if not points:
                continue
            sizes = [size for size, _ in points]
            color = BACKEND_COLORS.get(name)
            ax.plot(sizes, [s["p50"] for _, s in points], "o-", color=color, label=f"{name} p50")
            ax.plot(sizes, [s["p95"] for _, s in points], "s--", color=color, label=f"{name} p95")
        if mode == target.get("mode") and part == "total" and target.get("p95_total_ms"):
            ax.axhline(target["p95_total_ms"], color="k", linestyle=":", linewidth=1)
            ax.annotate(
                f"target p95 {target['p95_total_ms']:g} ms",
                (rows[0]["chunks"], target["p95_total_ms"]),
                fontsize=7,
                xytext=(0, 3),
                textcoords="offset points",
            )
        sizes = [row["chunks"] for row in rows]
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sizes, [f"{s // 1000}k" if s >= 1000 else str(s) for s in sizes])
        ax.minorticks_off()
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.set_xlabel("chunks in the collection")
        ax.set_ylabel("ms")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=3)
    optimized = [
        (row["chunks"], row["backends"]["edge-optimized"].get("optimize_seconds"))
        for row in rows
        if "edge-optimized" in row["backends"]
    ]
    if optimized:
        text = ", ".join(
            f"{size // 1000 or size}{'k' if size >= 1000 else ''} {sec:g} s"
            for size, sec in optimized
            if sec is not None
        )
        axes[-1].text(0.02, 0.02, f"optimize(): {text}", transform=axes[-1].transAxes, fontsize=7)
    synthetic = (result.get("corpus") or {}).get("dense_synthetic")
    if synthetic:
        fig.text(
            0.5,
            0.045,
            f"{synthetic} of {max(result['sizes'])} dense vectors synthetic (see corpus in the "
            "JSON); texts, BM25 vectors and payloads real",
            ha="center",
            fontsize=7,
            color="#777",
        )
    save(fig, path)


def plot_chat(result: dict, path: Path) -> None:
    levels = result["levels"]
    keys = sorted(levels, key=int)
    fig, (ax,) = figure(
        f"Chat overhead: fake model answering at once, {result.get('passages', '?')} passages",
        result,
        width=9,
    )
    series: dict[str, list[float]] = {}
    for metric, name in (("first_token_ms", "first token"), ("complete_ms", "complete")):
        for q in ("p50", "p95"):
            series[f"{name} {q}"] = [(levels[k].get(metric) or {}).get(q) for k in keys]
    colors = {
        "first token p50": "#4c72b0",
        "first token p95": "#a1c4e8",
        "complete p50": "#55a868",
        "complete p95": "#a8dcb4",
    }
    groups = [
        f"{levels[k]['users']} user{'s' if levels[k]['users'] != 1 else ''}\n"
        f"{levels[k]['requests']} req, {levels[k]['errors']} errors"
        for k in keys
    ]
    grouped_bars(ax, groups, series, colors, "{:.0f}")
    target = (result.get("targets") or {}).get("overhead_p95_ms_at_1_user")
    if target:
        ax.axhline(target, color="#c44e52", linestyle=":", linewidth=1, label="target p95, 1 user")
        ax.legend(fontsize=8)
    ax.set_ylabel("ms")
    save(fig, path)


def plot_resilience(result: dict, path: Path) -> None:
    fig, (outcome, latency) = figure(
        f"Resilience: {result['questions']} questions, {result['concurrency']} users, "
        "primary answering 429",
        result,
        columns=2,
        width=10,
    )
    errors = sum((result.get("errors") or {}).values()) / max(result["questions"], 1)
    bars = outcome.bar(
        ["answered", "refused cleanly", "errors"],
        [result["answered_share"], result["refused_share"], errors],
        color=[COLORS["hybrid"], COLORS["lexical"], "#c44e52"],
        width=0.5,
    )
    label_bars(outcome, bars, "{:.0%}")
    outcome.set_ylim(0, 1.15)
    outcome.set_title("share of questions", fontsize=9)
    outcome.grid(axis="y", alpha=0.3)
    timing = result["latency_ms"]
    bars = latency.bar(
        ["p50", "p95", "max"], [timing["p50"], timing["p95"], timing["max"]], color=SECOND
    )
    label_bars(latency, bars, "{:.0f}")
    attempts = (result.get("attempts_per_answer") or {}).get("mean")
    latency.set_title(
        f"latency per question, ms (provider requests per answer: {attempts})", fontsize=9
    )
    latency.set_ylabel("ms")
    latency.grid(axis="y", alpha=0.3)
    latency.margins(y=0.15)
    save(fig, path)


def plot_local_llm(result: dict, path: Path) -> None:
    fig, (loads, speed) = figure(
        f"Offline model: {result.get('model', '?')}", result, columns=2, width=10
    )
    cached = result.get("cached_load") or {}
    names = ["first load\n(GGUF)", "import\n(torch+hf)", "load\n(cache)", "first\nanswer"]
    values = [
        result.get("first_load_s"),
        cached.get("import_s"),
        cached.get("load_s"),
        cached.get("first_answer_s"),
    ]
    bars = loads.bar(names, [v or 0 for v in values], color=SECOND, width=0.6)
    label_bars(loads, bars, "{:.1f}")
    loads.set_ylabel("s")
    loads.set_title("start-up, seconds", fontsize=9)
    loads.grid(axis="y", alpha=0.3)
    loads.margins(y=0.15)
    prompt, decode = result.get("prompt") or {}, result.get("decode") or {}
    bars = speed.bar(
        [f"prefill\n({prompt.get('tokens')} tokens)", f"decode\n({decode.get('tokens')} tokens)"],
        [prompt.get("tokens_per_s") or 0, decode.get("tokens_per_s") or 0],
        color=[COLORS["dense"], COLORS["hybrid"]],
        width=0.5,
    )
    label_bars(speed, bars, "{:.1f}")
    speed.set_yscale("log")
    speed.set_ylabel("tokens / s (log)")
    speed.set_title("generation speed", fontsize=9)
    speed.grid(axis="y", alpha=0.3)
    save(fig, path)


def plot_pii(result: dict, path: Path) -> None:
    fig, (ax,) = figure(
        f"PII redaction on {result['lines']} labelled lines (exact spans)", result, width=10
    )
    table = result["exact"]
    kinds = list(table)
    grouped_bars(
        ax,
        kinds,
        {
            "precision": [table[k]["precision"] for k in kinds],
            "recall": [table[k]["recall"] for k in kinds],
        },
        {"precision": COLORS["dense"], "recall": COLORS["lexical"]},
        "{:.2f}",
    )
    ax.set_ylim(0, 1.25)
    ax.legend(fontsize=8, loc="upper center", ncol=2)
    ax.set_title("development set: an upper bound for unlike text", fontsize=9)
    save(fig, path)


def plot_baseline(result: dict, path: Path) -> None:
    fig, (ingest, retrieval) = figure(
        "This project vs a LlamaIndex baseline (same data, same machine)",
        result,
        columns=2,
        width=10,
    )
    systems = ["ours", "llamaindex"]
    colors = [COLORS["hybrid"], SECOND]
    part = result.get("ingest") or {}
    if all(s in part for s in systems):
        bars = ingest.bar(systems, [part[s]["seconds"] for s in systems], color=colors, width=0.5)
        label_bars(ingest, bars, "{:.1f}")
        chunks = ", ".join(f"{s}: {part[s].get('chunks')} chunks" for s in systems)
        speedup = part.get("speedup")
        title = "ingest, seconds (lower is better)"
        if speedup is not None:
            title += f"; speed-up ×{speedup:g}"
        ingest.set_title(f"{title}\n{chunks}", fontsize=9)
        ingest.set_ylabel("s")
        ingest.grid(axis="y", alpha=0.3)
        ingest.margins(y=0.15)
    else:
        ingest.set_axis_off()
    part = result.get("retrieval") or {}
    if all(s in part for s in systems):
        metrics = ["recall@5", "mrr@10"]
        grouped_bars(
            retrieval,
            metrics,
            {s: [part[s].get(m) for m in metrics] for s in systems},
            dict(zip(systems, colors, strict=True)),
            "{:.3f}",
        )
        retrieval.set_ylim(0, 1.15)
        retrieval.set_title(
            f"retrieval on {part.get('questions', '?')} questions (higher is better)", fontsize=9
        )
    else:
        retrieval.set_axis_off()
    save(fig, path)


def _share_bars(ax, labels: list[str], shares: list[dict | None], colors: list[str]) -> None:
    """Bars of shares (``{"value", "ci95", "n"}``) with their 95% intervals as error bars."""
    values = [(s or {}).get("value") or 0 for s in shares]
    low = [v - ((s or {}).get("ci95") or [v, v])[0] for v, s in zip(values, shares, strict=True)]
    high = [((s or {}).get("ci95") or [v, v])[1] - v for v, s in zip(values, shares, strict=True)]
    bars = ax.bar(labels, values, color=colors, width=0.6, yerr=[low, high], capsize=3)
    label_bars(ax, bars, "{:.2f}")
    ax.set_ylim(0, 1.18)
    ax.grid(axis="y", alpha=0.3)
    ax.tick_params(axis="x", labelsize=8)


def plot_manuals(result: dict, path: Path) -> None:
    fig, (retrieval, answers) = figure(
        "Real manuals: " + ", ".join(m["document"] for m in result["manuals"]),
        result,
        columns=2,
        width=11,
    )
    part, targets = result["retrieval"], result.get("targets") or {}
    labels, shares, colors = [], [], []
    for kind in ("heading", "reworded"):
        for k in (1, 5):
            labels.append(f"{kind}\ntop-{k}")
            shares.append(part[kind][f"top{k}"])
            colors.append(COLORS["dense"] if kind == "heading" else COLORS["lexical"])
    labels.append("navigation\nfirst")
    shares.append(part["navigation_top1"])
    colors.append("#c44e52")
    _share_bars(retrieval, labels, shares, colors)
    for name, x in (("heading_top1", 0), ("reworded_top5", 3), ("navigation_top1_max", 4)):
        if name in targets:
            retrieval.hlines(targets[name]["target"], x - 0.4, x + 0.4, colors="k", linestyles="--")
    questions = part["all"]["top1"]["n"]
    retrieval.set_title(
        f"retrieval: page accuracy on {questions} questions (95% CI; dashes: targets)", fontsize=9
    )
    given = result.get("answers")
    if given:
        _share_bars(
            answers,
            ["answer shown", "quotes the\nanswer page", "unanswerable\nwithheld"],
            [given["shown"], given["quotes_answer_page"], given["unanswerable_withheld"]],
            [COLORS["hybrid"], COLORS["hybrid"], SECOND],
        )
        if "unanswerable_withheld" in targets:
            answers.hlines(
                targets["unanswerable_withheld"]["target"], 1.6, 2.4, colors="k", linestyles="--"
            )
        answers.set_title(f"offline answers with {given.get('model')}", fontsize=9)
    else:
        answers.set_axis_off()
        answers.text(0.5, 0.5, "answers not measured (--no-answers)", ha="center", fontsize=9)
    save(fig, path)


def plot_documents(result: dict, path: Path) -> None:
    fig, axes = figure("Documents page: one page of the list", result, columns=2, width=11)
    times, queries = axes
    sizes = [row["documents"] for row in result["results"]]
    names = list(result["results"][0]["requests"])
    for name in names:
        rows = [row["requests"][name] for row in result["results"]]
        times.plot(sizes, [r["p50_ms"] for r in rows], marker="o", label=name)
        queries.plot(sizes, [r["queries"] for r in rows], marker="o", label=name)
    for ax, label in ((times, "p50 ms per request"), (queries, "SQL statements per request")):
        ax.set_xscale("log")
        ax.set_xlabel("documents in the table")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    times.legend(fontsize=7)
    queries.set_title("flat: nothing is queried per row", fontsize=9)
    save(fig, path)


PLOTS: dict[str, Callable[[dict, Path], None]] = {
    "ingest": plot_ingest,
    "retrieval": plot_retrieval,
    "scale": plot_scale,
    "chat": plot_chat,
    "local_llm": plot_local_llm,
    "resilience": plot_resilience,
    "pii": plot_pii,
    "baseline": plot_baseline,
    "manuals": plot_manuals,
    "documents": plot_documents,
}


def render(folder: Path, names: list[str] | None = None) -> tuple[list[Path], list[str]]:
    """Plots every known result in ``folder``; returns the PNGs written and the failures."""
    written: list[Path] = []
    failed: list[str] = []
    for name in names or list(PLOTS):
        source = folder / f"{name}.json"
        if not source.is_file():
            note(f"skipped {name}: {source} is missing")
            continue
        target = source.with_suffix(".png")
        try:
            PLOTS[name](json.loads(source.read_text(encoding="utf-8")), target)
        except Exception as exc:  # one bad file must not hide the other plots
            plt.close("all")
            failed.append(name)
            note(f"could not plot {source}: {type(exc).__name__}: {exc}")
            continue
        written.append(target)
        note(f"wrote {target}")
    return written, failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "folder", nargs="?", type=Path, default=DEFAULT_DIR, help="where the JSON files are"
    )
    parser.add_argument(
        "--only", action="append", choices=sorted(PLOTS), help="plot only this result (repeatable)"
    )
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        parser.error(f"{args.folder} is not a folder")
    _, failed = render(args.folder, args.only)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
