from __future__ import annotations

from typing import Any

from labeling.models import AuditEvent, Item, Project


def audit_event_record(
    *,
    project: Project | int,
    verb: str,
    actor=None,
    item: Item | None = None,
    from_state: str = "",
    to_state: str = "",
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    project_id = project if isinstance(project, int) else project.pk
    return AuditEvent.objects.create(
        project_id=project_id,
        item=item,
        actor=actor,
        verb=verb,
        from_state=from_state,
        to_state=to_state,
        data=data or {},
    )
