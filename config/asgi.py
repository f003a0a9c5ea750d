import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
django_application = get_asgi_application()

from ingest.uploads import UploadLimitASGI  # noqa: E402 - needs the settings set up above

# Django's ASGI handler spools the whole request body to disk before any middleware runs: an
# upload over MAX_UPLOAD_MB is refused here, before that.
application = UploadLimitASGI(django_application)
