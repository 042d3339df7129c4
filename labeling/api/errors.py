"""API errors: service-level refusals become 400/409 with a clear message, never a 500."""

from __future__ import annotations

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from labeling.services.ledger import BudgetError
from labeling.services.projects import ProjectError
from labeling.services.queue import QueueError
from labeling.states import InvalidTransition

QUEUE_STATUS = {"not_found": 404, "taken": 409, "lease_expired": 409, "done": 409, "bad_label": 400}


def exception_handler(exc, context):
    if isinstance(exc, QueueError):
        return Response({"code": exc.code, "detail": str(exc)}, status=QUEUE_STATUS.get(exc.code, 400))
    if isinstance(exc, InvalidTransition):
        return Response({"code": "invalid_transition", "detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, (BudgetError, ProjectError)):
        return Response({"code": "invalid", "detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
    return drf_exception_handler(exc, context)
