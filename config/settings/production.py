"""Production: every secret and every service address must come from the environment.

Missing SECRET_KEY, DATABASE_URL, CELERY_BROKER_URL, QDRANT_URL or ALLOWED_HOSTS stops start-up
with ImproperlyConfigured instead of silently falling back to the embedded defaults.
"""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403  (reads .env first, so its values count below)
from .base import _set, env

REQUIRED = ("SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL", "QDRANT_URL", "ALLOWED_HOSTS")
for _name in REQUIRED:
    if not _set(_name):
        raise ImproperlyConfigured(f"{_name} must be set in production (see .env.example)")

if SECRET_KEY.startswith("insecure") or len(SECRET_KEY) < 32:  # noqa: F405
    raise ImproperlyConfigured(
        "SECRET_KEY is too short or a development key: set a long random one"
    )

DEBUG = env.bool("DEBUG", default=False)
EMBEDDED_WORKER = False
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
# TLS usually ends at a proxy in front of the web container: redirect and HSTS are its call.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
X_FRAME_OPTIONS = "SAMEORIGIN"  # the PDF viewer opens originals in a frame of our own pages
SILENCED_SYSTEM_CHECKS = ["security.W019"]  # SAMEORIGIN on purpose, see above
