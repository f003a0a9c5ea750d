"""manage.py ingest PATH... [--collection SLUG] [--sync] [--json]
manage.py ingest --reindex [--outdated] [--collection SLUG] [--sync] [--json]

--reindex parses, chunks and indexes again the documents already uploaded (of one collection, or
all): what a new version of the parser or chunker changes reaches them this way. --outdated
keeps to the documents indexed by another chunker version.

While the app serves the same DATA_DIR and holds the embedded store (ingest.serving), the files
are uploaded through its API and its worker processes them (--sync waits for it): the same
output and exit codes either way."""

import json
from collections.abc import Iterator
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from accounts.services import operator_user_get
from ingest import selectors, services, serving
from ingest.models import Collection, Document
from ingest.tasks import document_ingest_task
from ingest.uploads import file_limit
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
        try:
            app = serving.locate(store_needed=sync)
            if app is not None:  # the serving app holds the store: its worker does the work
                documents = self._through(app, files, collection, reindex, outdated, sync=sync)
            elif reindex:
                documents = self._reindex(collection, outdated=outdated, sync=sync)
            else:
                target = services.collection_get_or_create(
                    slug=collection or services.DEFAULT_COLLECTION_SLUG
                )
                documents = self._upload(files, target, sync=sync)
            for document in documents:
                self._report(document, as_json=json)
        except (StoreLocked, StoreUnavailable, serving.AppError) as exc:
            raise CommandError(str(exc), returncode=1) from exc
        if not sync and not json:
            self.stderr.write(
                "Queued: the worker processes them (the running app on the embedded default)."
            )

    def _upload(self, files: list[Path], target, *, sync: bool) -> Iterator[dict]:
        for path in files:
            with path.open("rb") as handle:
                document = services.document_upload(
                    file=handle, name=path.name, collection=target, enqueue=not sync
                )
            yield self._processed(document) if sync else selectors.document_json(document)

    def _processed(self, document: Document) -> dict:
        """Run the ingestion task here (--sync) if the document still needs it."""
        if document.status == Document.Status.QUEUED:
            document_ingest_task.apply(args=[document.pk])
            document.refresh_from_db()
        return selectors.document_json(document)

    def _reindex(self, slug: str | None, *, outdated: bool, sync: bool) -> Iterator[dict]:
        # With --sync this process does the work: nothing is handed to a worker.
        documents = services.documents_reindex(
            collection=self._collection(slug), outdated_only=outdated, enqueue=not sync
        )
        if not documents:
            self.stderr.write("nothing to re-index")
        for document in documents:
            yield self._processed(document) if sync else selectors.document_json(document)

    def _through(
        self, app, files: list[Path], slug: str | None, reindex: bool, outdated: bool, *, sync
    ) -> Iterator[dict]:
        """Upload (or re-index) through the running app, then with --sync wait for its worker."""
        if sync and not app.worker:
            # nothing would process them while we wait: say so before anything is sent
            raise serving.AppError(
                "the app serving this DATA_DIR runs without its worker (serve --no-worker), so "
                "--sync would wait forever; nothing was sent. Leave out --sync to queue the "
                "files for a worker, or restart the app with its worker"
            )
        client = serving.AppClient(app, user=operator_user_get(), notify=self.stderr.write)
        if reindex:
            chosen = selectors.documents_reindexable(
                collection=self._collection(slug), outdated_only=outdated
            )
            queued = [client.reindex(document.pk) for document in chosen]
            if not queued:
                self.stderr.write("nothing to re-index")
        else:
            # Created here as it would be without the app (the API takes existing ones only).
            target = services.collection_get_or_create(
                slug=slug or services.DEFAULT_COLLECTION_SLUG
            )
            queued = [self._send(client, path, target) for path in files]
        for document in queued:
            yield client.wait(document["id"]) if sync else document

    def _send(self, client: serving.AppClient, path: Path, target: Collection) -> dict:
        if path.stat().st_size > file_limit():
            # The app refuses it at the door, storing nothing; here it is recorded as failed
            # with the reason, as without the app (its bytes are not read).
            with path.open("rb") as handle:
                document = services.document_upload(
                    file=handle, name=path.name, collection=target, enqueue=False
                )
            return selectors.document_json(document)
        return client.upload(path, collection=target.slug)

    def _collection(self, slug: str | None) -> Collection | None:
        if slug is None:
            return None
        target = Collection.objects.filter(slug=slug).first()
        if target is None:
            raise CommandError(f"no collection {slug!r}", returncode=2)
        return target

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

    def _report(self, document: dict, *, as_json: bool) -> None:
        """``document``: the API's document JSON (selectors.document_json), from here or the app."""
        record = {
            "id": document["id"],
            "name": document["name"],
            "collection": document["collection"],
            "status": document["status"],
            "pages": document["pages"],
            "chunks": document["chunks"],
            "error": document["error"] or None,
        }
        if document.get("duplicate_of"):
            record["duplicate_of"] = document["duplicate_of"]
        if as_json:
            self.stdout.write(json.dumps(record, ensure_ascii=False))
            return
        detail = {
            Document.Status.READY: f"{document['pages'] or '-'} pages, {document['chunks']} passages",
            Document.Status.FAILED: document["error"],
            Document.Status.DUPLICATE: document["stage"],
        }.get(document["status"], document["stage"])
        self.stdout.write(f"{document['status']:<9} #{document['id']} {document['name']}: {detail}")
