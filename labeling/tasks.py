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
