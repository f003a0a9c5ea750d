from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from config.api import build_api, build_openai_api

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("audit/", include("audit.urls")),
    path("evaluation/", include("evaluation.urls")),
    path("users/", include("accounts.urls")),
    path("api/v1/", build_api().urls),
    path("v1/", build_openai_api().urls),  # OpenAI-compatible, where OpenAI clients look
    path("", include("ingest.urls")),
    path("", include("assistant.urls")),
]
