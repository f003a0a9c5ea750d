"""Load test: locust, headless, against the production-shaped stack on loopback.

Starts, all on 127.0.0.1: a fresh Postgres database (created here, dropped afterwards), Redis
as the broker (db 8 unless --redis-db), the Qdrant stand-in (or --qdrant-url), the fake DeepSeek
with realistic pacing (--first-token 1 s before its first chunk, --tokens-per-s 30 after; no
reasoning, so its own time to the first answer token is first_token + 2/tokens_per_s: the role
chunk and the first word), `uvicorn config.asgi:application --workers N` with the production
settings, and N Celery workers. Migrates, creates an admin and a staff user with API tokens,
ingests --passages passages, then runs locust (bench/locustfile.py): --users askers asking
with "stream": true, one after another, plus one admin uploading a document every
--upload-every seconds, for --duration seconds.

Reports answers/s, errors, p50/p95 time to the first answer token minus the fake model's own,
the most database connections in use (pg_stat_activity, sampled every second), the uploads and
whether their documents were indexed, and `manage.py audit verify` afterwards, with the count of
`answer` audit records against the answers made. One JSON object on stdout (progress on stderr):

    python bench/load.py [--users 50] [--duration 120] [--workers 2] [--celery 1] [--out FILE]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._machine import emit, machine_facts  # noqa: E402
from bench.chat import load_corpus, percentile, quote_source_one  # noqa: E402
from tests.fakes.deepseek import FakeDeepSeek, Scripted  # noqa: E402
from tests.live import free_port  # noqa: E402

BIN = Path(sys.executable).parent
PG = "postgres://postgres@127.0.0.1:5432"


def log(message: str) -> None:
    print(f"[load] {message}", file=sys.stderr, flush=True)


def answer_without_reasoning(request: dict) -> tuple[str, str]:
    """Source [1]'s first sentence, cited (as bench/chat.py), with no reasoning before it."""
    return "", quote_source_one(request)[1]


def run(cmd: list[str], env: dict, *, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}… failed:\n{result.stderr[-3000:]}")
    return result


def manage(env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run([sys.executable, "manage.py", *args], env, check=check)


def start(cmd: list[str], env: dict, log_path: Path) -> subprocess.Popen:
    out = open(log_path, "w")  # noqa: SIM115 (closed with the process, by the OS)
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_http(url: str, process: subprocess.Popen, log_path: Path, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} did not start:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {seconds} s")


class ConnectionSampler(threading.Thread):
    """Counts this database's rows in pg_stat_activity every second; ``max`` is the peak."""

    def __init__(self, database: str) -> None:
        super().__init__(daemon=True)
        self.database = database
        self.samples: list[int] = []
        self.halt = threading.Event()

    def run(self) -> None:
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            while not self.halt.wait(1.0):
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (self.database,)
                ).fetchone()
                self.samples.append(row[0])


def warm_up(url: str, token: str, questions: list[str], workers: int) -> None:
    """Rounds of concurrent questions until one round is fast: every web process has loaded
    its models (the first question in a process pays for them)."""
    for round_ in range(10):
        started = time.perf_counter()

        def ask(question: str) -> int:
            response = httpx.post(
                f"{url}/api/v1/ask",
                json={"question": question},
                headers={"Authorization": f"Bearer {token}"},
                timeout=300,
            )
            return response.status_code

        with ThreadPoolExecutor(max_workers=2 * workers) as pool:
            statuses = list(pool.map(ask, questions[: 2 * workers]))
        seconds = time.perf_counter() - started
        log(f"warm-up round {round_ + 1}: {statuses} in {seconds:.1f} s")
        if seconds < 5 and set(statuses) == {200}:
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--spawn-rate", type=float, default=10)
    parser.add_argument("--duration", type=int, default=120, help="seconds")
    parser.add_argument("--workers", type=int, default=2, help="web processes")
    parser.add_argument("--celery", type=int, default=1, help="Celery worker processes")
    parser.add_argument("--passages", type=int, default=60, help="ingested before the run")
    parser.add_argument("--upload-every", type=float, default=5, help="seconds")
    parser.add_argument("--first-token", type=float, default=1.0, help="the fake model's, s")
    parser.add_argument("--tokens-per-s", type=float, default=30)
    parser.add_argument("--redis-db", type=int, default=8)
    parser.add_argument("--qdrant-url", help="a real Qdrant; default: the stand-in")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    load_before = os.getloadavg()
    stdout = sys.stdout
    sys.stdout = sys.stderr  # only the result goes to stdout

    database = f"loadbench_{os.getpid()}"
    delay = 1 / args.tokens_per_s
    model_first_s = args.first_token + 2 * delay
    texts, questions = load_corpus(args.passages, max(args.passages, 40))
    processes: list[subprocess.Popen] = []
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    try:
        with (
            tempfile.TemporaryDirectory(prefix="bench-load-") as tmp,
            FakeDeepSeek(
                api_key="sk-load",
                default=Scripted(
                    answer_without_reasoning, delay=delay, first_token_delay=args.first_token
                ),
            ) as deepseek,
        ):
            tmp = Path(tmp)
            qdrant_url = args.qdrant_url
            if not qdrant_url:
                port = free_port()
                qdrant_url = f"http://127.0.0.1:{port}"
                standin_log = tmp / "qdrant.log"
                standin = start(
                    [sys.executable, "-m", "tests.qdrant_standin", "--port", str(port)]
                    + ["--path", str(tmp / "qdrant")],
                    os.environ.copy(),
                    standin_log,
                )
                processes.append(standin)
                wait_http(f"{qdrant_url}/collections", standin, standin_log, 60)
            env = {
                key: value
                for key, value in os.environ.items()
                if not key.startswith(("DATABASE_", "CELERY_", "QDRANT_", "DJANGO_"))
            }
            env.update(
                DJANGO_SETTINGS_MODULE="config.settings.production",
                DATABASE_URL=f"{PG}/{database}",
                CELERY_BROKER_URL=f"redis://127.0.0.1:6379/{args.redis_db}",
                QDRANT_URL=qdrant_url,
                EMBEDDED_WORKER="false",
                DEBUG="false",
                ALLOWED_HOSTS="127.0.0.1",
                SECRET_KEY=secrets.token_urlsafe(50),
                SECURE_COOKIES="false",
                DATA_DIR=str(tmp / "data"),
                DEEPSEEK_API_KEY="sk-load",
                DEEPSEEK_BASE_URL=deepseek.base_url,
                ANSWER_CACHE="false",  # every question takes the full path
                HF_HUB_OFFLINE="1",
                TOKENIZERS_PARALLELISM="false",
                LOCAL_LLM_WARM_UP="false",
            )
            log(f"database {database}; migrating")
            manage(env, "migrate", "--noinput")
            manage(env, "users", "create", "loadadmin", "--role", "admin")
            manage(env, "users", "create", "loadasker", "--role", "staff")
            admin_token = manage(env, "users", "token", "loadadmin").stdout.strip()
            ask_token = manage(env, "users", "token", "loadasker").stdout.strip()
            corpus = tmp / "corpus"
            corpus.mkdir()
            for number, text in enumerate(texts):
                (corpus / f"passage-{number:05d}.txt").write_text(text, encoding="utf-8")
            log(f"ingesting {len(texts)} passages")
            manage(env, "ingest", str(corpus), "--sync", "--json")

            for n in range(args.celery):
                processes.append(
                    start(
                        [str(BIN / "celery"), "-A", "config", "worker", "--loglevel=WARNING"]
                        + ["--concurrency=1", "--prefetch-multiplier=1", "-n", f"load{n}@%h"],
                        env,
                        tmp / f"celery-{n}.log",
                    )
                )
            web_port = free_port()
            web_url = f"http://127.0.0.1:{web_port}"
            web_log = tmp / "web.log"
            web = start(
                [str(BIN / "uvicorn"), "config.asgi:application", "--host", "127.0.0.1"]
                + ["--port", str(web_port), "--workers", str(args.workers)]
                + ["--no-access-log", "--timeout-keep-alive", "75"],  # as docker-compose
                env,
                web_log,
            )
            processes.append(web)
            wait_http(f"{web_url}/healthz", web, web_log)
            log("warming up each web process")
            warm_up(web_url, ask_token, questions, args.workers)
            with psycopg.connect(f"{PG}/{database}") as conn:
                answers_before = conn.execute(
                    "SELECT count(*) FROM audit_auditrecord WHERE kind = 'answer'"
                ).fetchone()[0]

            samples_path = tmp / "samples.jsonl"
            questions_path = tmp / "questions.json"
            questions_path.write_text(json.dumps(questions))
            locust_env = dict(
                os.environ,
                LOAD_ASK_TOKEN=ask_token,
                LOAD_ADMIN_TOKEN=admin_token,
                LOAD_QUESTIONS=str(questions_path),
                LOAD_SAMPLES=str(samples_path),
                LOAD_UPLOAD_EVERY=str(args.upload_every),
            )
            sampler = ConnectionSampler(database)
            sampler.start()
            log(f"locust: {args.users} askers + 1 uploader for {args.duration} s")
            started = time.monotonic()
            locust = run(
                [str(BIN / "locust"), "-f", str(ROOT / "bench" / "locustfile.py"), "--headless"]
                + ["-u", str(args.users + 1), "-r", str(args.spawn_rate)]
                + ["-t", f"{args.duration}s", "--host", web_url, "--only-summary"]
                + ["--stop-timeout", "30", "--csv", str(tmp / "locust"), "--loglevel", "WARNING"],
                locust_env,
                check=False,
            )
            seconds = time.monotonic() - started
            sampler.halt.set()
            sampler.join()
            log(f"locust exited {locust.returncode}; waiting for uploads to be indexed")

            samples = [json.loads(line) for line in samples_path.read_text().splitlines()]
            asks = [s for s in samples if s["kind"] == "ask"]
            uploads = [s for s in samples if s["kind"] == "upload"]
            with psycopg.connect(f"{PG}/{database}") as conn:
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    pending = conn.execute(
                        "SELECT count(*) FROM ingest_document WHERE status NOT IN "
                        "('ready', 'failed', 'duplicate')"
                    ).fetchone()[0]
                    if not pending:
                        break
                    time.sleep(1)
                statuses = dict(
                    conn.execute(
                        "SELECT status, count(*) FROM ingest_document GROUP BY status"
                    ).fetchall()
                )
                answer_records = (
                    conn.execute(
                        "SELECT count(*) FROM audit_auditrecord WHERE kind = 'answer'"
                    ).fetchone()[0]
                    - answers_before
                )
            verify = manage(env, "audit", "verify", check=False)

            failures_csv = tmp / "locust_failures.csv"
            failures = list(csv.DictReader(failures_csv.open())) if failures_csv.exists() else []
            ok = [s for s in asks if s["error"] is None]
            errors = [s["error"] for s in asks if s["error"] is not None]
            upload_errors = [s["error"] for s in uploads if s["error"]]
            firsts = [(s["first_s"] - model_first_s) * 1000 for s in ok if s["first_s"]]
            completes = [s["complete_s"] * 1000 for s in ok]
            answered = sum(1 for s in asks if s["done"])
            result = {
                "benchmark": "load: locust against the production-shaped stack on loopback",
                "settings": {
                    "users": args.users,
                    "uploaders": 1,
                    "upload_every_s": args.upload_every,
                    "duration_s": args.duration,
                    "spawn_rate": args.spawn_rate,
                    "web_processes": args.workers,
                    "celery_workers": args.celery,
                    "passages": len(texts),
                    "vector_store": "qdrant stand-in" if not args.qdrant_url else "qdrant",
                    "fake_model": {
                        "first_token_s": args.first_token,
                        "tokens_per_s": args.tokens_per_s,
                        "own_time_to_first_answer_token_ms": round(model_first_s * 1000, 1),
                    },
                    "answer_cache": False,
                },
                "results": {
                    "seconds": round(seconds, 1),
                    "answers": len(ok),
                    "answers_per_s": round(len(ok) / seconds, 2),
                    "errors": len(errors) + len(upload_errors),
                    "error_samples": sorted(set(errors + upload_errors))[:5],
                    "first_token_overhead_ms": {
                        "p50": percentile(firsts, 0.5),
                        "p95": percentile(firsts, 0.95),
                    }
                    if firsts
                    else None,
                    "complete_ms": {
                        "p50": percentile(completes, 0.5),
                        "p95": percentile(completes, 0.95),
                    }
                    if completes
                    else None,
                    "db_connections_max": max(sampler.samples, default=None),
                    "db_connections_samples": len(sampler.samples),
                    "uploads": len(uploads),
                    "documents_by_status": statuses,
                    "audit_verify": {
                        "ok": verify.returncode == 0,
                        "output": (verify.stdout + verify.stderr).strip()[-500:],
                    },
                    "answer_audit_records": answer_records,
                    "answers_with_done": answered,
                    "one_record_per_answer": answer_records == answered,
                    "locust_exit": locust.returncode,
                    "locust_failures": failures,
                    "locust_stderr": locust.stderr.strip()[-800:] if locust.returncode else "",
                },
                # This (client) process's facts; the stack ran in child processes on the same
                # machine, locust included.
                "machine": machine_facts(load_before),
            }
            for process in reversed(processes):
                stop(process)
            processes.clear()
            emit(result, stdout=stdout, out=args.out)
    finally:
        for process in reversed(processes):
            stop(process, signal.SIGKILL)
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


if __name__ == "__main__":
    main()
