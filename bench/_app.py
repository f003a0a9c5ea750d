"""The app on a throwaway embedded default, for benchmarks that drive it in-process
(bench/ingest.py, bench/baseline.py). No Django at import time."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def set_up_embedded_app(data_dir: Path) -> None:
    """SQLite and Qdrant local mode under ``data_dir`` with ``config.settings.local``, migrated;
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
            "error: the benchmark needs the embedded default (SQLite and Qdrant local mode under "
            f"its temporary DATA_DIR), got database {database['NAME']!r} and store "
            f"{store_path or settings.QDRANT_URL!r}; is DATABASE_URL or QDRANT_URL set in .env?",
            file=sys.stderr,
        )
        raise SystemExit(2)

    from django.core.management import call_command

    call_command("migrate", verbosity=0)
