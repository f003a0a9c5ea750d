from django.urls import path

from . import views

urlpatterns = [
    path("", views.runs_page, name="evaluation"),
]
