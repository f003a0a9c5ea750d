"""Django's `flush`, able to empty the audit tables.

On PostgreSQL the audit tables refuse TRUNCATE (migration 0002) unless the session has set
`audit.allow_truncate`. `flush` erases the whole database after asking for confirmation, chain
head included, so the log starts again empty and consistent; it is also how Django's transactional
tests clean up after themselves, which would otherwise fail once anything has been audited.
"""

from django.core.management.commands import flush
from django.db import connections


class Command(flush.Command):
    def handle(self, **options):
        connection = connections[options["database"]]
        if connection.vendor != "postgresql":
            return super().handle(**options)
        with connection.cursor() as cursor:
            cursor.execute("SET audit.allow_truncate = 'on'")
        try:
            return super().handle(**options)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET audit.allow_truncate")
