"""Reads for the users page: people with their access, the access groups, who reads what."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group

from ingest.models import Collection

from . import roles


@dataclass(frozen=True)
class UserAccess:
    user: AbstractBaseUser
    roles: list[str]  # effective: a superuser counts as an admin
    groups: list[str]  # access groups, role groups left out


def users_with_access() -> list[UserAccess]:
    """Every user with roles and access groups, in two queries (users, then their groups)
    however many there are."""
    rows = []
    for user in get_user_model().objects.order_by("username").prefetch_related("groups"):
        names = {group.name for group in user.groups.all()}
        effective = (names & set(roles.ROLES)) | ({roles.ADMIN} if user.is_superuser else set())
        user._roles = frozenset(effective)  # what roles.roles_of would query for again
        rows.append(
            UserAccess(user=user, roles=sorted(effective), groups=sorted(names - set(roles.ROLES)))
        )
    return rows


def access_group_names() -> list[str]:
    """The groups that are not roles: what decides who reads a restricted collection."""
    return list(
        Group.objects.exclude(name__in=roles.ROLES).order_by("name").values_list("name", flat=True)
    )


def group_names() -> list[str]:
    """Every group a collection may be opened to, role groups included (a new collection is
    readable by the staff group)."""
    return list(Group.objects.order_by("name").values_list("name", flat=True))


def collections_with_readers() -> list[Collection]:
    """Collections with their reader groups prefetched (two queries)."""
    return list(Collection.objects.order_by("name").prefetch_related("groups"))
