from django.urls import path

from . import api, views

urlpatterns = [
    path("", views.chat, name="home"),
    path("c/<int:conversation_id>", views.chat, name="conversation"),
    path("c/<int:conversation_id>/delete", views.conversation_delete, name="conversation-delete"),
    path("search/", views.search, name="search"),
    path("api/v1/ask", api.ask, name="api-ask"),
]
