"""Create the first admin if there is none, and the default collection."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from accounts import roles
from accounts.services import user_roles_set
from ingest import services


class Command(BaseCommand):
    help = "Create a first admin (ADMIN_USERNAME / ADMIN_PASSWORD, or a printed random password)."

    def handle(self, *args, **options):
        roles.ensure_role_groups()
        services.collection_get_or_create()
        User = get_user_model()
        existing = User.objects.filter(is_superuser=True).order_by("pk").first()
        if existing is not None:
            name = existing.get_username()
            self.stdout.write(
                f"An admin already exists ('{name}'); nothing created.\n"
                f"  Forgot its password? `.venv/bin/python manage.py changepassword {name}`"
            )
            return
        password = settings.ADMIN_PASSWORD or secrets.token_urlsafe(12)
        admin = User.objects.create_superuser(
            settings.ADMIN_USERNAME, settings.ADMIN_EMAIL, password
        )
        user_roles_set(user=admin, roles_=[roles.ADMIN, roles.STAFF])
        self.stdout.write(
            self.style.SUCCESS(f"Created the first admin '{settings.ADMIN_USERNAME}'.")
        )
        if not settings.ADMIN_PASSWORD:
            self.stdout.write(
                f"  password: {password}\n  (shown once; change it with "
                f"`.venv/bin/python manage.py changepassword {settings.ADMIN_USERNAME}`)"
            )
