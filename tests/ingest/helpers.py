import io

from ingest import services
from ingest.models import Document
from ingest.tasks import document_ingest_task


def upload(data: bytes, name: str, collection, **kwargs) -> Document:
    return services.document_upload(
        file=io.BytesIO(data), name=name, collection=collection, enqueue=False, **kwargs
    )


def ingest(data: bytes, name: str, collection, **kwargs) -> Document:
    """Upload and run the real task code in this process, as `ingest --sync` does."""
    document = upload(data, name, collection, **kwargs)
    if document.status == Document.Status.QUEUED:
        document_ingest_task.apply(args=[document.pk])
    document.refresh_from_db()
    return document
