"""Static carrier table (tests and development): longest E.164 prefix wins.

Production needs a number-portability lookup behind the same CarrierResolver port, because numbers move
between carriers and the prefix does not identify the carrier in Japan.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from hibiki_sms_gateway.domain.carrier import Carrier, parse_carrier
from hibiki_sms_gateway.smsc_simulator.scenario import Scenario


class StaticCarrierTable:
    def __init__(self, prefixes: Mapping[str, str]) -> None:
        # An unknown carrier name (e.g. "none", "willcom") marks a range no supported network serves.
        self._prefixes = sorted(
            ((p, parse_carrier(c)) for p, c in prefixes.items()), key=lambda i: -len(i[0])
        )

    @classmethod
    def from_scenario(cls, path: Path) -> StaticCarrierTable:
        """The carriers the SMSC simulator plays, so that both agree on who serves which range."""
        return cls({rule.prefix: rule.carrier for rule in Scenario.load(path).rules})

    async def resolve(self, e164: str) -> Carrier | None:
        for prefix, carrier in self._prefixes:
            if e164.startswith(prefix):
                return carrier
        return None
