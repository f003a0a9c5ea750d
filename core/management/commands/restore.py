"""`manage.py restore PATH`: an archive of `manage.py backup` into an empty DATA_DIR."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from core.backup import BackupRefused, backup_restore


class Command(BaseCommand):
    help = (
        "Restore an archive written by `manage.py backup` into an empty DATA_DIR, after checking "
        "every file against the manifest's sha256 and the counts against the restored data."
    )
    # The checks could open the database, which would create a file in the DATA_DIR that must
    # be empty; nothing here needs them.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("path", help="an archive written by `manage.py backup`")

    def handle(self, *args, path: str, **options):
        try:
            report = backup_restore(path=Path(path))
        except BackupRefused as exc:
            raise CommandError(str(exc), returncode=2) from exc
        for warning in report.warnings:
            self.stderr.write(f"warning: {warning}")
        counts = report.counts
        self.stdout.write(
            f"restored into {report.data_dir} in {report.seconds:.1f} s: {counts.documents} "
            f"documents, {counts.points} passages, {counts.originals} originals, "
            f"{counts.audit_records} audit records, {counts.users} users (sha256 and counts "
            "checked). Next: manage.py audit verify, then serve."
        )
