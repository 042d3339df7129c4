"""Celery tasks: thin. Each takes ids and calls one service."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerError


@shared_task(name="labeling.import_job_run", acks_late=True)
def import_job_run_task(job_id: int) -> None:
    from labeling.services.imports import import_job_run

    import_job_run(job_id=job_id)


@shared_task(name="labeling.item_fetch_images", acks_late=True)
def item_fetch_images_task(item_ids: list[int]) -> None:
    from labeling.services.image_fetch import item_fetch_images

    item_fetch_images(item_ids=item_ids)


# A lost database or broker connection outside any one item (while claiming, or handing the run on) must
# not end the run's chain of tasks: the task retries with backoff. Other errors are bugs, not retried.
@shared_task(name="labeling.run_route_slice", acks_late=True, reject_on_worker_lost=True,
             autoretry_for=(OperationalError, InterfaceError, BrokerError), retry_backoff=2, retry_backoff_max=300,
             max_retries=20)
def run_route_slice_task(run_id: int, generation: int) -> dict[str, int]:
    from labeling.services.runs import run_route_slice

    return run_route_slice(run_id=run_id, generation=generation)


@shared_task(name="labeling.models_train", acks_late=True)
def models_train_task(project_id: int, user_id: int | None = None) -> dict:
    from labeling.services.training import models_train_by_id

    return models_train_by_id(project_id=project_id, user_id=user_id)  # refusals are recorded, not raised
