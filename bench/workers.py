"""Ingestion throughput with 1, then 2, Celery worker processes sharing one broker and store.

Starts, all on 127.0.0.1: a fresh Postgres database (created here, dropped afterwards), Redis as
the broker (db 9 unless --redis-db), the Qdrant stand-in, and for each worker count a set of
`celery -A config worker --pool=solo` processes with the production settings and one originals
folder (DATA_DIR/uploads, shared: this measures workers, not storage). Each round warms up first
(every worker finishes one document, so each has loaded its embedding model), then uploads
--documents small text documents (a few sentences each, into a collection of their own) and
times them from the first upload to the last document ready.

One JSON object on stdout (progress on stderr), with one entry per worker count: documents,
chunks, seconds, chunks_per_s and docs_per_s, and the machine facts:

    python bench/workers.py [--documents 200] [--workers 1 2] [--out FILE]

Needs Postgres (postgres@127.0.0.1:5432) and Redis (127.0.0.1:6379), which `make bench` does not
assume: it is run by hand.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._machine import emit, machine_facts  # noqa: E402
from tests.live import celery_worker_command, free_port  # noqa: E402

PG = "postgres://postgres@127.0.0.1:5432"
SUCCEEDED = re.compile(r"Task ingest\.document_ingest\[[^\]]+\] succeeded")


def log(message: str) -> None:
    print(f"[workers] {message}", file=sys.stderr, flush=True)


def text(i: int) -> bytes:
    """A small document of its own (distinct bytes: no duplicates), one or two passages."""
    return (
        f"Site note {i}. The spare parts for line {i} are kept in cabinet {i % 17} of store "
        f"room {i % 5}. Before taking a part, write its number and the date in the log book "
        f"beside the cabinet; the stock of line {i} is counted on the first Monday of the month, "
        f"and anything below the minimum in table {i % 11} is ordered the same day."
    ).encode()


def start(cmd: list[str], env: dict, log_path: Path) -> subprocess.Popen:
    out = open(log_path, "w")  # noqa: SIM115 (closed with the process, by the OS)
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 60) -> None:
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def wait_http(url: str, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} did not start")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {seconds} s")


def succeeded(log_path: Path) -> int:
    return len(SUCCEEDED.findall(log_path.read_text()))


def wait_finished(ids: list[int], workers: list[subprocess.Popen], seconds: float) -> None:
    from ingest.models import Document

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not Document.objects.filter(pk__in=ids).exclude(status__in=Document.FINISHED).exists():
            return
        if any(worker.poll() is not None for worker in workers):
            raise RuntimeError("a worker died")
        time.sleep(0.2)
    raise RuntimeError(f"documents not finished within {seconds} s")


def run_round(count: int, documents: int, env: dict, tmp: Path) -> dict:
    from ingest import services
    from ingest.models import Document

    def upload(data: bytes, name: str, collection) -> int:
        document = services.document_upload(file=io.BytesIO(data), name=name, collection=collection)
        return document.pk

    logs = [tmp / f"worker-{count}-{n}.log" for n in range(count)]
    workers = [
        start(celery_worker_command(f"bench-{count}-{n}"), env, path) for n, path in enumerate(logs)
    ]
    try:
        deadline = time.monotonic() + 300
        while not all(" ready." in path.read_text() for path in logs):
            if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
                raise RuntimeError("workers did not start")
            time.sleep(0.3)
        # warm-up: every worker finishes one document (and so loads its model)
        warm = services.collection_get_or_create(slug=f"warm-{count}")
        warm_ids: list[int] = []
        while min(succeeded(path) for path in logs) == 0:
            if time.monotonic() > deadline:
                raise RuntimeError("warm-up did not reach every worker")
            if len(warm_ids) < 4 * count and len(warm_ids) <= sum(map(succeeded, logs)) + count:
                warm_ids.append(upload(text(100_000 + len(warm_ids)), "warm.txt", warm))
            time.sleep(0.3)
        wait_finished(warm_ids, workers, 300)
        log(f"{count} worker(s) warm; ingesting {documents} documents")

        collection = services.collection_get_or_create(slug=f"round-{count}")
        started = time.monotonic()
        ids = [upload(text(i), f"note-{i}.txt", collection) for i in range(documents)]
        uploaded = time.monotonic() - started
        wait_finished(ids, workers, 1800)
        seconds = time.monotonic() - started
    finally:
        for worker in workers:
            stop(worker)
    rows = list(Document.objects.filter(pk__in=ids))
    failed = [f"{r.name}: {r.status} {r.error}" for r in rows if r.status != "ready"]
    chunks = sum(r.chunk_count for r in rows)
    result = {
        "workers": count,
        "documents": documents,
        "chunks": chunks,
        "seconds": round(seconds, 2),
        "upload_seconds": round(uploaded, 2),
        "chunks_per_s": round(chunks / seconds, 2),
        "docs_per_s": round(documents / seconds, 2),
        "failed": failed[:5],
        "started_more_than_once": sum(r.attempts != 1 for r in rows),
    }
    log(str(result))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=200)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--embedding-threads", type=int, default=0, help="per worker; 0: torch's")
    parser.add_argument("--redis-db", type=int, default=9)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    load_before = os.getloadavg()
    stdout = sys.stdout
    sys.stdout = sys.stderr  # only the result goes to stdout

    database = f"workersbench_{os.getpid()}"
    broker = f"redis://127.0.0.1:6379/{args.redis_db}"
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    standin = None
    try:
        with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
            tmp = Path(tmp)
            port = free_port()
            qdrant_url = f"http://127.0.0.1:{port}"
            standin = start(
                [sys.executable, "-m", "tests.qdrant_standin", "--port", str(port)]
                + ["--path", str(tmp / "qdrant")],
                os.environ.copy(),
                tmp / "qdrant.log",
            )
            wait_http(f"{qdrant_url}/collections", standin)
            env = {
                key: value
                for key, value in os.environ.items()
                if not key.startswith(("DATABASE_", "CELERY_", "QDRANT_", "DJANGO_", "S3_"))
                and key != "STORAGE_BACKEND"
            }
            env.update(
                DJANGO_SETTINGS_MODULE="config.settings.production",
                DATABASE_URL=f"{PG}/{database}",
                CELERY_BROKER_URL=broker,
                QDRANT_URL=qdrant_url,
                EMBEDDED_WORKER="false",
                DEBUG="false",
                ALLOWED_HOSTS="127.0.0.1",
                SECRET_KEY=secrets.token_urlsafe(50),
                SECURE_COOKIES="false",
                DATA_DIR=str(tmp / "data"),
                HF_HUB_OFFLINE="1",
                TOKENIZERS_PARALLELISM="false",
            )
            if args.embedding_threads:
                env["EMBEDDING_THREADS"] = str(args.embedding_threads)
            (tmp / "data").mkdir()
            os.environ.update(env)  # this process uploads: the same settings

            import django

            django.setup()
            from django.core.management import call_command

            from config.celery import app as celery_app

            call_command("migrate", verbosity=0)
            celery_app.control.purge()
            rounds = [run_round(n, args.documents, env, tmp) for n in args.workers]
            result = {
                "benchmark": "workers",
                "broker": "redis",
                "store": "qdrant stand-in (tests/qdrant_standin.py, one process)",
                "embedding_threads": args.embedding_threads or None,
                "rounds": rounds,
                "machine": machine_facts(load_before),
            }
            stop(standin)
            emit(result, stdout=stdout, out=args.out)
    finally:
        if standin is not None:
            stop(standin, signal.SIGKILL)
        from django.db import connections

        connections.close_all()
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


if __name__ == "__main__":
    main()
