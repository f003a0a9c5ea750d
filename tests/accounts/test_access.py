"""Who may do what (every URL x role), and that a restricted collection leaks by no route:
search, answers, citations, the source panel, original files, the API, a guessed URL."""

import io
import json

import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client

from accounts import roles
from accounts.models import ApiToken
from accounts.services import token_issue, user_create, user_roles_set
from assistant import services as answering
from assistant.models import Conversation
from core.components import get_store
from ingest.services import collection_get_or_create
from tests.docs import make_pdf
from tests.ingest.helpers import ingest

from ..conftest import make_user

pytestmark = pytest.mark.django_db

SALARY = "The 2026 salary band for senior engineers is 95,000 to 120,000 euros."


@pytest.fixture
def corpus(collection):
    general = ingest(
        make_pdf(["Canteen\nLunch is served from noon to two."]), "canteen.pdf", collection
    )
    hr = collection_get_or_create(slug="hr")
    hr.groups.set([Group.objects.get_or_create(name="hr")[0]])  # not the staff group
    secret = ingest(make_pdf(["Salaries\n" + SALARY]), "salaries.pdf", hr)
    return general, secret


def client_for(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def people(db):
    return {
        "anonymous": None,
        "staff": make_user("sam", roles.STAFF),
        "admin": make_user("ada", roles.ADMIN, roles.STAFF),
        "auditor": make_user("aud", roles.AUDITOR),
        "nobody": make_user("nob"),  # logged in, no role
    }


# expected status per role: anonymous, staff, admin, auditor, nobody
MATRIX = [
    ("get", "/", (302, 200, 200, 302, 403)),
    ("get", "/search/?q=lunch", (302, 200, 200, 403, 403)),
    ("get", "/documents/", (302, 403, 200, 403, 403)),
    ("get", "/documents/{general}/file", (302, 200, 200, 200, 403)),
    ("get", "/documents/{secret}/file", (302, 404, 200, 200, 403)),
    ("get", "/api/v1/documents", (401, 200, 200, 200, 403)),
    ("get", "/api/v1/documents/{general}", (401, 200, 200, 200, 403)),
    ("get", "/api/v1/documents/{secret}", (401, 404, 200, 200, 403)),
    # admin deletes it (204); refusals come before the lookup, so the order does not matter
    ("delete", "/api/v1/documents/{general}", (401, 403, 204, 403, 403)),
    ("post", "/api/v1/documents/{general}/reindex", (401, 403, 202, 403, 403)),
    ("post", "/api/v1/ask", (401, 200, 200, 403, 403)),
    ("get", "/admin/", (302, 302, 200, 302, 302)),
    ("get", "/login/", (200, 200, 200, 200, 200)),
]
ROLE_ORDER = ("anonymous", "staff", "admin", "auditor", "nobody")


@pytest.mark.parametrize(
    ("method", "path", "expected"), MATRIX, ids=[f"{m} {p}" for m, p, _ in MATRIX]
)
def test_permission_matrix(people, corpus, fake_llm, method, path, expected):
    general, secret = corpus
    fake_llm.default = "Lunch is served from noon to two [1]."
    url = path.format(general=general.pk, secret=secret.pk)
    got = []
    for role in ROLE_ORDER:
        client = client_for(people[role])
        if method == "post" and url == "/api/v1/ask":
            response = client.post(
                url, json.dumps({"question": "When is lunch?"}), content_type="application/json"
            )
        else:
            response = getattr(client, method)(url)
        got.append(response.status_code)
    assert tuple(got) == expected, dict(zip(ROLE_ORDER, got, strict=True))


def test_upload_is_for_admins_only(people, collection):
    for role, status in [("staff", 403), ("auditor", 403), ("nobody", 403), ("admin", 202)]:
        upload = SimpleUploadedFile("memo.txt", f"memo for {role}".encode())
        response = client_for(people[role]).post("/api/v1/documents", {"file": upload})
        assert response.status_code == status, role


class TestRestrictedCollection:
    def test_search_never_returns_it(self, staff_user, corpus):
        page = client_for(staff_user).get("/search/", {"q": "salary band senior engineers"})
        assert b"salaries.pdf" not in page.content and b"95,000" not in page.content

    def test_answers_never_see_or_cite_it(self, staff_user, corpus, fake_llm, monkeypatch):
        fake_llm.default = "I cannot answer this from the available documents."
        asked_store = []
        store = get_store()
        original = store.search_dense
        monkeypatch.setattr(
            store,
            "search_dense",
            lambda *a, **kw: asked_store.append(kw.get("collections")) or original(*a, **kw),
        )

        message = answering.answer_question(
            user=staff_user, question="What is the salary band for senior engineers?"
        )

        assert asked_store == [["general"]]  # the filter went into the Qdrant query
        assert all(s["collection"] == "general" for s in message.sources)
        assert all(SALARY not in m.content for call in fake_llm.calls for m in call)
        assert "salaries.pdf" not in json.dumps(message.sources)

    def test_asking_for_it_by_name_is_refused(self, staff_user, corpus, fake_llm):
        response = client_for(staff_user).post(
            "/api/v1/ask",
            json.dumps({"question": "salary band?", "collection": "hr"}),
            content_type="application/json",
        )
        assert response.status_code == 400
        assert response.json() == {"error": "unknown collection: hr"}

    def test_api_list_and_guessed_urls_hide_it(self, staff_user, corpus):
        _, secret = corpus
        client = client_for(staff_user)
        names = [d["name"] for d in client.get("/api/v1/documents").json()["documents"]]
        assert names == ["canteen.pdf"]
        assert client.get(f"/api/v1/documents/{secret.pk}").status_code == 404
        assert client.get(f"/documents/{secret.pk}/file").status_code == 404

    def test_members_of_the_group_read_it(self, corpus, fake_llm):
        member = make_user("hera", roles.STAFF, groups=("hr",))
        fake_llm.default = "Senior engineers earn 95,000 to 120,000 euros [1]."
        message = answering.answer_question(
            user=member, question="What is the salary band for senior engineers?"
        )
        assert message.sources[0]["document"] == "salaries.pdf"
        assert message.citations[0]["verdict"] == "supported"
        assert client_for(member).get(f"/documents/{corpus[1].pk}/file").status_code == 200

    def test_withdrawn_access_withholds_the_source_panel_text(self, corpus, fake_llm):
        member = make_user("hera", roles.STAFF, groups=("hr",))
        fake_llm.default = "Senior engineers earn 95,000 to 120,000 euros [1]."
        message = answering.answer_question(
            user=member, question="What is the salary band for senior engineers?"
        )
        member.groups.remove(member.groups.get(name="hr"))

        page = client_for(member).get(f"/c/{message.conversation_id}")

        (shown,) = [m for m in page.context["messages"] if m["role"] == "assistant"]
        assert (
            shown["sources"][0]["text"] == ""
            and "no longer have access" in shown["sources"][0]["withheld"]
        )
        assert client_for(member).get(f"/documents/{corpus[1].pk}/file").status_code == 404

    def test_another_users_conversation_is_not_found(self, staff_user, corpus, fake_llm):
        member = make_user("hera", roles.STAFF, groups=("hr",))
        fake_llm.default = "Senior engineers earn 95,000 to 120,000 euros [1]."
        message = answering.answer_question(user=member, question="Salary band for seniors?")
        assert client_for(staff_user).get(f"/c/{message.conversation_id}").status_code == 404
        assert Conversation.objects.filter(user=staff_user).count() == 0


class TestApiTokens:
    def test_bearer_token_asks_without_session_or_csrf(self, staff_user, corpus, fake_llm):
        fake_llm.default = "Lunch is served from noon to two [1]."
        _, key = token_issue(user=staff_user, name="script")
        client = Client(enforce_csrf_checks=True)

        response = client.post(
            "/api/v1/ask",
            json.dumps({"question": "When is lunch served?"}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {key}",
        )

        assert response.status_code == 200, response.content
        assert response.json()["citations"][0]["document"] == "canteen.pdf"
        assert ApiToken.objects.get().last_used_at is not None

    def test_session_posts_still_need_csrf(self, staff_user, fake_llm):
        client = Client(enforce_csrf_checks=True)
        client.force_login(staff_user)
        response = client.post("/api/v1/ask", "{}", content_type="application/json")
        assert response.status_code == 403

    @pytest.mark.parametrize("state", ["wrong", "revoked", "inactive user"])
    def test_bad_tokens_are_refused(self, staff_user, state):
        token, key = token_issue(user=staff_user, name="script")
        if state == "wrong":
            key += "x"
        elif state == "revoked":
            ApiToken.objects.filter(pk=token.pk).update(revoked_at="2026-01-01T00:00Z")
        else:
            staff_user.is_active = False
            staff_user.save()
        response = Client().get("/api/v1/documents", HTTP_AUTHORIZATION=f"Bearer {key}")
        assert response.status_code == 401
        assert response.json() == {"error": "invalid or revoked API token"}

    def test_only_a_digest_is_stored(self, staff_user):
        token, key = token_issue(user=staff_user, name="script")
        assert key not in json.dumps(list(ApiToken.objects.values()), default=str)
        assert token.key_hash == ApiToken.digest(key) and key.startswith(token.prefix)


class TestUsersCommand:
    def run(self, *args) -> str:
        out = io.StringIO()
        call_command("users", *args, stdout=out, stderr=io.StringIO())
        return out.getvalue()

    def test_create_set_roles_token_and_list(self, db):
        created = self.run("create", "carol", "--role", "auditor", "--group", "hr")
        assert "created carol with roles auditor" in created and "password:" in created
        self.run("roles", "carol", "staff", "admin")
        key = self.run("token", "carol", "--name", "ci").strip()
        (row,) = json.loads(self.run("list", "--json"))
        assert row == {
            "username": "carol",
            "roles": ["admin", "staff"],
            "groups": ["hr"],
            "active": True,
        }
        assert (
            Client().get("/api/v1/documents", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200
        )

    def test_usage_errors_exit_2(self, db):
        user_create(username="dave", password="pw")
        for args in (("create", "dave"), ("roles", "nobody", "staff"), ("token", "ghost")):
            with pytest.raises(CommandError) as error:
                self.run(*args)
            assert error.value.returncode == 2

    def test_admin_role_opens_the_django_admin(self, db):
        user, _ = user_create(username="erin", password="pw")
        user_roles_set(user=user, roles_=[roles.ADMIN])
        user.refresh_from_db()
        assert user.is_staff
        user_roles_set(user=user, roles_=[roles.STAFF])
        user.refresh_from_db()
        assert not user.is_staff and roles.roles_of(user) == {roles.STAFF}
