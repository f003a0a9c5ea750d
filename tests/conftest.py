import pytest

from accounts import roles
from accounts.services import user_create
from assistant import llms
from core.components import get_store
from ingest import services
from tests.docs import make_pdf
from tests.ingest.helpers import ingest


@pytest.fixture(autouse=True)
def isolated_data(settings, tmp_path):
    """Each test gets its own embedded store folder and upload folder; the model stays loaded."""
    settings.MEDIA_ROOT = tmp_path / "uploads"
    settings.RAG_VECTOR_STORE = {
        "BACKEND": "rag.store.EdgeStore",
        "OPTIONS": {"path": str(tmp_path / "edge")},
    }
    yield
    # leave no open embedded store behind for the next test's folder
    from core.components import reset_components

    reset_components()


@pytest.fixture
def store():
    return get_store()


@pytest.fixture
def collection(db):
    return services.collection_get_or_create(slug="general")


def make_user(username: str, *role_names: str, groups: tuple[str, ...] = ()):
    user, _ = user_create(username=username, roles_=role_names, groups=groups, password="pw")
    return user


@pytest.fixture
def admin_user(db):
    return make_user("ada", roles.ADMIN, roles.STAFF)


@pytest.fixture
def staff_user(db):
    """A member of staff who may ask and read the collections of the staff group."""
    return make_user("sam", roles.STAFF)


@pytest.fixture
def auditor_user(db):
    return make_user("aud", roles.AUDITOR)


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def fake_llm(settings):
    """The default model is a FakeLLM (a real implementation that records and replays)."""
    # Alone in the registry: a failure must not fall back to the real offline model.
    settings.LLMS = [{"BACKEND": "rag.llm.FakeLLM", "LABEL": "Fake", "OPTIONS": {"id": "fake"}}]
    yield llms.model_get("fake").llm
    llms.reset_models()


HANDBOOK = [
    "Employee handbook\nWelcome to the company. This handbook explains our policies.",
    "Travel policy\nEconomy class is required for flights shorter than six hours.\n"
    "Receipts must be submitted within thirty days of travel.",
    "Security policy\nLaptops must use full disk encryption and a screen lock after five minutes.",
]


@pytest.fixture
def handbook(collection):
    document = ingest(make_pdf(HANDBOOK), "handbook.pdf", collection)
    assert document.status == "ready", document.error
    return document


@pytest.fixture
def qdrant_standin(isolated_data, settings, tmp_path):
    """A Qdrant server stand-in (tests.qdrant_standin: Qdrant's engine behind its REST API) in a
    thread of this process, and the app's vector store pointed at it (QdrantStore over HTTP), so
    other processes (workers, a second web process) can share the store through its ``url``."""
    from core.components import reset_components
    from tests.qdrant_standin import QdrantStandin

    reset_components()
    with QdrantStandin(path=tmp_path / "qdrant-standin") as server:
        settings.QDRANT_URL = server.url
        settings.RAG_VECTOR_STORE = {
            "BACKEND": "rag.store.QdrantStore",
            "OPTIONS": {"url": server.url, "path": None, "collection": "chunks"},
        }
        yield server
        reset_components()  # close the app's client before the server goes
