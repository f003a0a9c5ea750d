"""Settings: `.env.example` stays complete, production refuses unsafe or missing configuration,
and the production path works against the real Postgres and Redis of this machine."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_DIR = ROOT / "config" / "settings"
READ = re.compile(
    r"""(?:env\.(?:str|int|bool|float|list|db)|_set|_set_int)\(\s*["']([A-Z][A-Z0-9_]*)["']"""
)


def settings_read() -> set[str]:
    return {name for path in SETTINGS_DIR.glob("*.py") for name in READ.findall(path.read_text())}


def example_lists() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    listed = {}
    for number, line in enumerate(lines):
        if match := re.match(r"([A-Z][A-Z0-9_]*)=(.*)", line):
            listed[match.group(1)] = lines[number - 1]
    return listed


def test_env_example_lists_every_setting_with_a_comment():
    listed = example_lists()
    read = settings_read()
    assert len(read) > 25  # the scan itself works
    assert read - set(listed) == set(), "settings read but missing from .env.example"
    assert set(listed) - read == set(), ".env.example lists settings nothing reads"
    uncommented = [name for name, previous in listed.items() if not previous.startswith("#")]
    assert uncommented == []


def test_contract_settings_are_all_read():
    """The settings ARCHITECTURE.md promises, by name."""
    contract = {
        "DATA_DIR", "DATABASE_URL", "CELERY_BROKER_URL", "QDRANT_URL", "DEEPSEEK_API_KEY",
        "DEEPSEEK_BASE_URL", "DEEPSEEK_MODEL", "LLM_BASE_URL", "LLM_MODEL", "SECRET_KEY",
        "ALLOWED_HOSTS", "DEBUG",
    }  # fmt: skip
    assert contract <= settings_read()


def production_env(tmp_path, **overrides) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL", "CELERY_BROKER_URL"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        SECRET_KEY=secrets.token_urlsafe(50),
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/test",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/14",
        QDRANT_URL="http://127.0.0.1:6333",
        ALLOWED_HOSTS="rag.example.org",
        DATA_DIR=str(tmp_path),
    )
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


SETUP = "import django; django.setup()\n"


@pytest.mark.parametrize(
    "missing", ["SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL", "QDRANT_URL", "ALLOWED_HOSTS"]
)
@pytest.mark.parametrize("how", ["unset", "empty"])
def test_production_refuses_to_start_without(tmp_path, missing, how):
    env = production_env(tmp_path, **{missing: None if how == "unset" else ""})
    result = run_python(SETUP, env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and missing in result.stderr


@pytest.mark.parametrize("key", ["short", "insecure-local-only-key-change-me-in-production-xx"])
def test_production_refuses_a_weak_secret_key(tmp_path, key):
    result = run_python(SETUP, production_env(tmp_path, SECRET_KEY=key))
    assert result.returncode != 0 and "SECRET_KEY is too short" in result.stderr


def test_production_reads_a_dot_env_file_before_checking(tmp_path):
    """A deployment may keep its settings in .env instead of the process environment."""
    code = SETUP + (
        "from django.conf import settings\n"
        "print(settings.DATABASES['default']['ENGINE'], settings.DEBUG)\n"
    )
    env = production_env(tmp_path, SECRET_KEY=None)
    dot_env = ROOT / ".env"
    if dot_env.exists():
        pytest.skip("a developer's own .env is present")
    dot_env.write_text(f"SECRET_KEY={secrets.token_urlsafe(50)}\n")
    try:
        result = run_python(code, env)
    finally:
        dot_env.unlink()
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.postgresql", "False"]


def test_production_settings_reach_the_real_postgres_and_redis(tmp_path):
    code = SETUP + (
        "from django.conf import settings\n"
        "from django.db import connection\n"
        "from config.celery import app\n"
        "connection.ensure_connection()\n"
        "print(connection.vendor)\n"
        "with app.connection_for_write() as broker:\n"
        "    broker.ensure_connection(max_retries=1)\n"
        "    print(broker.transport_cls)\n"
        "print(settings.EMBEDDED_WORKER, settings.RAG_VECTOR_STORE['OPTIONS']['url'],\n"
        "      settings.RAG_VECTOR_STORE['OPTIONS']['path'], settings.SESSION_COOKIE_SECURE)\n"
    )
    result = run_python(code, production_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "postgresql",
        "redis",
        "False",
        "http://127.0.0.1:6333",
        "None",
        "True",
    ]


def test_production_passes_the_deployment_checklist(tmp_path):
    env = production_env(
        tmp_path,
        SECURE_SSL_REDIRECT="true",
        SECURE_HSTS_SECONDS="31536000",
        SECURE_HSTS_PRELOAD="true",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_docker_compose_configures_every_service_from_the_environment():
    """docker compose cannot run here (no engine): check the file says what production needs."""
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "qdrant", "web", "worker"} <= set(services)
    assert services["qdrant"]["image"].startswith("qdrant/qdrant")
    for name in ("web", "worker"):
        environment = services[name]["environment"]
        assert environment["DJANGO_SETTINGS_MODULE"] == "config.settings.production"
        for key in ("DATABASE_URL", "CELERY_BROKER_URL", "QDRANT_URL"):
            assert key in environment
        # originals in a bucket, not on a disk the web and the workers would have to share
        assert environment["STORAGE_BACKEND"] == "${STORAGE_BACKEND:-s3}"
        assert environment["S3_ENDPOINT_URL"] == "${S3_ENDPOINT_URL:-http://minio:9000}"
        assert services[name]["depends_on"]["bucket"] == {
            "condition": "service_completed_successfully"
        }
    assert "celery" in services["worker"]["command"]
    assert services["minio"]["image"].startswith("minio/minio:RELEASE.")  # pinned
    assert "mc mb --ignore-existing" in services["bucket"]["entrypoint"][-1]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "torch==2.13.0" in dockerfile and "requirements.txt" in dockerfile


def test_docker_compose_web_runs_uvicorn_workers_and_probes_readyz():
    """Several uvicorn processes, and a health check on /readyz from inside the container that
    needs no 127.0.0.1 in ALLOWED_HOSTS nor SECURE_SSL_REDIRECT off (tests/config/test_health.py
    runs this very command and check against uvicorn)."""
    import yaml

    from config.health import READY_TIMEOUT

    web = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["web"]
    command = web["command"][-1]
    assert "exec uvicorn config.asgi:application" in command  # uvicorn gets the stop signal
    assert "--workers ${WEB_WORKERS:-2}" in command
    check = web["healthcheck"]
    assert check["test"][:3] == ["CMD", "python", "-c"]  # what the image has: no curl
    assert "urlopen('http://127.0.0.1:8000/readyz'" in check["test"][3]
    seconds = {key: int(check[key].rstrip("s")) for key in ("interval", "timeout", "start_period")}
    assert READY_TIMEOUT < seconds["timeout"] < seconds["interval"]
    assert seconds["start_period"] >= 60  # migrations and the embedding model's load
    environment = web["environment"]
    assert "ALLOWED_HOSTS" not in environment and "SECURE_SSL_REDIRECT" not in environment
    assert "exec uvicorn config.asgi:application" in (ROOT / "Dockerfile").read_text()


@pytest.mark.parametrize(
    "pool, expected",
    [
        ({}, "{'min_size': 1, 'max_size': 40, 'timeout': 10.0} 0 True"),
        (
            {"DB_POOL_MAX": "8", "DB_POOL_MIN": "2", "DB_POOL_TIMEOUT": "3"},
            "{'min_size': 2, 'max_size': 8, 'timeout': 3.0} 0 True",
        ),
        ({"DB_POOL_MAX": "0", "CONN_MAX_AGE": "60"}, "None 60 True"),
    ],
)
def test_postgres_connections_are_pooled_per_process(tmp_path, pool, expected):
    """ASGI runs each request on a thread of its own: a pool, not CONN_MAX_AGE (which Django
    refuses alongside a pool), unless DB_POOL_MAX=0. The pool reaches the real Postgres."""
    code = SETUP + (
        "from django.conf import settings\n"
        "from django.db import connection\n"
        "db = settings.DATABASES['default']\n"
        "print(db['OPTIONS'].get('pool'), db.get('CONN_MAX_AGE', 0), db['CONN_HEALTH_CHECKS'])\n"
        "with connection.cursor() as cursor:\n"
        "    cursor.execute('SELECT 1')\n"
        "print(connection.pool is not None)\n"
    )
    env = production_env(tmp_path, **{"CONN_MAX_AGE": None, **pool})
    result = run_python(code, env)
    assert result.returncode == 0, result.stderr
    settings_line, pooled = result.stdout.strip().splitlines()
    assert settings_line == expected
    assert pooled == str(pool.get("DB_POOL_MAX") != "0")


def test_the_example_file_as_is_gives_the_embedded_default(tmp_path):
    """`cp .env.example .env` must not break `make run`: empty values mean "use the default"."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL"}}
    env.update((name, "") for name in example_lists())
    for line in (ROOT / ".env.example").read_text().splitlines():
        if match := re.match(r"([A-Z][A-Z0-9_]*)=(.*)", line):
            env[match.group(1)] = match.group(2)
    env.update(DJANGO_SETTINGS_MODULE="config.settings.local", DATA_DIR=str(tmp_path))
    code = SETUP + (
        "from django.conf import settings as s\n"
        "print(s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL, s.EMBEDDED_WORKER,\n"
        "      s.RAG_VECTOR_STORE['OPTIONS']['path'] is not None, s.CSRF_TRUSTED_ORIGINS)\n"
    )
    result = run_python(code, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.sqlite3",
        "filesystem://localhost/",
        "True",
        "True",
        "[]",
    ]


def test_each_provider_has_its_own_timeout(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.local",
        DATA_DIR=str(tmp_path),
        DEEPSEEK_API_KEY="sk-x",
        DEEPSEEK_TIMEOUT="120",
        LLM_BASE_URL="http://127.0.0.1:9/v1",
        LLM_TIMEOUT="30",
    )
    code = SETUP + (
        "from django.conf import settings as s\n"
        "print(*[(e['OPTIONS']['id'], e['OPTIONS'].get('timeout')) for e in s.LLMS])\n"
    )
    result = run_python(code, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "('deepseek',",
        "120.0)",
        "('server',",
        "30.0)",
        "('local',",
        "None)",
    ]


@pytest.mark.parametrize(
    "value, language", [("english", "english"), ("German", "german"), ("none", None)]
)
def test_bm25_language_reaches_the_lexical_encoder(tmp_path, value, language):
    code = SETUP + (
        "from core.components import get_lexical_encoder\n"
        "print(repr(get_lexical_encoder().language))\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", "BM25_LANGUAGE": value}
    result = run_python(code, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == repr(language)


def test_an_unknown_bm25_language_is_refused_at_start_with_the_choices(tmp_path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", "BM25_LANGUAGE": "xx"}
    result = run_python(SETUP, env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "BM25_LANGUAGE='xx' has no Snowball stemmer" in result.stderr
    assert "english" in result.stderr
