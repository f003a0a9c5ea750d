"""Documents page benchmark: what one page of the Documents list costs with 10, 1,000 and
10,000 documents (issue 13: "1,000+ documents stays fast: one query per page, no per-row
queries").

Sets up the embedded default (SQLite) in a temporary DATA_DIR, inserts rows of every kind the
page shows (ready with measured throughput, queued with a queue place and an estimate,
processing, failed, duplicates), then asks for the first page, a middle page and filtered pages,
as the admin's browser does: the HTML page (/documents/) and the JSON the page polls
(/api/v1/documents?page=N). Prints one JSON object on stdout (progress on stderr):

    python bench/documents.py [--sizes 10,1000,10000] [--repeat 15] [--out FILE]

Per size and request: `queries` (SQL statements for the request: the same at every size
once the page is full, when nothing is queried per row; a page showing queued documents
adds two) and `p50_ms` / `p95_ms` over `--repeat` runs, in-process (Django's test
client: no network, no browser rendering).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._app import set_up_embedded_app  # noqa: E402
from bench._machine import machine_facts  # noqa: E402


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def fill(total: int, *, admin, collections) -> None:
    """Grow the table to ``total`` rows: of every 10, 6 ready (measured), 2 queued, 1 embedding,
    1 failed; every 20th ready row has a duplicate pointing to it."""
    from django.utils import timezone

    from ingest.models import Document

    start = Document.objects.count()
    now = timezone.now()
    kinds = ["ready"] * 6 + ["queued", "queued", "embedding", "failed"]
    rows = []
    for i in range(start, total):
        status = kinds[i % 10]
        rows.append(
            Document(
                name=f"report-{i:06d}.pdf",
                collection=collections[i % len(collections)],
                uploaded_by=admin,
                size=50_000 + (i * 37) % 900_000,
                sha256=f"{i:064x}",
                file=f"{i % 256:02x}/{i:064x}.pdf",
                status=status,
                stage="" if status == "ready" else status,
                progress=40 if status == "embedding" else 0,
                page_count=12 if status == "ready" else None,
                chunk_count=80 if status == "ready" else None,
                error="not a PDF: the file starts with '<html>'" if status == "failed" else "",
                started_at=now - timedelta(seconds=30) if status == "ready" else None,
                finished_at=now if status == "ready" else None,
            )
        )
    Document.objects.bulk_create(rows, batch_size=2000)
    originals = list(
        Document.objects.filter(status="ready", duplicate_of=None)
        .order_by("pk")
        .values_list("pk", "collection_id")[start // 20 : total // 20 : 1]
    )
    Document.objects.bulk_create(
        [
            Document(
                name=f"copy-of-{pk}.pdf",
                collection_id=collection_id,
                uploaded_by=admin,
                size=1000,
                sha256=f"{pk:064x}",
                status="duplicate",
                duplicate_of_id=pk,
            )
            for pk, collection_id in originals[: max(0, total // 20 - start // 20)]
        ],
        batch_size=2000,
    )


def measure(client, path: str, params: dict, repeat: int) -> dict:
    from django.db import connection

    statements = []

    def count(execute, sql, params_, many, context):
        statements.append(sql)
        return execute(sql, params_, many, context)

    with connection.execute_wrapper(count):
        response = client.get(path, params)
    if response.status_code != 200:
        raise SystemExit(f"{path} {params} answered {response.status_code}")
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        client.get(path, params)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {
        "queries": len(statements),
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[min(len(times) - 1, int(len(times) * 0.95))], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,1000,10000")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--out")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-documents-") as tmp:
        set_up_embedded_app(Path(tmp) / "data")
        from django.core.signals import request_finished, request_started
        from django.db import close_old_connections
        from django.test import Client

        # as Django's TestCase does: one connection for the run, so its queries can be counted
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)

        from accounts import roles
        from accounts.services import user_create
        from ingest import services

        admin, _ = user_create(
            username="bench-admin", roles_=(roles.ADMIN, roles.STAFF), password="bench-pass"
        )
        collections = [
            services.collection_get_or_create(slug=slug) for slug in ("general", "legal", "hr")
        ]
        client = Client(HTTP_HOST="127.0.0.1")  # as `make run` serves it
        client.force_login(admin)
        requests = {
            "page_html_first": ("/documents/", {}),
            "api_first_page": ("/api/v1/documents", {"page": 1}),
            "api_middle_page": ("/api/v1/documents", {"page": 0}),  # set per size below
            "api_filter_status": ("/api/v1/documents", {"page": 1, "status": "failed"}),
            "api_filter_name": ("/api/v1/documents", {"page": 1, "q": "report-0000"}),
            "api_filter_collection": ("/api/v1/documents", {"page": 1, "collection": "legal"}),
        }
        results = []
        for size in sizes:
            fill(size, admin=admin, collections=collections)
            log(f"{size} documents")
            row = {"documents": size, "requests": {}}
            for name, (path, params) in requests.items():
                if name == "api_middle_page":
                    params = {"page": max(1, size // 50 // 2)}
                row["requests"][name] = measure(client, path, params, args.repeat)
            results.append(row)
            log(json.dumps(row))

    # from the second size on, every page is full: its queries must not grow with the table
    first, last = results[min(1, len(results) - 1)]["requests"], results[-1]["requests"]
    output = {
        "benchmark": "documents",
        "machine": machine_facts(load_before=load_before),
        "repeat": args.repeat,
        "results": results,
        # (a page with queued documents on it adds two: their queue places and the throughput)
        "queries_do_not_grow_with_the_table": all(
            last[name]["queries"] <= first[name]["queries"] for name in first
        ),
    }
    text = json.dumps(output, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
