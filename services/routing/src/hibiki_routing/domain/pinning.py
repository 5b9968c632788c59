"""What a published version plays: the guidance content it was published with, not what the guidance says now.

guidance-tts numbers each content of a guidance it was pinned with (its content revision); a published
version records the revision of every guidance it plays, and its prompts name
`<guidance id>@<content revision>`, which guidance-tts keeps serving while any retained version pins it. The
draft and versions published without guidance-tts play the guidance ids as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from .calls import HangUp, Play, PlayAndCollect, Step, Transfer

PIN_SEPARATOR = "@"


def pinned_id(guidance_id: str, content_revisions: Mapping[str, int]) -> str:
    """The audio reference of a guidance in a version that pinned it: `<guidance id>@<content revision>`."""
    revision = content_revisions.get(guidance_id)
    return f"{guidance_id}{PIN_SEPARATOR}{revision}" if revision else guidance_id


def pin_steps(steps: Iterable[Step], content_revisions: Mapping[str, int] | None) -> tuple[Step, ...]:
    """The steps with every prompt of a pinned guidance naming its pinned content."""
    if not content_revisions:
        return tuple(steps)
    pinned: list[Step] = []
    for step in steps:
        output = step.output
        if isinstance(output, PlayAndCollect | Play | Transfer | HangUp):
            prompts = tuple(
                replace(p, guidance_id=pinned_id(p.guidance_id, content_revisions)) for p in output.prompts
            )
            step = replace(step, output=replace(output, prompts=prompts))
        pinned.append(step)
    return tuple(pinned)
