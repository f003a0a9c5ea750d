"""manage.py search "QUERY" [--collection SLUG] [-k 10] [--json] | --batch FILE

Searches the store here, or through the running app when it holds the embedded store
(ingest.serving): the same output and exit codes either way."""

import json
import sys
from collections.abc import Callable

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.services import operator_user_get
from core.components import get_retriever
from ingest import serving
from ingest.selectors import passages_search
from rag.store import StoreLocked, StoreUnavailable

# query -> (results in the JSON shape, latency in ms)
Search = Callable[[str], tuple[list[dict], float]]


class Command(BaseCommand):
    help = "Search indexed passages (hybrid: dense + BM25, fused by reciprocal rank)."

    def add_arguments(self, parser):
        parser.add_argument("query", nargs="?", help="the query (or use --batch)")
        parser.add_argument(
            "--batch", metavar="FILE", help='JSON lines {"id", "query"}; "-" for stdin'
        )
        parser.add_argument("--collection", metavar="SLUG")
        parser.add_argument("-k", type=int, default=settings.SEARCH_TOP_K)
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, query, batch, collection, k, json: bool, **options):
        if bool(query) == bool(batch):
            raise CommandError("give a QUERY or --batch FILE (not both)", returncode=2)
        if k < 1:
            raise CommandError("-k must be at least 1", returncode=2)
        collections = [collection] if collection else None
        try:
            search = self._searcher(k, collections)
            if batch:
                self._batch(search, batch)
            else:
                self._single(search, query, as_json=json)
        except (StoreLocked, StoreUnavailable, serving.AppError) as exc:
            code = 2 if getattr(exc, "status", None) == 400 else 1
            raise CommandError(str(exc), returncode=code) from exc

    def _searcher(self, k: int, collections: list[str] | None) -> Search:
        app = serving.locate()
        if app is not None:  # the serving app holds the store: it searches
            client = serving.AppClient(app, user=operator_user_get(), notify=self.stderr.write)

            def remote(query: str) -> tuple[list[dict], float]:
                found = client.search(query, k=k, collections=collections)
                return found["results"], found["latency_ms"]

            return remote
        get_retriever().warm_up()  # load the model before the clock starts: latency is per query

        def local(query: str) -> tuple[list[dict], float]:
            found = passages_search(query=query, k=k, collections=collections)
            return found["results"], found["latency_ms"]

        return local

    def _single(self, search: Search, query: str, *, as_json: bool) -> None:
        results, latency_ms = search(query)
        if as_json:
            self.stdout.write(
                json.dumps({"results": results, "latency_ms": latency_ms}, ensure_ascii=False)
            )
            return
        for r in results:
            page = f" p.{r['page']}" if r["page"] else ""
            section = f" — {' › '.join(r['section'])}" if r["section"] else ""
            contents = " (contents/index page)" if r["kind"] == "navigation" else ""
            text = " ".join(r["text"].split())
            self.stdout.write(
                f"{r['rank']:>2}. {r['score']:.3f}  {r['document']}{page}{section}{contents}\n"
                f"    {text[:200]}"
            )
        self.stderr.write(f"{len(results)} results in {latency_ms} ms")

    def _batch(self, search: Search, path: str) -> None:
        try:
            lines = sys.stdin if path == "-" else open(path, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc}", returncode=2) from exc
        with lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                    query_id, query = item.get("id", number), item["query"]
                    if not isinstance(query, str):
                        raise TypeError("query must be a string")
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    self.stdout.write(
                        json.dumps({"id": None, "line": number, "error": f"bad line: {exc}"})
                    )
                    continue
                results, _ = search(query)
                self.stdout.write(
                    json.dumps({"id": query_id, "results": results}, ensure_ascii=False)
                )
