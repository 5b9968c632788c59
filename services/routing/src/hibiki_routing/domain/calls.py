"""Pure call decisions: what the caller hears next. No Kafka, gRPC or SQL here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Prompt:
    """Something to play: a registered guidance, or text the media server may synthesize."""

    text: str
    guidance_id: str = ""


@dataclass(frozen=True)
class HangUp:
    """Play the prompts, then end the call."""

    prompts: tuple[Prompt, ...]
    reason: str


Action = HangUp


def answer_unknown_number(not_in_service_text: str) -> list[Action]:
    """A dialed number without a published flow hears the not-in-service announcement and is hung up."""
    return [HangUp(prompts=(Prompt(not_in_service_text),), reason="not_in_service")]
