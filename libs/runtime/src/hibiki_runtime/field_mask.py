"""Field masks of partial updates (AIP-134), read the same way by every Update* RPC.

An absent or empty mask never means "replace every field": a caller that forgot the mask would silently
erase what it did not fill in (a URL, a name). It is refused, naming the paths the RPC accepts.
"""

from __future__ import annotations

from collections.abc import Sequence

from hibiki_runtime.errors import InvalidArgument


def update_paths(paths: Sequence[str], allowed: Sequence[str], field: str = "update_mask") -> tuple[str, ...]:
    """The mask's paths in order without repeats; INVALID_ARGUMENT on `field` when empty or naming others."""
    listed = ", ".join(allowed)
    if not paths:
        raise InvalidArgument.field(field, f"is required: name the fields to change ({listed})")
    unknown = [path for path in paths if path not in allowed]
    if unknown:
        raise InvalidArgument.field(field, f"cannot update {', '.join(unknown)}; allowed: {listed}")
    return tuple(dict.fromkeys(paths))
