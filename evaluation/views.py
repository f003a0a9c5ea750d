from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts import roles

from . import selectors, services
from .forms import AnswersRunForm, RetrievalRunForm
from .history import run_history
from .models import EvalRun

FORMS = {EvalRun.Kind.RETRIEVAL: RetrievalRunForm, EvalRun.Kind.ANSWERS: AnswersRunForm}

manage_evaluation = roles.page_requires(roles.can_manage, "seeing evaluation runs")


@manage_evaluation
def runs_page(request: HttpRequest, *, bound=None, status: int = 200) -> HttpResponse:
    forms = {kind: form() for kind, form in FORMS.items()}
    if bound is not None:
        forms[bound.kind] = bound
    jobs = selectors.eval_jobs_recent()
    context = {
        "groups": run_history(),
        "retrieval_form": forms[EvalRun.Kind.RETRIEVAL],
        "answers_form": forms[EvalRun.Kind.ANSWERS],
        "jobs": jobs,
        "jobs_active": any(not job.is_finished for job in jobs),
    }
    return render(request, "evaluation/runs.html", context, status=status)


@manage_evaluation
@require_POST
def run_start(request: HttpRequest, kind: str) -> HttpResponse:
    if kind not in FORMS:
        return redirect("evaluation")
    form = FORMS[kind](request.POST)
    if form.is_valid():
        try:
            services.eval_job_request(
                kind=kind,
                dataset=form.cleaned_data["dataset"],
                options=form.options(),
                by=request.user,
            )
        except services.EvaluationError as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("evaluation")
    return runs_page(request, bound=form, status=400)


@roles.api_requires(roles.can_manage, "seeing evaluation runs")
def jobs_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {"jobs": [selectors.eval_job_json(j) for j in selectors.eval_jobs_recent()]}
    )
