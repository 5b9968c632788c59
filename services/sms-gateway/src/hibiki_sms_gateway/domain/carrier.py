"""Mobile networks that can receive SMS, and the port that tells which one serves a number.

The prefix does not identify the carrier in Japan (mobile number portability), so resolution is a port:
a number-portability lookup in production, a static table in tests and development.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol


class Carrier(StrEnum):
    """The four networks that receive SMS; MVNO SIMs with an SMS contract ride one of them."""

    DOCOMO = "docomo"
    KDDI = "kddi"
    SOFTBANK = "softbank"
    RAKUTEN = "rakuten"


class CarrierResolver(Protocol):
    """Answers which supported network serves a number; None when it is none of the four."""

    async def resolve(self, e164: str) -> Carrier | None: ...


def parse_carrier(name: str) -> Carrier | None:
    """A carrier from its name ("docomo", "au"/"kddi", "softbank", "rakuten"); None for anything else."""
    aliases = {"au": Carrier.KDDI}
    key = name.strip().lower()
    if key in aliases:
        return aliases[key]
    try:
        return Carrier(key)
    except ValueError:
        return None
