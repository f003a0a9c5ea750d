"""Writes for users, roles and API tokens. Each is recorded in the audit log by its caller's
service (accounts events are audit events: who changed whose access, when)."""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import transaction

from audit.services import audit_append

from . import roles
from .models import ApiToken


class AccountError(ValueError):
    pass


def user_create(
    *,
    username: str,
    roles_: Iterable[str] = (roles.STAFF,),
    groups: Iterable[str] = (),
    password: str | None = None,
    email: str = "",
) -> tuple[AbstractBaseUser, str | None]:
    """Create a user with roles and extra (access) groups. Returns the user and the generated
    password when none was given (shown once, never stored in clear)."""
    User = get_user_model()
    if User.objects.filter(username=username).exists():
        raise AccountError(f"user {username!r} exists already")
    generated = None if password else secrets.token_urlsafe(12)
    with transaction.atomic():
        user = User.objects.create_user(username, email, password or generated)
        user_roles_set(user=user, roles_=roles_)
        for name in groups:
            user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user, generated


def user_roles_set(
    *, user: AbstractBaseUser, roles_: Iterable[str], by: AbstractBaseUser | None = None
) -> frozenset[str]:
    """Make ``user``'s roles exactly ``roles_``. Admins may also use the Django admin site."""
    wanted = frozenset(roles_)
    unknown = wanted - set(roles.ROLES)
    if unknown:
        raise AccountError(f"unknown role(s): {', '.join(sorted(unknown))}; roles: {roles.ROLES}")
    groups = roles.ensure_role_groups()
    user.__dict__.pop("_roles", None)
    before = sorted(roles.roles_of(user))
    with transaction.atomic():
        if before != sorted(wanted):
            audit_append(
                kind="user.role_change",
                actor=by,
                subject=f"user:{user.pk}",
                payload={"user": user.get_username(), "before": before, "after": sorted(wanted)},
            )
        for name, group in groups.items():
            if name in wanted:
                user.groups.add(group)
            else:
                user.groups.remove(group)
        user.is_staff = roles.ADMIN in wanted or user.is_superuser  # Django admin site access
        user.save(update_fields=["is_staff"])
    user.__dict__.pop("_roles", None)
    return roles.roles_of(user)


def token_issue(*, user: AbstractBaseUser, name: str) -> tuple[ApiToken, str]:
    if not name.strip():
        raise AccountError("a token needs a name (what it is for)")
    return ApiToken.issue(user=user, name=name.strip())
