from django.urls import path

from . import api, views

urlpatterns = [
    path("", views.home, name="home"),
    path("c/<int:conversation_id>", views.chat, name="conversation"),
    path("c/<int:conversation_id>/delete", views.conversation_delete, name="conversation-delete"),
    path("search/", views.search, name="search"),
    path("api/v1/ask", api.ask, name="api-ask"),
    path("api/v1/messages/<int:message_id>/feedback", api.feedback, name="api-feedback"),
]
