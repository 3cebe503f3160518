"""The domain's exceptions: what went wrong, in words a person can act on, with no HTTP in them.

Domain code raises these (or its own subclasses); ``geoservice.api.problems`` holds the one table
that turns each kind into an RFC 7807 problem (status, title), and the CLI prints the message as
its one-line error. ``title`` is the short name of the problem; the message (``detail``) says what
to fix; ``members`` are extra fields a client can use (e.g. the actions that are allowed).
"""

from __future__ import annotations


class DomainError(Exception):
    """Something the caller asked that cannot be done; subclasses say which kind."""

    title = "Invalid request"

    def __init__(self, detail: str, *, title: str | None = None, **members: object) -> None:
        super().__init__(detail)
        self.detail = detail
        if title is not None:
            self.title = title
        self.members = members


class InvalidInput(DomainError):
    """The request is malformed or names something that does not exist as an argument."""


class NotFound(DomainError):
    """The thing asked for does not exist, or not for this caller (existence is not leaked)."""

    title = "Not found"


class Conflict(DomainError):
    """The request is well formed but the state of things does not allow it now."""

    title = "Conflict"


class SignInRequired(DomainError):
    """No caller, or a token that does not stand for an enabled account."""

    title = "Sign in required"


class Forbidden(DomainError):
    """A known caller whose role or scope does not allow this."""

    title = "Not allowed"


class Unavailable(DomainError):
    """The service cannot answer yet (e.g. nothing loaded or published); retrying later may help."""

    title = "Unavailable"


class TooManyAttempts(DomainError):
    """Too many failed attempts (sign-in): refused until ``retry_after_s`` seconds have passed."""

    title = "Too many attempts"

    def __init__(self, detail: str, *, retry_after_s: int, title: str | None = None) -> None:
        super().__init__(detail, title=title, retry_after_s=retry_after_s)
        self.retry_after_s = retry_after_s
