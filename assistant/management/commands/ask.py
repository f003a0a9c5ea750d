"""manage.py ask "QUESTION" [--collection SLUG] [--model ID] [--user NAME] [--json]"""

import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from assistant import selectors, services


class Command(BaseCommand):
    help = "Answer a question from the documents, with verified citations."

    def add_arguments(self, parser):
        parser.add_argument("question")
        parser.add_argument("--collection", metavar="SLUG", action="append")
        parser.add_argument("--model", metavar="ID", help="a model id (default: the first)")
        parser.add_argument("--user", metavar="NAME", help="ask as this user (default: cli)")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, question, collection, model, user, json: bool, **options):
        User = get_user_model()
        if user:  # ask as that user: only what they may read
            asker = User.objects.filter(username=user).first()
            if asker is None:
                raise CommandError(f"no such user: {user}", returncode=2)
        else:  # the operator at the shell, recorded as "cli"
            asker, _ = User.objects.get_or_create(username="cli")
        try:
            message = services.answer_question(
                user=asker,
                question=question,
                collections=collection,
                model_id=model,
                unrestricted=not user,
            )
        except services.QuestionError as exc:
            raise CommandError(str(exc), returncode=2) from exc
        result = selectors.ask_json(message)
        if json:
            self.stdout.write(_json(result))
        else:
            self._print(result, message)
        if message.status == message.Status.ERROR:
            raise CommandError(message.error, returncode=1)

    def _print(self, result: dict, message) -> None:
        self.stdout.write(result["answer"] or "(no answer)")
        if result["citations"]:
            self.stdout.write("")
        for citation in result["citations"]:
            page = f" p.{citation['page']}" if citation["page"] else ""
            self.stdout.write(
                f"[{citation['marker']}] {citation['document']}{page} — {citation['verdict']}"
            )
        timings = result["timings_ms"]
        self.stderr.write(
            f"{message.status} · {result['model']} · retrieve {timings['retrieve']} ms · "
            f"llm {timings['llm']} ms · total {timings['total']} ms"
        )


def _json(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False)
