"""The three roles, as Django groups, and what each may do. Every view and API endpoint asks
here; nothing checks `is_staff` or a group name on its own.

- staff: ask questions, search, read sources of the collections their groups may read.
- admin: everything staff may, plus upload and manage documents, collections and users.
- auditor: read-only review of the audit log; may open any recorded evidence, changes nothing.

A user may hold several roles. Superusers count as admins.
"""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group
from django.http import HttpRequest, JsonResponse
from django.shortcuts import redirect, render

STAFF, ADMIN, AUDITOR = "staff", "admin", "auditor"
ROLES = (STAFF, ADMIN, AUDITOR)


def roles_of(user: AbstractBaseUser | AnonymousUser) -> frozenset[str]:
    if not user.is_authenticated:
        return frozenset()
    cached = getattr(user, "_roles", None)
    if cached is None:
        names = set(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
        if user.is_superuser:
            names.add(ADMIN)
        cached = frozenset(names)
        user._roles = cached
    return cached


def can_ask(user) -> bool:
    return bool(roles_of(user) & {STAFF, ADMIN})


def can_manage(user) -> bool:
    return ADMIN in roles_of(user)


def can_audit(user) -> bool:
    return AUDITOR in roles_of(user)


# What the admin role may do in the Django admin site (superusers may do everything anyway).
ADMIN_PERMISSIONS = {
    "ingest": None,  # every permission of the app
    "accounts": None,
    "auth": ("user", "group"),
    "assistant": ("view",),
    "audit": ("view",),
    "evaluation": ("view",),  # runs are written by `manage.py eval` only
}


def ensure_role_groups() -> dict[str, Group]:
    groups = {name: Group.objects.get_or_create(name=name)[0] for name in ROLES}
    from django.contrib.auth.models import Permission

    wanted = []
    for app, scope in ADMIN_PERMISSIONS.items():
        permissions = Permission.objects.filter(content_type__app_label=app)
        if scope == ("view",):
            permissions = permissions.filter(codename__startswith="view_")
        elif scope is not None:
            permissions = permissions.filter(content_type__model__in=scope)
        wanted.extend(permissions)
    groups[ADMIN].permissions.add(*wanted)
    return groups


# --- decorators: pages redirect to login or show a 403 page; the API answers JSON -------------


def page_requires(check, what: str):
    def decorator(view):
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect(f"/login/?next={request.path}")
            if not check(request.user):
                return render(request, "403.html", {"what": what}, status=403)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def api_requires(check, what: str):
    def decorator(view):
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs):
            if not request.user.is_authenticated:
                return JsonResponse({"error": "authentication required"}, status=401)
            if not check(request.user):
                return JsonResponse({"error": f"your role does not allow {what}"}, status=403)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
