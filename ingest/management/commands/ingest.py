"""manage.py ingest PATH... [--collection SLUG] [--sync] [--json]"""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ingest import services
from ingest.components import get_store
from ingest.models import Document
from ingest.tasks import document_ingest_task
from rag.parsing import EXTENSIONS
from rag.store import StoreLocked, StoreUnavailable


class Command(BaseCommand):
    help = "Ingest files or folders (recursed). JSON lines with --json, one per document."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", metavar="PATH")
        parser.add_argument(
            "--collection", default=services.DEFAULT_COLLECTION_SLUG, metavar="SLUG"
        )
        parser.add_argument(
            "--sync", action="store_true", help="process here and wait for the result"
        )
        parser.add_argument(
            "--json", action="store_true", help="print one JSON object per document"
        )

    def handle(self, *args, paths, collection, sync, json: bool, **options):
        files = self._expand(paths)
        if sync:
            try:
                get_store().ensure_collection()
            except (StoreLocked, StoreUnavailable) as exc:
                raise CommandError(str(exc), returncode=1) from exc
        target = services.collection_get_or_create(slug=collection)
        for path in files:
            with path.open("rb") as handle:
                document = services.document_upload(
                    file=handle, name=path.name, collection=target, enqueue=not sync
                )
            if sync and document.status == Document.Status.QUEUED:
                document_ingest_task.apply(args=[document.pk])
                document.refresh_from_db()
            self._report(document, as_json=json)
        if not sync and not json:
            self.stderr.write(
                "Queued: the worker processes them (the running app on the embedded default)."
            )

    def _expand(self, paths: list[str]) -> list[Path]:
        files: list[Path] = []
        for raw in paths:
            path = Path(raw)
            if path.is_dir():
                found = sorted(
                    p for p in path.rglob("*")
                    if p.is_file() and p.suffix.lower() in EXTENSIONS
                    and not any(part.startswith(".") for part in p.relative_to(path).parts)
                )  # fmt: skip
                if not found:
                    self.stderr.write(f"no supported files in {path}")
                files.extend(found)
            elif path.is_file():
                files.append(path)
            else:
                raise CommandError(f"no such file or folder: {raw}", returncode=2)
        return files

    def _report(self, document: Document, *, as_json: bool) -> None:
        record = {
            "id": document.pk,
            "name": document.name,
            "collection": document.collection.slug,
            "status": document.status,
            "pages": document.page_count,
            "chunks": document.chunk_count,
            "error": document.error or None,
        }
        if document.duplicate_of_id:
            record["duplicate_of"] = document.duplicate_of_id
        if as_json:
            self.stdout.write(json.dumps(record, ensure_ascii=False))
            return
        detail = {
            Document.Status.READY: f"{document.page_count or '-'} pages, {document.chunk_count} passages",
            Document.Status.FAILED: document.error,
            Document.Status.DUPLICATE: document.stage,
        }.get(document.status, document.stage)
        self.stdout.write(f"{document.status:<9} #{document.pk} {document.name}: {detail}")
