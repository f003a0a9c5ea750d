"""The users page: admins see who has which roles and groups and who reads which collection,
and change it. Every change goes through the audited role service (accounts.services) or, for
a collection's readers, ingest's `collection_access_set`: the same limits as the command line
and the admin site, and a refusal is shown with the service's reason."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.views.decorators.http import require_POST

from ingest.models import Collection
from ingest.services import collection_access_set

from . import roles, selectors, services
from .forms import CollectionAccessForm, UserAccessForm, UserCreateForm

manage_users = roles.page_requires(roles.can_manage, "managing users")


def _page(request: HttpRequest, *, create_form: UserCreateForm | None = None, status=200):
    group_names = selectors.group_names()
    collections = selectors.collections_with_readers()
    collection_forms = [
        (
            collection,
            CollectionAccessForm(
                initial={"groups": [g.name for g in collection.groups.all()]},
                group_names=group_names,
                auto_id=f"c{collection.pk}_%s",
            ),
        )
        for collection in collections
    ]
    context = {
        "rows": selectors.users_with_access(),
        "create_form": create_form
        or UserCreateForm(
            initial={"roles": [roles.STAFF]}, group_names=selectors.access_group_names()
        ),
        "collection_forms": collection_forms,
    }
    return render(request, "accounts/users.html", context, status=status)


@manage_users
def users_page(request: HttpRequest) -> HttpResponse:
    return _page(request)


@manage_users
@require_POST
def user_create(request: HttpRequest) -> HttpResponse:
    form = UserCreateForm(request.POST, group_names=selectors.access_group_names())
    if form.is_valid():
        data = form.cleaned_data
        try:
            user, link = services.user_invite(
                username=data["username"],
                email=data["email"],
                password=data["password"],
                by=request.user,
                **form.access(),
            )
        except services.AccountError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Created {user.get_username()}.")
            if link:
                _show_link(request, user, link)
            return redirect("users")
    return _page(request, create_form=form, status=400)


@manage_users
def user_edit(request: HttpRequest, pk: int) -> HttpResponse:
    user = get_object_or_404(get_user_model(), pk=pk)
    current = services.user_access_check(user=user, by=None)  # what they have now
    form_args = {
        "group_names": sorted(set(selectors.access_group_names()) | current.groups),
        "may_grant_superuser": bool(request.user.is_superuser),
    }
    if request.method == "POST":
        form = UserAccessForm(request.POST, **form_args)
        if form.is_valid():
            try:
                services.user_access_set(user=user, by=request.user, **form.access())
            except services.AccountError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"Saved {user.get_username()}'s access.")
                return redirect("users")
    else:
        form = UserAccessForm(
            initial={
                "roles": sorted(current.roles),
                "groups": sorted(current.groups),
                "is_superuser": current.is_superuser,
            },
            **form_args,
        )
    context = {"subject": user, "access": current, "form": form}
    return render(request, "accounts/user_edit.html", context, status=400 if form.errors else 200)


@manage_users
@require_POST
def user_password_link(request: HttpRequest, pk: int) -> HttpResponse:
    user = get_object_or_404(get_user_model(), pk=pk)
    try:
        link = services.user_password_link_issue(user=user, by=request.user)
    except services.AccountError as exc:
        messages.error(request, f"No link for {user.get_username()}: {exc}")
    else:
        _show_link(request, user, link)
    return redirect("users")


@manage_users
@require_POST
def collection_access(request: HttpRequest, pk: int) -> HttpResponse:
    collection = get_object_or_404(Collection, pk=pk)
    form = CollectionAccessForm(request.POST, group_names=selectors.group_names())
    if form.is_valid():
        after = collection_access_set(
            collection=collection, groups=form.cleaned_data["groups"], by=request.user
        )
        readers = ", ".join(after) or "no group (admins and auditors only)"
        messages.success(request, f"{collection.name}: readable by {readers}.")
    else:
        messages.error(request, f"{collection.name}: {form.errors.as_text()}")
    return redirect("users")


def _show_link(request: HttpRequest, user, path: str) -> None:
    # No mail server: the admin passes the link on. Shown once, in this page's messages.
    messages.info(
        request,
        f"Link for {user.get_username()} to set their password (one use; it expires): "
        f"{request.build_absolute_uri(path)}",
        extra_tags="link",
    )


class PasswordSetView(auth_views.PasswordResetConfirmView):
    """Where the link leads: Django's own token check; the person signs in afterwards."""

    template_name = "accounts/password_set.html"
    success_url = reverse_lazy("password_set_done")


class PasswordSetDoneView(auth_views.PasswordResetCompleteView):
    template_name = "accounts/password_set_done.html"
