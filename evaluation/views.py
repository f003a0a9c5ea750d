from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts import roles

from .history import run_history


@roles.page_requires(roles.can_manage, "seeing evaluation runs")
def runs_page(request: HttpRequest) -> HttpResponse:
    return render(request, "evaluation/runs.html", {"groups": run_history()})
