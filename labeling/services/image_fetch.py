"""Fetch http(s) images of imported items on a worker (size and time capped)."""

from __future__ import annotations

from labeling.models import Item
from labeling.services.images import ImageRejected, image_fetch_url, image_store


def item_fetch_images(*, item_ids: list[int]) -> int:
    """Fetch and store each item's image; a failure is recorded on the item, never raised. Returns fetched count."""
    fetched = 0
    for item in Item.objects.filter(id__in=item_ids, image="").only("id", "project_id", "fields"):
        url = item.fields.get("image")
        if not isinstance(url, str):
            continue
        try:
            name = image_store(project_id=item.project_id, image=image_fetch_url(url))
        except ImageRejected as exc:
            Item.objects.filter(pk=item.pk).update(image_error=str(exc))
            continue
        Item.objects.filter(pk=item.pk).update(image=name, image_error="")
        fetched += 1
    return fetched
