"""Celery tasks of the audit log: a task takes ids (here none), has a stable name, calls one
service."""

from celery import shared_task

from . import services


@shared_task(name="audit.apply_retention", ignore_result=True)
def audit_apply_retention_task() -> None:
    services.audit_apply_retention()
