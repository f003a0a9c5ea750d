"""Defect 3: privilege changes in the Django admin were neither audited nor bounded. An admin
could POST the user change form to make anyone (themselves included) a superuser or an auditor.

Now every change of roles, groups, superuser status or permissions goes through one service
(`accounts.services.user_access_set`) that refuses what the actor may not do and writes one
`user.role_change` audit record; the admin site's user forms call it."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client

from accounts import roles
from accounts.services import AccessDenied, user_access_set
from audit.models import AuditRecord

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def change_form(user, *, groups=(), **fields) -> dict:
    """What the admin's user change form posts (the fields every version of it accepts)."""
    return {
        "username": user.username,
        "first_name": "",
        "last_name": "",
        "email": "",
        "is_active": "on",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "09:00:00",
        "groups": [g.pk for g in groups],
        **fields,
    }


def role_group(name: str) -> Group:
    return roles.ensure_role_groups()[name]


def role_changes(username: str) -> list[dict]:
    return [
        r.payload
        for r in AuditRecord.objects.filter(kind="user.role_change").order_by("seq")
        if r.payload["user"] == username
    ]


def reload(user):
    fresh = get_user_model().objects.get(pk=user.pk)
    fresh.__dict__.pop("_roles", None)
    return fresh


def test_an_admin_cannot_make_someone_superuser_or_auditor(admin_user, staff_user):
    perm = Permission.objects.get(codename="delete_auditrecord")
    response = client_for(admin_user).post(
        f"/admin/auth/user/{staff_user.pk}/change/",
        change_form(
            staff_user,
            groups=(role_group(roles.STAFF), role_group(roles.AUDITOR)),
            is_superuser="on",
            is_staff="on",
            user_permissions=[perm.pk],
        ),
    )

    assert response.status_code in (200, 302, 403)
    if response.status_code == 200:  # the form is shown again, saying why
        assert "only a superuser may grant or remove the auditor role" in response.content.decode()
    sam = reload(staff_user)
    assert not sam.is_superuser and not sam.is_staff
    assert roles.roles_of(sam) == {roles.STAFF}
    assert not sam.user_permissions.exists()


def test_an_admin_cannot_escalate_themselves(admin_user):
    response = client_for(admin_user).post(
        f"/admin/auth/user/{admin_user.pk}/change/",
        change_form(
            admin_user,
            groups=(
                role_group(roles.STAFF),
                role_group(roles.ADMIN),
                role_group(roles.AUDITOR),
            ),
            is_superuser="on",
            is_staff="on",
        ),
    )

    assert response.status_code in (200, 302, 403)
    ada = reload(admin_user)
    assert not ada.is_superuser
    assert roles.roles_of(ada) == {roles.ADMIN, roles.STAFF}
    assert role_changes("ada")[-1]["after"] == ["admin", "staff"]  # only user_create's record


def test_the_admin_role_sees_no_superuser_or_permission_fields(admin_user, staff_user):
    page = client_for(admin_user).get(f"/admin/auth/user/{staff_user.pk}/change/")
    assert page.status_code == 200
    form = page.context["adminform"].form
    assert "groups" in form.fields
    assert not {"is_superuser", "is_staff", "user_permissions"} & set(form.fields)
    root = get_user_model().objects.create_superuser("root", "", "pw")
    page = client_for(root).get(f"/admin/auth/user/{staff_user.pk}/change/")
    assert {"is_superuser", "user_permissions", "groups"} <= set(
        page.context["adminform"].form.fields
    )


def test_an_admin_cannot_take_over_a_superuser(admin_user):
    root = get_user_model().objects.create_superuser("root", "", "pw")
    client = client_for(admin_user)

    assert client.get(f"/admin/auth/user/{root.pk}/password/").status_code == 403
    client.post(
        f"/admin/auth/user/{root.pk}/password/",
        {"password1": "Hijacked-123", "password2": "Hijacked-123"},
    )
    client.post(f"/admin/auth/user/{root.pk}/change/", change_form(root))
    client.post(f"/admin/auth/user/{root.pk}/delete/", {"post": "yes"})

    root = reload(root)
    assert root.check_password("pw") and root.is_superuser and root.is_active


def test_an_admin_cannot_give_a_group_permissions(admin_user):
    admin_group = role_group(roles.ADMIN)
    perms_before = set(admin_group.permissions.values_list("pk", flat=True))
    extra = Permission.objects.get(codename="delete_auditrecord")

    client_for(admin_user).post(
        f"/admin/auth/group/{admin_group.pk}/change/",
        {"name": "admin", "permissions": [*perms_before, extra.pk]},
    )

    assert set(admin_group.permissions.values_list("pk", flat=True)) == perms_before


def test_a_permitted_change_in_the_admin_is_audited(admin_user, staff_user):
    hr = Group.objects.create(name="hr")

    response = client_for(admin_user).post(
        f"/admin/auth/user/{staff_user.pk}/change/",
        change_form(staff_user, groups=(role_group(roles.STAFF), role_group(roles.ADMIN), hr)),
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    sam = reload(staff_user)
    assert roles.roles_of(sam) == {roles.ADMIN, roles.STAFF}
    assert sam.is_staff  # may open the admin site: derived from the admin role
    assert sam.groups.filter(name="hr").exists()
    change = role_changes("sam")[-1]
    assert change["before"] == ["staff"] and change["after"] == ["admin", "staff"]
    assert change["groups"] == {"before": [], "after": ["hr"]}
    record = AuditRecord.objects.filter(kind="user.role_change").order_by("-seq").first()
    assert record.actor_name == "ada" and record.subject == f"user:{sam.pk}"


def test_a_superuser_may_grant_auditor_and_superuser_and_it_is_audited(staff_user):
    root = get_user_model().objects.create_superuser("root", "", "pw")
    perm = Permission.objects.get(codename="view_auditrecord")

    response = client_for(root).post(
        f"/admin/auth/user/{staff_user.pk}/change/",
        change_form(
            staff_user,
            groups=(role_group(roles.STAFF), role_group(roles.AUDITOR)),
            is_superuser="on",
            user_permissions=[perm.pk],
        ),
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    sam = reload(staff_user)
    assert sam.is_superuser and sam.is_staff
    assert roles.AUDITOR in roles.roles_of(sam)
    change = role_changes("sam")[-1]
    assert change["after"] == ["admin", "auditor", "staff"]  # superusers count as admins
    assert change["is_superuser"] == {"before": False, "after": True}
    assert change["permissions"] == {"before": [], "after": ["audit.view_auditrecord"]}


def test_adding_a_user_in_the_admin_gives_roles_through_the_service(admin_user):
    response = client_for(admin_user).post(
        "/admin/auth/user/add/",
        {
            "username": "newbie",
            "password1": "Correct-horse-42",
            "password2": "Correct-horse-42",
            "usable_password": "true",
            "groups": [role_group(roles.STAFF).pk],
            "is_superuser": "on",
            "is_staff": "on",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    newbie = reload(get_user_model().objects.get(username="newbie"))
    assert not newbie.is_superuser and not newbie.is_staff
    assert roles.roles_of(newbie) == {roles.STAFF}
    (change,) = role_changes("newbie")
    assert change["before"] == [] and change["after"] == ["staff"]


def test_an_admin_cannot_add_an_auditor(admin_user):
    client_for(admin_user).post(
        "/admin/auth/user/add/",
        {
            "username": "spy",
            "password1": "Correct-horse-42",
            "password2": "Correct-horse-42",
            "usable_password": "true",
            "groups": [role_group(roles.AUDITOR).pk],
        },
    )
    assert not get_user_model().objects.filter(username="spy").exists()


class TestTheService:
    """The same rules hold for every caller, not only the admin site."""

    def test_admins_may_not_grant_auditor_superuser_or_permissions(self, admin_user, staff_user):
        perm = Permission.objects.get(codename="view_auditrecord")
        for change in (
            {"roles_": [roles.STAFF, roles.AUDITOR]},
            {"is_superuser": True},
            {"permissions": [perm]},
        ):
            with pytest.raises(AccessDenied):
                user_access_set(user=staff_user, by=admin_user, **change)
        assert roles.roles_of(reload(staff_user)) == {roles.STAFF}

    def test_nobody_but_a_superuser_changes_their_own_access(self, admin_user):
        with pytest.raises(AccessDenied):
            user_access_set(user=admin_user, by=admin_user, groups=["hr"])

    def test_staff_may_change_nobody(self, staff_user, admin_user):
        with pytest.raises(AccessDenied):
            user_access_set(user=admin_user, by=staff_user, roles_=[roles.STAFF])

    def test_the_operator_and_superusers_may(self, staff_user):
        user_access_set(user=staff_user, by=None, roles_=[roles.STAFF, roles.AUDITOR])
        root = get_user_model().objects.create_superuser("root", "", "pw")
        user_access_set(user=staff_user, by=root, is_superuser=True)
        sam = reload(staff_user)
        assert sam.is_superuser and sam.is_staff and roles.AUDITOR in roles.roles_of(sam)
        assert [c["after"] for c in role_changes("sam")][-2:] == [
            ["auditor", "staff"],
            ["admin", "auditor", "staff"],
        ]
