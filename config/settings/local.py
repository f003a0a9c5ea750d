"""The embedded default: one process, no servers, offline. Safe defaults for a single machine:
DEBUG stays off unless asked for (`DEBUG=1 make run`), so an error shows the friendly 500 page,
never a traceback with settings to whoever triggered it."""

import os

os.environ.setdefault("SECRET_KEY", "insecure-local-only-key-change-me-in-production")

from .base import *  # noqa: E402,F403

# Static files straight from the source folders, with DEBUG on or off: whitenoise finds them at
# start-up, so `make run` needs no collectstatic step.
WHITENOISE_USE_FINDERS = True
