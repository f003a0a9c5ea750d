"""Writes for users, roles and API tokens. Every change of access (roles, access groups,
superuser status, direct permissions) goes through `user_access_set`, which checks that the actor
may make it and records it in the audit log: who changed whose access, when, from what to what."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group, Permission
from django.contrib.auth.tokens import default_token_generator
from django.db import transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

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
    by: AbstractBaseUser | None = None,
) -> tuple[AbstractBaseUser, str | None]:
    """Create a user with roles and extra (access) groups. Returns the user and the generated
    password when none was given (shown once, never stored in clear)."""
    User = get_user_model()
    if User.objects.filter(username=username).exists():
        raise AccountError(f"user {username!r} exists already")
    generated = None if password else secrets.token_urlsafe(12)
    with transaction.atomic():
        user = User.objects.create_user(username, email, password or generated)
        user_access_set(user=user, roles_=roles_, groups=groups, by=by)
    return user, generated


class AccessDenied(AccountError):
    """The actor may not make this change of access; the message says why."""


@dataclass(frozen=True)
class Access:
    """Everything that decides what a user may do: compared before and after a change."""

    roles: frozenset[str]  # role groups the user is a member of (not the implied admin)
    groups: frozenset[str]  # access groups (collections' readers), role groups excluded
    is_superuser: bool
    is_staff: bool  # may open the Django admin site: derived, never set on its own
    permissions: frozenset[str]  # direct user permissions, as "app_label.codename"

    @property
    def effective_roles(self) -> list[str]:
        return sorted(self.roles | ({roles.ADMIN} if self.is_superuser else set()))


def _access_of(user: AbstractBaseUser) -> Access:
    if user.pk is None:  # being created: no access yet
        return Access(frozenset(), frozenset(), False, False, frozenset())
    names = set(user.groups.values_list("name", flat=True))
    return Access(
        roles=frozenset(names & set(roles.ROLES)),
        groups=frozenset(names - set(roles.ROLES)),
        is_superuser=bool(user.is_superuser),
        is_staff=bool(user.is_staff),
        permissions=frozenset(
            f"{app}.{codename}"
            for app, codename in user.user_permissions.values_list(
                "content_type__app_label", "codename"
            )
        ),
    )


def _check(
    *, user: AbstractBaseUser, by: AbstractBaseUser | None, before: Access, after: Access
) -> None:
    """Raise AccessDenied unless ``by`` may change ``user``'s access from ``before`` to ``after``.

    ``by=None`` is the operator (`manage.py users`, start-up): they hold the server anyway.
    Superusers may do anything. Admins manage the staff and admin roles and access groups of
    other people who are not superusers; superuser status, direct permissions and the auditor
    role (the people who check the admins) are a superuser's to give, and nobody but a
    superuser changes their own access (no self-escalation)."""
    if before == after or by is None or (by.is_active and by.is_superuser):
        return
    if not roles.can_manage(by):
        raise AccessDenied("only admins may change users' roles and groups")
    if by.pk == user.pk:
        raise AccessDenied("you may not change your own roles or groups: ask another admin")
    if before.is_superuser:
        raise AccessDenied("only a superuser may change a superuser")
    if after.is_superuser != before.is_superuser:
        raise AccessDenied("only a superuser may grant or remove superuser status")
    if after.permissions != before.permissions:
        raise AccessDenied("only a superuser may change a user's own permissions")
    if (roles.AUDITOR in after.roles) != (roles.AUDITOR in before.roles):
        raise AccessDenied("only a superuser may grant or remove the auditor role")


@dataclass(frozen=True)
class _Plan:
    before: Access
    after: Access
    groups: list[Group] | None  # the access groups to set, None: unchanged
    permissions: list[Permission] | None


def _plan(
    user: AbstractBaseUser,
    *,
    roles_: Iterable[str] | None,
    groups: Iterable[Group | str] | None,
    is_superuser: bool | None,
    permissions: Iterable[Permission] | None,
    create_groups: bool,
) -> _Plan:
    before = _access_of(user)
    wanted_roles = before.roles if roles_ is None else frozenset(roles_)
    unknown = wanted_roles - set(roles.ROLES)
    if unknown:
        raise AccountError(f"unknown role(s): {', '.join(sorted(unknown))}; roles: {roles.ROLES}")
    group_objects = None if groups is None else _access_groups(groups, create=create_groups)
    superuser = before.is_superuser if is_superuser is None else bool(is_superuser)
    permission_objects = None if permissions is None else list(permissions)
    after = Access(
        roles=wanted_roles,
        groups=before.groups if group_objects is None else frozenset(g.name for g in group_objects),
        is_superuser=superuser,
        is_staff=roles.ADMIN in wanted_roles or superuser,
        permissions=(
            before.permissions
            if permission_objects is None
            else frozenset(_permission_names(permission_objects))
        ),
    )
    return _Plan(before, after, group_objects, permission_objects)


def user_access_check(
    *,
    user: AbstractBaseUser,
    by: AbstractBaseUser | None,
    roles_: Iterable[str] | None = None,
    groups: Iterable[Group | str] | None = None,
    is_superuser: bool | None = None,
    permissions: Iterable[Permission] | None = None,
) -> Access:
    """The access `user_access_set` would give, or AccessDenied / AccountError; changes nothing
    (forms call it to show the refusal beside the field)."""
    plan = _plan(
        user,
        roles_=roles_,
        groups=groups,
        is_superuser=is_superuser,
        permissions=permissions,
        create_groups=False,
    )
    _check(user=user, by=by, before=plan.before, after=plan.after)
    return plan.after


def user_access_set(
    *,
    user: AbstractBaseUser,
    by: AbstractBaseUser | None = None,
    roles_: Iterable[str] | None = None,
    groups: Iterable[Group | str] | None = None,
    is_superuser: bool | None = None,
    permissions: Iterable[Permission] | None = None,
) -> Access:
    """Change ``user``'s roles, access groups, superuser status or direct permissions (None:
    unchanged), if ``by`` may (see `_check`), in one audited step.

    The one way access changes: the command line, the admin site and `user_create` all come
    here, and each change that does anything writes one `user.role_change` record naming what
    changed. ``is_staff`` (entry to the Django admin site) follows from the admin role or
    superuser status; it is not set on its own."""
    plan = _plan(
        user,
        roles_=roles_,
        groups=groups,
        is_superuser=is_superuser,
        permissions=permissions,
        create_groups=True,
    )
    before, after = plan.before, plan.after
    _check(user=user, by=by, before=before, after=after)
    if after == before:
        return after
    role_groups = roles.ensure_role_groups()
    with transaction.atomic():
        for name, group in role_groups.items():
            if name in after.roles:
                user.groups.add(group)
            else:
                user.groups.remove(group)
        if plan.groups is not None:
            wanted = {g.pk for g in plan.groups}
            user.groups.remove(*user.groups.exclude(name__in=roles.ROLES).exclude(pk__in=wanted))
            user.groups.add(*plan.groups)
        if plan.permissions is not None:
            user.user_permissions.set(plan.permissions)
        user.is_superuser, user.is_staff = after.is_superuser, after.is_staff
        user.save(update_fields=["is_superuser", "is_staff"])
        audit_append(
            kind="user.role_change",
            actor=by,
            subject=f"user:{user.pk}",
            payload=_change_payload(user, before, after),
        )
    user.__dict__.pop("_roles", None)
    return after


def _access_groups(groups: Iterable[Group | str], *, create: bool) -> list[Group]:
    def resolve(name: str) -> Group:
        if create:
            return Group.objects.get_or_create(name=name)[0]
        return Group.objects.filter(name=name).first() or Group(name=name)

    found = [g if isinstance(g, Group) else resolve(g) for g in groups]
    misplaced = sorted(g.name for g in found if g.name in roles.ROLES)
    if misplaced:
        raise AccountError(f"{', '.join(misplaced)}: a role, not an access group; set it as a role")
    return found


def _change_payload(user: AbstractBaseUser, before: Access, after: Access) -> dict:
    """`before`/`after` are the effective roles (as ever); other fields only when they changed."""
    payload: dict = {
        "user": user.get_username(),
        "before": before.effective_roles,
        "after": after.effective_roles,
    }
    for field in ("groups", "is_superuser", "is_staff", "permissions"):
        old, new = getattr(before, field), getattr(after, field)
        if old != new:
            payload[field] = {
                "before": sorted(old) if isinstance(old, frozenset) else old,
                "after": sorted(new) if isinstance(new, frozenset) else new,
            }
    return payload


def _permission_names(permissions) -> list[str]:
    return sorted(f"{p.content_type.app_label}.{p.codename}" for p in permissions)


def group_permissions_set(
    *, group: Group, permissions: Iterable[Permission], by: AbstractBaseUser | None = None
) -> list[str]:
    """Set what a group's members may do in the admin site: a superuser's decision (it can
    give the admin role anything), recorded in the audit log."""
    if by is not None and not (by.is_active and by.is_superuser):
        raise AccessDenied("only a superuser may change a group's permissions")
    wanted = list(permissions)
    before = _permission_names(group.permissions.select_related("content_type"))
    after = _permission_names(wanted)
    if after == before:
        return after
    with transaction.atomic():
        group.permissions.set(wanted)
        audit_append(
            kind="group.permission_change",
            actor=by,
            subject=f"group:{group.name}"[:200],
            payload={"group": group.name, "before": before, "after": after},
        )
    return after


def user_roles_set(
    *, user: AbstractBaseUser, roles_: Iterable[str], by: AbstractBaseUser | None = None
) -> frozenset[str]:
    """Make ``user``'s roles exactly ``roles_`` (see `user_access_set`)."""
    user_access_set(user=user, roles_=roles_, by=by)
    return roles.roles_of(user)


def user_password_link_issue(*, user: AbstractBaseUser, by: AbstractBaseUser | None) -> str:
    """The path of a one-time link where ``user`` sets their own password (Django's password
    reset token: void once used, once the password changes, or after PASSWORD_RESET_TIMEOUT).

    There is no mail server, so the admin is shown the link and passes it on. A link to set a
    password is a way into the account, so the admin site's limits hold: admins issue it,
    a superuser's only a superuser; each one is recorded in the audit log."""
    if by is not None:
        if not roles.can_manage(by):
            raise AccessDenied("only admins may issue a link to set a password")
        if user.is_superuser and not (by.is_active and by.is_superuser):
            raise AccessDenied("only a superuser may set a superuser's password")
    if not user.is_active:
        raise AccountError(f"user {user.get_username()!r} is inactive")
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    audit_append(
        kind="user.password_link",
        actor=by,
        subject=f"user:{user.pk}",
        payload={"user": user.get_username()},
    )
    return reverse("password_set", kwargs={"uidb64": uid, "token": token})


def user_invite(
    *,
    username: str,
    email: str = "",
    roles_: Iterable[str] = (roles.STAFF,),
    groups: Iterable[str] = (),
    password: str | None = None,
    by: AbstractBaseUser | None = None,
) -> tuple[AbstractBaseUser, str | None]:
    """`user_create` from the users page: with no password chosen, the new user gets a link to
    set their own (returned, see `user_password_link_issue`) instead of a generated password
    the admin would have to pass on in clear."""
    with transaction.atomic():
        user, _ = user_create(
            username=username, roles_=roles_, groups=groups, password=password, email=email, by=by
        )
        link = None if password else user_password_link_issue(user=user, by=by)
    return user, link


def token_issue(*, user: AbstractBaseUser, name: str) -> tuple[ApiToken, str]:
    if not name.strip():
        raise AccountError("a token needs a name (what it is for)")
    return ApiToken.issue(user=user, name=name.strip())


# --- the operator at the shell -----------------------------------------------------------------

OPERATOR_USERNAME = "cli"  # who `manage.py ask/search/ingest` act as unless told otherwise


def operator_user_get() -> AbstractBaseUser:
    """The operator at the shell, recorded as "cli" (no password: it never signs in).

    When a command goes through the running app's API (see ingest.serving), the app checks roles
    as for anyone: the operator holds the server and its data, so "cli" is given the admin and
    staff roles, through `user_access_set` and so in the audit log, the first time."""
    user, _ = get_user_model().objects.get_or_create(username=OPERATOR_USERNAME)
    if not {roles.ADMIN, roles.STAFF} <= roles.roles_of(user):
        user_roles_set(user=user, roles_=roles.roles_of(user) | {roles.ADMIN, roles.STAFF})
    return user


def operator_token_issue(*, user: AbstractBaseUser, name: str) -> str:
    """An API token for a command at the shell to act as ``user`` through the running app.

    Only the operator (who holds the database) can run this, so it may issue a token for any
    active user (`ask --user NAME`); each one is recorded in the audit log, and revocable like
    any other in the admin site. Returns the key (stored by the caller, never in clear here)."""
    if not user.is_active:
        raise AccountError(f"user {user.get_username()!r} is inactive")
    with transaction.atomic():
        token, key = ApiToken.issue(user=user, name=name)
        audit_append(
            kind="token.issue",
            subject=f"user:{user.pk}",
            payload={
                "user": user.get_username(),
                "token_id": token.pk,
                "name": token.name,
                "by": "operator (manage.py)",
            },
        )
    return key


def operator_token_valid(*, user: AbstractBaseUser, key: str) -> bool:
    """Whether ``key`` is a live token of ``user`` (checked without marking it used)."""
    return ApiToken.objects.filter(
        key_hash=ApiToken.digest(key), user=user, user__is_active=True, revoked_at__isnull=True
    ).exists()
