"""The error hierarchy. `StreamfoldError` is the root; each failure has its own class.

The HTTP layers map each class to exactly one status code (see `api/errors.py` and `ingest/http.py`); the
fold adds its own (`projections/errors.py`).
"""

from __future__ import annotations

from typing import Any


class StreamfoldError(Exception):
    """Root of every error Streamfold raises on purpose."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers: dict[str, str] = {}  # HTTP headers the answer carries (e.g. Retry-After)


class InvalidRequest(StreamfoldError):
    """The client sent something we cannot accept (bad JSON, a bad field, a bad parameter)."""

    status = 400
    code = "invalid_request"


class PayloadTooLarge(StreamfoldError):
    """An event or a request is over its size limit."""

    status = 413
    code = "payload_too_large"


class RequestTimeout(StreamfoldError):
    """The request body did not arrive in time (a stalled or very slow client); browsers' SDKs retry a 408."""

    status = 408
    code = "request_timeout"


class Unauthorized(StreamfoldError):
    """No key, or a key we do not know."""

    status = 401
    code = "unauthorized"


class Forbidden(StreamfoldError):
    """A known key without the scope the endpoint needs, or a disabled workspace."""

    status = 403
    code = "forbidden"


class NotFound(StreamfoldError):
    status = 404
    code = "not_found"


class RateLimited(StreamfoldError):
    """Over a rate limit: answered with `Retry-After` (and any other `headers`, e.g. the limit's state)."""

    status = 429
    code = "rate_limited"

    def __init__(
        self, message: str, *, retry_after: int, details: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after
        self.headers = {**(headers or {}), "Retry-After": str(retry_after)}


class Unavailable(StreamfoldError):
    """A backing store cannot take the request now (down, restarting, full): the client should retry after
    `Retry-After` seconds (SDKs retry 5xx)."""

    status = 503
    code = "unavailable"

    def __init__(self, message: str, *, retry_after: int = 1, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}
