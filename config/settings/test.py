"""Tests run against the real services: Postgres, Redis, Qdrant local mode in a temporary folder."""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-only-key")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="ragtest-"))
os.environ.setdefault("EMBEDDED_WORKER", "false")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("LLM_RETRY_BASE_DELAY", "0.01")  # retries are tested, not waited for
# The offline model's converted weights (516 MB, ~35 s to make) outlive one test run.
os.environ.setdefault(
    "LOCAL_LLM_CACHE_DIR", os.path.expanduser("~/.cache/rag-assistant/test-models")
)

from .base import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
