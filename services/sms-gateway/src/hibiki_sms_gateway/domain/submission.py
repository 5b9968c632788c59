"""What can go wrong when handing a part to a carrier, split by whether trying again can help."""

from __future__ import annotations

from collections.abc import Callable


class SubmitError(Exception):
    """A submit that did not get a carrier message id; `code` is machine-readable."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class TemporarySubmitError(SubmitError):
    """Worth retrying after a pause (throttled, queue full, connection lost before the request left)."""


class Throttled(TemporarySubmitError):
    """The carrier asked us to slow down (ESME_RTHROTTLED)."""


class PermanentSubmitError(SubmitError):
    """Retrying cannot help (invalid destination, message refused)."""


class UncertainSubmitError(SubmitError):
    """The request may have reached the carrier (timeout, connection lost after sending): never resend."""


# Called by a connector when a part goes on the wire (it holds a place in the window): from then on, the
# carrier may have it.
OnWire = Callable[[], None] | None
