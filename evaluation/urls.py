from django.urls import path

from . import views

urlpatterns = [
    path("", views.runs_page, name="evaluation"),
    path("runs/<str:kind>", views.run_start, name="evaluation_start"),
    path("jobs.json", views.jobs_json, name="evaluation_jobs"),
]
