"""The users page: admins list, invite and change people's access through the audited role
service, with its limits and its reasons shown; a one-time link sets a new user's password."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from accounts import roles
from audit.models import AuditRecord
from ingest.models import Collection
from ingest.services import collection_get_or_create

from ..conftest import make_user

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def reload(user):
    fresh = get_user_model().objects.get(pk=user.pk)
    fresh.__dict__.pop("_roles", None)
    return fresh


def audit_kinds(kind: str) -> list[AuditRecord]:
    return list(AuditRecord.objects.filter(kind=kind).order_by("seq"))


def page_messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_only_admins_open_it(client, staff_user, auditor_user):
    assert client.get("/users/").status_code == 302  # to the login page
    assert client_for(staff_user).get("/users/").status_code == 403
    assert client_for(auditor_user).get("/users/").status_code == 403
    assert client_for(staff_user).post("/users/new", {"username": "x"}).status_code == 403
    assert not get_user_model().objects.filter(username="x").exists()


def test_the_list_shows_roles_and_groups_in_a_fixed_number_of_queries(
    admin_user, django_assert_max_num_queries
):
    collection_get_or_create(slug="general")
    for n in range(30):
        make_user(f"user{n:02}", roles.STAFF, groups=(f"team{n % 3}",))
    make_user("hank", roles.STAFF, groups=("hr",))
    client = client_for(admin_user)
    client.get("/users/")  # sessions, content types: warmed once

    with django_assert_max_num_queries(12):
        response = client.get("/users/")

    page = response.content.decode()
    assert response.status_code == 200
    row = re.search(r"<strong>hank</strong>.*?</tr>", page, re.S).group(0)
    assert ">staff<" in row and ">hr<" in row and ">admin<" not in row
    assert page.count('class="who"') == 32  # ada, hank and the 30 others


def test_inviting_with_a_password_link_then_the_user_sets_it_and_logs_in(admin_user):
    hr = Group.objects.create(name="hr")
    client = client_for(admin_user)

    response = client.post(
        "/users/new",
        {"username": "nina", "email": "nina@example.org", "roles": ["staff"], "groups": ["hr"]},
        follow=True,
    )

    nina = reload(get_user_model().objects.get(username="nina"))
    assert roles.roles_of(nina) == {roles.STAFF} and nina.groups.filter(pk=hr.pk).exists()
    (link,) = re.findall(
        r"http://testserver(/users/password/\S+/)", " ".join(page_messages(response))
    )
    (created,) = [r.payload for r in audit_kinds("user.role_change") if r.payload["user"] == "nina"]
    assert created["after"] == ["staff"] and created["groups"]["after"] == ["hr"]
    assert audit_kinds("user.password_link")[-1].actor_name == "ada"

    visitor = Client()
    form_page = visitor.get(link, follow=True)
    assert form_page.context["validlink"]
    done = visitor.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": "Correct-horse-42", "new_password2": "Correct-horse-42"},
        follow=True,
    )
    assert "Password set" in done.content.decode()
    assert visitor.login(username="nina", password="Correct-horse-42")
    again = Client().get(link, follow=True)  # one use only
    assert not again.context["validlink"]


def test_inviting_with_a_chosen_password_and_a_new_group(admin_user):
    response = client_for(admin_user).post(
        "/users/new",
        {
            "username": "omar",
            "password": "Correct-horse-42",
            "roles": ["staff"],
            "new_groups": "finance",
        },
        follow=True,
    )
    assert not any("/users/password/" in m for m in page_messages(response))
    omar = get_user_model().objects.get(username="omar")
    assert omar.check_password("Correct-horse-42")
    assert list(omar.groups.exclude(name__in=roles.ROLES).values_list("name", flat=True)) == [
        "finance"
    ]


def test_an_admin_may_not_invite_an_auditor_and_is_told_why(admin_user):
    response = client_for(admin_user).post(
        "/users/new", {"username": "spy", "roles": ["staff", "auditor"]}
    )
    assert response.status_code == 400
    assert "only a superuser may grant or remove the auditor role" in response.content.decode()
    assert not get_user_model().objects.filter(username="spy").exists()
    assert not audit_kinds("user.password_link")


def test_a_weak_password_or_a_taken_name_is_refused_beside_the_field(admin_user, staff_user):
    response = client_for(admin_user).post(
        "/users/new", {"username": "sam", "password": "123", "roles": ["staff"]}
    )
    page = response.content.decode()
    assert response.status_code == 400
    assert "user &#x27;sam&#x27; exists already" in page
    assert "This password is too short" in page


def test_changing_roles_and_groups_is_audited(admin_user, staff_user):
    Group.objects.create(name="hr")
    client = client_for(admin_user)
    form = client.get(f"/users/{staff_user.pk}/")
    assert "is_superuser" not in form.context["form"].fields  # an admin's form has no such field

    response = client.post(
        f"/users/{staff_user.pk}/", {"roles": ["staff", "admin"], "groups": ["hr"]}
    )

    assert response.status_code == 302
    sam = reload(staff_user)
    assert roles.roles_of(sam) == {roles.ADMIN, roles.STAFF} and sam.is_staff
    change = audit_kinds("user.role_change")[-1]
    assert change.actor_name == "ada"
    assert change.payload["after"] == ["admin", "staff"]
    assert change.payload["groups"] == {"before": [], "after": ["hr"]}


@pytest.mark.parametrize(
    ("target", "post", "reason"),
    [
        ("self", {"roles": ["staff", "admin"], "new_groups": "hr"}, "you may not change your own"),
        (
            "staff",
            {"roles": ["staff", "auditor"]},
            "only a superuser may grant or remove the auditor",
        ),
        ("root", {"roles": ["staff"]}, "only a superuser may change a superuser"),
        ("staff", {"roles": ["staff"], "is_superuser": "on"}, None),  # no such field: ignored
    ],
)
def test_refused_changes_show_the_services_reason(admin_user, staff_user, target, post, reason):
    root = get_user_model().objects.create_superuser("root", "", "pw")
    subject = {"self": admin_user, "staff": staff_user, "root": root}[target]
    before = sorted(roles.roles_of(reload(subject)))
    changes = len(audit_kinds("user.role_change"))

    response = client_for(admin_user).post(f"/users/{subject.pk}/", post)

    if reason:
        assert response.status_code == 400
        assert reason in response.content.decode()
    after = reload(subject)
    assert sorted(roles.roles_of(after)) == before
    assert after.is_superuser == (target == "root")
    assert len(audit_kinds("user.role_change")) == changes


def test_a_superuser_may_grant_superuser_and_auditor(staff_user):
    root = get_user_model().objects.create_superuser("root", "", "pw")
    response = client_for(root).post(
        f"/users/{staff_user.pk}/", {"roles": ["staff", "auditor"], "is_superuser": "on"}
    )
    assert response.status_code == 302
    sam = reload(staff_user)
    assert sam.is_superuser and roles.AUDITOR in roles.roles_of(sam)


def test_a_password_link_for_a_superuser_is_a_superusers_to_issue(admin_user, staff_user):
    root = get_user_model().objects.create_superuser("root", "", "pw")
    client = client_for(admin_user)

    refused = client.post(f"/users/{root.pk}/password-link", follow=True)
    issued = client.post(f"/users/{staff_user.pk}/password-link", follow=True)

    assert page_messages(refused) == [
        "No link for root: only a superuser may set a superuser's password"
    ]
    assert "/users/password/" in page_messages(issued)[0]
    assert [r.subject for r in audit_kinds("user.password_link")] == [f"user:{staff_user.pk}"]


def test_collection_access_is_set_and_audited(admin_user, staff_user, collection):
    hr = collection_get_or_create(slug="hr")
    Group.objects.create(name="hr")
    client = client_for(admin_user)
    assert f'action="/users/collections/{hr.pk}"' in client.get("/users/").content.decode()

    response = client.post(f"/users/collections/{hr.pk}", {"groups": ["hr"]}, follow=True)

    assert page_messages(response) == ["Hr: readable by hr."]
    assert list(Collection.objects.get(pk=hr.pk).groups.values_list("name", flat=True)) == ["hr"]
    record = audit_kinds("collection.access_change")[-1]
    assert record.actor_name == "ada"
    assert record.payload == {"collection": "hr", "before": ["staff"], "after": ["hr"]}
    staff_page = client_for(staff_user).get("/search/", {"q": "anything", "collection": "hr"})
    assert staff_page.status_code == 200  # still a page, and hr is no longer theirs to search
