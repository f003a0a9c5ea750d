"""manage.py ingest PATH... [--collection SLUG] [--sync] [--json]
manage.py ingest --reindex [--outdated] [--collection SLUG] [--sync] [--json]

--reindex parses, chunks and indexes again the documents already uploaded (of one collection, or
all): what a new version of the parser or chunker changes reaches them this way. --outdated
keeps to the documents indexed by another chunker version."""

import json
from collections.abc import Iterator
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ingest import services
from ingest.components import get_store
from ingest.models import Collection, Document
from ingest.tasks import document_ingest_task
from rag.parsing import EXTENSIONS
from rag.store import StoreLocked, StoreUnavailable


class Command(BaseCommand):
    help = "Ingest files or folders (recursed). JSON lines with --json, one per document."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="*", metavar="PATH")
        parser.add_argument(
            "--collection",
            metavar="SLUG",
            help=f"default: {services.DEFAULT_COLLECTION_SLUG} (with --reindex: every collection)",
        )
        parser.add_argument(
            "--reindex",
            action="store_true",
            help="re-index the documents already uploaded instead of adding files",
        )
        parser.add_argument(
            "--outdated",
            action="store_true",
            help="with --reindex: only documents indexed by an older chunker version",
        )
        parser.add_argument(
            "--sync", action="store_true", help="process here and wait for the result"
        )
        parser.add_argument(
            "--json", action="store_true", help="print one JSON object per document"
        )

    def handle(self, *args, paths, collection, sync, json: bool, reindex, outdated, **options):
        if reindex and paths:
            raise CommandError(
                "--reindex takes no PATH: it re-reads the uploaded originals", returncode=2
            )
        if not reindex and not paths:
            raise CommandError("give at least one PATH (or --reindex)", returncode=2)
        if outdated and not reindex:
            raise CommandError("--outdated goes with --reindex", returncode=2)
        files = self._expand(paths)
        if sync:
            try:
                get_store().ensure_collection()
            except (StoreLocked, StoreUnavailable) as exc:
                raise CommandError(str(exc), returncode=1) from exc
        if reindex:
            documents = self._reindex(collection, outdated=outdated, sync=sync)
        else:
            target = services.collection_get_or_create(
                slug=collection or services.DEFAULT_COLLECTION_SLUG
            )
            documents = self._upload(files, target, sync=sync)
        for document in documents:
            if sync and document.status == Document.Status.QUEUED:
                document_ingest_task.apply(args=[document.pk])
                document.refresh_from_db()
            self._report(document, as_json=json)
        if not sync and not json:
            self.stderr.write(
                "Queued: the worker processes them (the running app on the embedded default)."
            )

    def _upload(self, files: list[Path], target, *, sync: bool) -> Iterator[Document]:
        for path in files:
            with path.open("rb") as handle:
                yield services.document_upload(
                    file=handle, name=path.name, collection=target, enqueue=not sync
                )

    def _reindex(self, slug: str | None, *, outdated: bool, sync: bool) -> list[Document]:
        target = None
        if slug is not None:
            target = Collection.objects.filter(slug=slug).first()
            if target is None:
                raise CommandError(f"no collection {slug!r}", returncode=2)
        # With --sync this process does the work: nothing is handed to a worker.
        documents = services.documents_reindex(
            collection=target, outdated_only=outdated, enqueue=not sync
        )
        if not documents:
            self.stderr.write("nothing to re-index")
        return documents

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
