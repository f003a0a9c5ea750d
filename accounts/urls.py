from django.urls import path

from . import views

urlpatterns = [
    path("", views.users_page, name="users"),
    path("new", views.user_create, name="user_create"),
    path("<int:pk>/", views.user_edit, name="user_edit"),
    path("<int:pk>/password-link", views.user_password_link, name="user_password_link"),
    path("collections/<int:pk>", views.collection_access, name="collection_access"),
    path("password/<uidb64>/<token>/", views.PasswordSetView.as_view(), name="password_set"),
    path("password/done/", views.PasswordSetDoneView.as_view(), name="password_set_done"),
]
