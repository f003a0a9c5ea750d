"""The README and the contract are kept honest: every command they name exists, and every
environment variable the README names is one the settings read (listed in .env.example)."""

import re
from pathlib import Path

from django.core.management import get_commands

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT.parent / "shared" / "ARCHITECTURE.md"]
# Named by the contract ahead of the issue that builds it; remove an entry when it lands.
PLANNED: dict[str, str] = {}


def test_every_documented_command_exists():
    named = set()
    for doc in DOCS:
        if doc.exists():
            named |= set(re.findall(r"manage\.py (\w+)", doc.read_text()))
    assert {"ingest", "search", "ask", "audit", "users"} <= named  # the scan found them
    assert named - set(get_commands()) - set(PLANNED) == set()


def test_every_setting_the_readme_names_exists():
    listed = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.M))
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"`([A-Z][A-Z0-9_]{3,})`", readme))
    named -= {"POSTGRES_PASSWORD", "WEB_PORT", "WEB_WORKERS"}  # docker-compose's own variables
    assert {"DATA_DIR", "QDRANT_URL", "DEEPSEEK_API_KEY"} <= named
    assert named - listed == set()
