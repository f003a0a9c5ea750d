"""The Evaluation page's forms: the options of `manage.py eval retrieval` and `eval answers`,
with small samples by default so a run from the browser takes a minute, not an hour."""

from __future__ import annotations

from django import forms

from assistant import llms

from .datasets import HALUEVAL_QA
from .models import EvalRun
from .services import DEFAULT_TOLERANCE, PAGE_DATASETS

DATASET_HELP = {
    "halueval-qa": "HaluEval QA questions with distractor passages, in a temporary store",
    "cisi": "the CISI test collection (CISI_DIR), judged by document",
    "manuals": "three Debian software manuals, judged by page (fetched with apt-get once)",
    "feedback": "users' feedback on cited answers, asked of this app's own store",
}
JUDGE_DEFAULT, JUDGE_NONE = "default", "none"


class _RunForm(forms.Form):
    kind: str
    dataset = forms.ChoiceField()
    limit = forms.IntegerField(
        min_value=1, max_value=5000, label="Questions", help_text="the first N (--limit)"
    )
    passages = forms.IntegerField(
        min_value=0,
        max_value=100_000,
        required=False,
        label="Passages",
        help_text="corpus size with distractors (--passages; empty: 5 per question)",
    )
    gate = forms.BooleanField(
        required=False, label="Gate: fail if a metric fell since the previous comparable run"
    )
    tolerance = forms.FloatField(
        min_value=0, max_value=1, initial=DEFAULT_TOLERANCE, help_text="allowed absolute drop"
    )

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("prefix", self.kind)
        super().__init__(*args, **kwargs)
        self.fields["dataset"].choices = [
            (name, f"{name} — {DATASET_HELP[name]}") for name in PAGE_DATASETS[self.kind]
        ]
        self.fields["dataset"].initial = HALUEVAL_QA

    def options(self) -> dict:
        """The service's keyword arguments (`eval_retrieval_run` / `eval_answers_run`)."""
        data = self.cleaned_data
        return {
            "limit": data["limit"],
            "passages": data["passages"],
            "gate": data["gate"],
            "tolerance": data["tolerance"],
        }


class RetrievalRunForm(_RunForm):
    kind = EvalRun.Kind.RETRIEVAL
    k = forms.IntegerField(min_value=10, max_value=100, initial=10, help_text="results per query")
    field_order = ["dataset", "limit", "passages", "k", "gate", "tolerance"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["limit"].initial = 50

    def options(self) -> dict:
        return {**super().options(), "k": self.cleaned_data["k"]}


class AnswersRunForm(_RunForm):
    kind = EvalRun.Kind.ANSWERS
    model = forms.ChoiceField(help_text="the model whose answers are scored (--model)")
    judge = forms.ChoiceField(help_text="a model that judges faithfulness (--judge)")
    negatives = forms.IntegerField(
        min_value=0,
        max_value=5000,
        required=False,
        help_text="questions also asked without their evidence (empty: all)",
    )
    field_order = ["dataset", "model", "limit", "negatives", "passages", "judge", "gate"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["limit"].initial = 5
        models = [(m.id, m.label) for m in llms.available_models().values()]
        self.fields["model"].choices = models
        self.fields["judge"].choices = [
            (JUDGE_DEFAULT, "the configured judge (EVAL_JUDGE_MODEL), if any"),
            (JUDGE_NONE, "no judge"),
            *models,
        ]

    def options(self) -> dict:
        data = self.cleaned_data
        judge = {JUDGE_DEFAULT: None, JUDGE_NONE: ""}.get(data["judge"], data["judge"])
        return {
            **super().options(),
            "model_id": data["model"],
            "judge_id": judge,
            "negatives": data["negatives"],
        }
