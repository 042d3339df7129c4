"""Typed judge failures: every way a judge call can go wrong, with a message a person can act on."""

from __future__ import annotations


class JudgeError(Exception):
    """A judge call failed. ``retryable`` says whether trying again may help."""

    retryable = False


class JudgeInputError(JudgeError, ValueError):
    """The item cannot be sent to the judge (unknown image format, missing field, bad label set)."""


class JudgeRequestError(JudgeError):
    """The endpoint refused the request for a reason retrying will not fix (400, 401, 403, 404)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class JudgeTimeout(JudgeError):
    """The endpoint did not answer (or went silent mid-stream) within the read timeout."""

    retryable = True


class JudgeConnectionError(JudgeError):
    """The connection to the endpoint failed or was cut."""

    retryable = True


class JudgeRateLimited(JudgeError):
    """HTTP 429; ``retry_after`` holds the server's Retry-After in seconds when it sent one."""

    retryable = True

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class JudgeServerError(JudgeError):
    """HTTP 5xx (or 408/409) from the endpoint."""

    retryable = True

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class JudgeOutputError(JudgeError):
    """The judge answered, but its reply has no valid label. Never replaced by a guess."""

    def __init__(self, message: str, text: str = ""):
        super().__init__(message)
        self.text = text
