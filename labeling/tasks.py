"""Celery tasks: thin. Each takes ids and calls one service."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="labeling.import_job_run", acks_late=True)
def import_job_run_task(job_id: int) -> None:
    from labeling.services.imports import import_job_run

    import_job_run(job_id=job_id)


@shared_task(name="labeling.item_fetch_images", acks_late=True)
def item_fetch_images_task(item_ids: list[int]) -> None:
    from labeling.services.image_fetch import item_fetch_images

    item_fetch_images(item_ids=item_ids)


@shared_task(name="labeling.run_route_next", acks_late=True, reject_on_worker_lost=True)
def run_route_next_task(run_id: int) -> str | None:
    from labeling.services.runs import run_route_next

    return run_route_next(run_id=run_id)


@shared_task(name="labeling.models_train", acks_late=True)
def models_train_task(project_id: int, user_id: int | None = None) -> dict:
    from labeling.services.training import models_train_by_id

    return models_train_by_id(project_id=project_id, user_id=user_id)  # refusals are recorded, not raised
