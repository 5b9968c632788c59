"""Scripted carrier behaviour per number range, shared by the SMSC simulator and the static carrier table."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field

# Demo ranges for `make run`; give the service the same file (HIBIKI_SMS_CARRIER_TABLE_FILE) so both agree.
DEV_SCENARIO = Path(__file__).with_name("dev_scenario.json")


class Behaviour(StrEnum):
    ACCEPT = "accept"  # take the message, never send a receipt
    DELIVER = "deliver"  # receipt DELIVRD after `delay`
    UNDELIVER = "undeliver"  # receipt UNDELIV after `delay` (e.g. the recipient blocks SMS)
    EXPIRE = "expire"  # receipt EXPIRED after `delay`
    REJECT = "reject"  # submit_sm_resp ESME_RINVDSTADR
    THROTTLE = "throttle"  # ESME_RTHROTTLED for the first `throttle` submits per destination, then deliver
    STALL = "stall"  # never answer the submit_sm
    DROP = "drop"  # end the session instead of answering


class Rule(BaseModel):
    """Numbers starting with `prefix` (E.164) are served by `carrier` and behave as `behaviour`."""

    prefix: str
    carrier: str = "docomo"
    behaviour: Behaviour = Behaviour.DELIVER
    delay: float = Field(default=0.2, ge=0)
    error_code: str = "000"
    throttle: int = Field(default=2, ge=0)


class Scenario(BaseModel):
    rules: list[Rule] = Field(default_factory=list)
    default: Rule = Field(default_factory=lambda: Rule(prefix="", behaviour=Behaviour.DELIVER))

    def rule_for(self, e164: str) -> Rule:
        """The rule with the longest matching prefix."""
        matching = [rule for rule in self.rules if e164.startswith(rule.prefix)]
        return max(matching, key=lambda rule: len(rule.prefix)) if matching else self.default

    @classmethod
    def load(cls, path: Path) -> Scenario:
        return cls.model_validate(json.loads(path.read_text(encoding="utf-8")))
