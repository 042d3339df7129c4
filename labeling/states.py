"""The item state machine: every allowed transition, in one place."""

from django.db import models


class ItemState(models.TextChoices):
    PENDING = "pending", "Pending"
    ROUTING = "routing", "Routing"
    AUTO_LABELED = "auto_labeled", "Labelled by AI"
    AWAITING_REVIEW = "awaiting_review", "Awaiting human review"
    HUMAN_LABELED = "human_labeled", "Labelled by a human"
    FAILED = "failed", "Failed"


TRANSITIONS: dict[str, frozenset[str]] = {
    ItemState.PENDING: frozenset({ItemState.ROUTING, ItemState.AWAITING_REVIEW}),
    # routing → pending: a crashed or cancelled attempt gives the item back.
    ItemState.ROUTING: frozenset(
        {ItemState.PENDING, ItemState.AUTO_LABELED, ItemState.AWAITING_REVIEW, ItemState.FAILED}
    ),
    ItemState.AUTO_LABELED: frozenset({ItemState.ROUTING, ItemState.AWAITING_REVIEW}),
    ItemState.AWAITING_REVIEW: frozenset({ItemState.HUMAN_LABELED}),
    # A reviewer's rejection sends a human label back to the queue.
    ItemState.HUMAN_LABELED: frozenset({ItemState.AWAITING_REVIEW}),
    ItemState.FAILED: frozenset({ItemState.PENDING, ItemState.ROUTING, ItemState.AWAITING_REVIEW}),
}

TERMINAL_STATES = frozenset({ItemState.AUTO_LABELED, ItemState.HUMAN_LABELED, ItemState.FAILED})


class InvalidTransition(Exception):
    def __init__(self, from_state: str, to_state: str):
        super().__init__(f"an item cannot go from {from_state!r} to {to_state!r}")
        self.from_state = from_state
        self.to_state = to_state


def check_transition(from_state: str, to_state: str) -> None:
    if to_state not in TRANSITIONS.get(from_state, frozenset()):
        raise InvalidTransition(from_state, to_state)
