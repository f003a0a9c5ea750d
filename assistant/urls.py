from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("c/<int:conversation_id>", views.chat, name="conversation"),
    path("c/<int:conversation_id>/delete", views.conversation_delete, name="conversation-delete"),
    path("search/", views.search, name="search"),
]
