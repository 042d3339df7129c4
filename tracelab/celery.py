"""The Celery app. With no REDIS_URL the settings make every task run eagerly in-process."""

import os

from celery import Celery
from celery.signals import task_postrun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tracelab.settings")

app = Celery("tracelab")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_postrun.connect
def _close_unusable_connections(task=None, **kwargs) -> None:
    """Keep the worker's database connection across tasks (CELERY_DB_REUSE_MAX), but never a broken or
    expired one: the same rule Django applies at the end of a request. Eager tasks run inside the
    caller's request or transaction: its connection is not theirs to close."""
    if task is not None and getattr(task.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()
