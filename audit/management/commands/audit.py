"""manage.py audit verify | export [--format jsonl|csv] [--since DATE] [--kind KIND] | retention

verify: exit 0 printing `ok N records`, or exit 1 naming the first bad record on stderr.
export: the records on stdout, nothing else; exit 2 on bad arguments.
retention: redact content older than AUDIT_RETENTION_DAYS; prints how many records.
"""

from datetime import date

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from audit import selectors, services


class Command(BaseCommand):
    help = "Verify, export or apply retention to the tamper-evident audit log."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        actions.add_parser("verify", help="check the hash chain and every content commitment")
        export = actions.add_parser("export", help="write records to stdout")
        # Checked in handle(), not with argparse choices/type: a bad value must exit 2 even when
        # the command is called from code (argparse errors become exit 1 there).
        export.add_argument("--format", default="jsonl", metavar="jsonl|csv")
        export.add_argument("--since", metavar="YYYY-MM-DD", help="records from that day on")
        export.add_argument("--kind", metavar="KIND", help="only records of this kind")
        actions.add_parser("retention", help="redact content older than AUDIT_RETENTION_DAYS")

    def handle(self, *args, action: str, **options):
        getattr(self, f"_{action}")(**options)

    def _verify(self, **options) -> None:
        report = selectors.audit_verify()
        if not report.ok:
            raise CommandError(report.summary, returncode=1)
        self.stdout.write(report.summary)

    def _export(self, *, format: str, since: str | None, kind: str | None, **options) -> None:
        if format not in selectors.EXPORT_FORMATS:
            raise CommandError(
                f"--format must be one of {', '.join(selectors.EXPORT_FORMATS)}, got {format!r}",
                returncode=2,
            )
        day = None
        if since is not None:
            try:
                day = date.fromisoformat(since)
            except ValueError:
                raise CommandError(
                    f"--since must be a date YYYY-MM-DD, got {since!r}", returncode=2
                ) from None
        for line in selectors.audit_export(fmt=format, since=day, kind=kind or None):
            self.stdout.write(line, ending="")

    def _retention(self, **options) -> None:
        days = settings.AUDIT_RETENTION_DAYS
        redacted = services.audit_apply_retention()
        if days <= 0:
            self.stderr.write("AUDIT_RETENTION_DAYS is 0: content is kept forever")
        self.stdout.write(f"redacted {redacted} records")
