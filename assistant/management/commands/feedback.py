"""manage.py feedback export [--rating up|down] — feedback as JSON-lines evaluation cases."""

import json

from django.core.management.base import BaseCommand

from assistant import selectors


class Command(BaseCommand):
    help = "Export answer feedback as evaluation cases (JSON lines: query, relevant, rating...)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        export = sub.add_parser("export")
        export.add_argument("--rating", choices=["up", "down"])

    def handle(self, *args, action, rating=None, **options):
        wanted = {"up": 1, "down": -1}.get(rating) if rating else None
        for case in selectors.feedback_cases(rating=wanted):
            self.stdout.write(json.dumps(case, ensure_ascii=False))
