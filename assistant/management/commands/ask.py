"""manage.py ask "QUESTION" [--collection SLUG] [--model ID] [--user NAME] [--json]

Answers here, or through the running app when it holds the embedded store (ingest.serving): the
same output and exit codes either way. A question that cannot be answered because the store
cannot be opened or the app cannot be reached leaves no trace: no conversation, no audit record.
"""

import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.services import AccountError, operator_user_get
from assistant import selectors, services
from ingest import serving
from rag.store import StoreLocked, StoreUnavailable


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
        asker = None
        if user:  # ask as that user: only what they may read
            asker = User.objects.filter(username=user).first()
            if asker is None:
                raise CommandError(f"no such user: {user}", returncode=2)
        try:
            # Before anything is recorded: an answer that cannot be made is no answer.
            app = serving.locate()
            if app is None:
                result = self._here(asker, question, collection, model)
            else:
                client = serving.AppClient(
                    app, user=asker or operator_user_get(), notify=self.stderr.write
                )
                result = client.ask(question, collections=collection, model=model)
        except (services.QuestionError, AccountError) as exc:  # AccountError: an inactive --user
            raise CommandError(str(exc), returncode=2) from exc
        except (StoreLocked, StoreUnavailable, serving.AppError) as exc:
            code = 2 if getattr(exc, "status", None) == 400 else 1
            raise CommandError(str(exc), returncode=code) from exc
        if json:
            self.stdout.write(_json(result))
        else:
            self._print(result)
        if result["status"] == "error":
            raise CommandError(result["error"] or "no answer", returncode=1)

    def _here(self, asker, question, collections, model) -> dict:
        """Answer in this process, which holds the store now."""
        if asker is None:  # the operator at the shell, recorded as "cli"
            asker, _ = get_user_model().objects.get_or_create(username="cli")
            unrestricted = True
        else:
            unrestricted = False
        message = services.answer_question(
            user=asker,
            question=question,
            collections=collections,
            model_id=model,
            unrestricted=unrestricted,
        )
        return selectors.ask_json(message)

    def _print(self, result: dict) -> None:
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
            f"{result['status']} · {result['model']} · retrieve {timings['retrieve']} ms · "
            f"llm {timings['llm']} ms · total {timings['total']} ms"
        )


def _json(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False)
