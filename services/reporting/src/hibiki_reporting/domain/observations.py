"""What one consumed event tells the report: the records it is about, and the fact it adds to each."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from hibiki_reporting.domain.facts import CallFact, SmsFact


class RecordKind(StrEnum):
    CALL = "call"
    SMS = "sms"


@dataclass(frozen=True)
class Touch:
    """A record an event adds a fact to."""

    kind: RecordKind
    key: str


@dataclass(frozen=True)
class Observation:
    """The command of every reporting consumer: store the event as a fact of these records, fold them again.

    A fact of None (e.g. a finished prompt) is still stored: it changes nothing in the report today.
    """

    touches: tuple[Touch, ...]
    call_fact: CallFact | None = None
    sms_fact: SmsFact | None = None

    def fact_of(self, touch: Touch) -> CallFact | SmsFact | None:
        return self.call_fact if touch.kind is RecordKind.CALL else self.sms_fact
