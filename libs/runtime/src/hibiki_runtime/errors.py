"""Errors the domain raises; the gRPC edge maps each kind to one status code.

Deliberately free of gRPC imports so that domain code can raise them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field of a request and why it is invalid."""

    field: str
    description: str


class HibikiError(Exception):
    """Base of errors that become a gRPC status at the edge."""

    code = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(HibikiError):
    """The request is malformed; carries field-level violations."""

    code = "INVALID_ARGUMENT"

    def __init__(self, *violations: FieldViolation) -> None:
        if not violations:
            raise ValueError("InvalidArgument needs at least one FieldViolation")
        self.violations = violations
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))

    @classmethod
    def field(cls, field: str, description: str) -> InvalidArgument:
        """Shortcut for a single invalid field."""
        return cls(FieldViolation(field, description))


class NotFound(HibikiError):
    code = "NOT_FOUND"


class AlreadyExists(HibikiError):
    code = "ALREADY_EXISTS"


class FailedPrecondition(HibikiError):
    code = "FAILED_PRECONDITION"


class Aborted(HibikiError):
    """Optimistic concurrency clash: the caller edited a stale revision."""

    code = "ABORTED"


class PermissionDenied(HibikiError):
    code = "PERMISSION_DENIED"


class Unauthenticated(HibikiError):
    code = "UNAUTHENTICATED"


class ResourceExhausted(HibikiError):
    code = "RESOURCE_EXHAUSTED"
