"""The embedded default: one process, no servers, offline. Safe defaults for a single machine."""

import os

os.environ.setdefault("SECRET_KEY", "insecure-local-only-key-change-me-in-production")
os.environ.setdefault("DEBUG", "true")

from .base import *  # noqa: E402,F403

WHITENOISE_USE_FINDERS = True  # serve static files straight from the source folders
