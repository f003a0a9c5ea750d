"""manage.py search "QUERY" [--collection SLUG] [-k 10] [--json] | --batch FILE"""

import json
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ingest.components import get_retriever
from rag.store import StoreLocked, StoreUnavailable


def result_json(rank: int, hit) -> dict:
    return {
        "rank": rank,
        "chunk_id": hit.chunk_id,
        "document_id": int(hit.document_id) if hit.document_id.isdigit() else hit.document_id,
        "document": hit.document_name,
        "page": hit.page,
        "score": round(hit.score, 6),
        "text": hit.text,
        "section": list(hit.heading_path),
        "kind": hit.kind,
    }


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
        retriever = get_retriever()
        try:
            retriever.warm_up()  # load the model before the clock starts: latency is per query
            if batch:
                self._batch(retriever, batch, k, collections)
            else:
                self._single(retriever, query, k, collections, as_json=json)
        except (StoreLocked, StoreUnavailable) as exc:
            raise CommandError(str(exc), returncode=1) from exc

    def _single(self, retriever, query, k, collections, *, as_json: bool) -> None:
        started = time.perf_counter()
        hits = retriever.search(query, k=k, collections=collections)
        latency_ms = round((time.perf_counter() - started) * 1000, 1)
        results = [result_json(rank, hit) for rank, hit in enumerate(hits, 1)]
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

    def _batch(self, retriever, path, k, collections) -> None:
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
                hits = retriever.search(query, k=k, collections=collections)
                results = [result_json(rank, hit) for rank, hit in enumerate(hits, 1)]
                self.stdout.write(
                    json.dumps({"id": query_id, "results": results}, ensure_ascii=False)
                )
