"""Page sizes and opaque page tokens (keyset on the unique name)."""

from __future__ import annotations

import base64
import binascii

from hibiki_runtime.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


def page_limit(page_size: int) -> int:
    """Requested size, defaulted when 0 and capped at the maximum."""
    return min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_token(last_name: str) -> str:
    return base64.urlsafe_b64encode(last_name.encode("utf-8")).decode("ascii")


def decode_token(token: str) -> str:
    """The name after which the page starts; empty for the first page."""
    if not token:
        return ""
    try:
        name = base64.b64decode(token.encode("ascii"), altchars=b"-_", validate=True).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError) as error:
        raise InvalidArgument.field("page_token", "is not a token returned by a previous call") from error
    if "\x00" in name:  # no name holds NUL (PostgreSQL refuses it in text)
        raise InvalidArgument.field("page_token", "is not a token returned by a previous call")
    return name
