"""The app on a throwaway embedded default, for benchmarks that drive it in-process
(bench/ingest.py, bench/baseline.py). No Django at import time."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


def set_up_embedded_app(data_dir: Path) -> None:
    """SQLite and the embedded Qdrant engine under ``data_dir`` with ``config.settings.local``, migrated;
    DATABASE_URL, QDRANT_URL and CELERY_BROKER_URL are ignored. Exits 2 if the settings still
    point elsewhere (a ``.env`` that sets them)."""
    os.environ["DATA_DIR"] = str(data_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
    for name in ("DATABASE_URL", "QDRANT_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)

    import django

    django.setup()

    from django.conf import settings

    database = settings.DATABASES["default"]
    store_path = settings.RAG_VECTOR_STORE["OPTIONS"].get("path") or ""
    if (
        database["ENGINE"] != "django.db.backends.sqlite3"
        or not str(database["NAME"]).startswith(str(data_dir))
        or not store_path.startswith(str(data_dir))
    ):
        print(
            "error: the benchmark needs the embedded default (SQLite and the embedded store under "
            f"its temporary DATA_DIR), got database {database['NAME']!r} and store "
            f"{store_path or settings.QDRANT_URL!r}; is DATABASE_URL or QDRANT_URL set in .env?",
            file=sys.stderr,
        )
        raise SystemExit(2)

    from django.core.management import call_command

    call_command("migrate", verbosity=0)


@dataclass
class Ingested:
    """Documents uploaded then ingested one after the other, with the clock readings."""

    rows: list  # the Document rows afterwards, by id
    started: float
    uploaded: float
    finished: float

    @property
    def failed(self) -> list[str]:
        return [f"{r.name}: {r.status} {r.error}" for r in self.rows if r.status != "ready"]


def upload_and_ingest(
    paths: list[Path],
    collection,
    *,
    log: Callable[[str], None],
    every: int,
    profile: Path | None = None,
) -> Ingested:
    """``document_upload`` for every file, then ``document_ingest`` for every document, in this
    process, timed as a whole (and profiled into ``profile`` when given); progress every
    ``every`` documents."""
    from ingest import services
    from ingest.models import Document

    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
    documents = []
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    for path in paths:
        with path.open("rb") as handle:
            documents.append(
                services.document_upload(
                    file=handle, name=path.name, collection=collection, enqueue=False
                )
            )
    uploaded = time.perf_counter()
    for number, document in enumerate(documents, start=1):
        services.document_ingest(document_id=document.id)
        if number % every == 0 or number == len(documents):
            elapsed = time.perf_counter() - started
            log(f"ingested {number}/{len(documents)} documents in {elapsed:.1f}s")
    finished = time.perf_counter()
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)
        log(f"profile of the timed section written to {profile}")
    rows = list(Document.objects.filter(pk__in=[d.id for d in documents]).order_by("id"))
    return Ingested(rows=rows, started=started, uploaded=uploaded, finished=finished)
