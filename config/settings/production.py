"""Production: every secret and every service address must come from the environment.

Missing SECRET_KEY, DATABASE_URL, CELERY_BROKER_URL, QDRANT_URL or ALLOWED_HOSTS stops start-up
with ImproperlyConfigured instead of silently falling back to the embedded defaults.
"""

import environ

_env = environ.Env()
for _name in ("SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL", "QDRANT_URL", "ALLOWED_HOSTS"):
    _env.str(_name)  # raises ImproperlyConfigured naming the variable

from .base import *  # noqa: E402,F403
from .base import env  # noqa: E402

if SECRET_KEY.startswith("insecure") or len(SECRET_KEY) < 32:  # noqa: F405
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        "SECRET_KEY is too short or a development key: set a long random one"
    )

DEBUG = env.bool("DEBUG", default=False)
EMBEDDED_WORKER = False
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "SAMEORIGIN"  # the PDF viewer opens originals in a frame of our own pages
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)  # noqa: F405
