"""`manage.py backup PATH`: a consistent archive of the embedded default (core.backup)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from core.backup import BackupRefused, backup_create


class Command(BaseCommand):
    help = (
        "Write a consistent archive (tar.gz) of the embedded default: the SQLite database, the "
        "embedded vector store, the originals and a manifest. The app must be stopped (the "
        "vector store is copied by the process that holds it)."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="the archive to write (a new file, e.g. backup.tar.gz)")

    def handle(self, *args, path: str, **options):
        try:
            report = backup_create(path=Path(path))
        except BackupRefused as exc:
            raise CommandError(str(exc), returncode=2) from exc
        counts = report.counts
        self.stdout.write(
            f"backup written to {report.path} ({report.size / 1e6:.1f} MB) in "
            f"{report.seconds:.1f} s: {counts.documents} documents, {counts.points} passages, "
            f"{counts.originals} originals, {counts.audit_records} audit records, "
            f"{counts.users} users"
        )
