"""What reaches media-gateway from outside, as typed commands (made at the edges, in entrypoints/)."""

from __future__ import annotations

from dataclasses import dataclass

from hibiki_media_gateway.domain.session import Action


@dataclass(frozen=True)
class CallCommand:
    """An action of routing for one call."""

    call_id: str
    action: Action
