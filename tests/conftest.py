import pytest
from django.contrib.auth import get_user_model

from ingest import services
from ingest.components import get_store


@pytest.fixture(autouse=True)
def isolated_data(settings, tmp_path):
    """Each test gets its own embedded Qdrant folder and upload folder; the model stays loaded."""
    settings.MEDIA_ROOT = tmp_path / "uploads"
    settings.RAG_VECTOR_STORE = {
        **settings.RAG_VECTOR_STORE,
        "OPTIONS": {
            **settings.RAG_VECTOR_STORE["OPTIONS"],
            "url": None,
            "path": str(tmp_path / "qdrant"),
        },
    }
    yield
    # leave no open embedded store behind for the next test's folder
    from ingest.components import reset_components

    reset_components()


@pytest.fixture
def store():
    return get_store()


@pytest.fixture
def collection(db):
    return services.collection_get_or_create(slug="general")


@pytest.fixture
def admin_user(db):
    return get_user_model().objects.create_user("ada", password="pw", is_staff=True)


@pytest.fixture
def staff_user(db):
    """A member of staff who may read but not manage documents (not a Django admin)."""
    return get_user_model().objects.create_user("sam", password="pw")


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client
