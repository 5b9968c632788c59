"""A recorded day of calls and SMS as domain facts, shared by the reporting unit tests."""

from __future__ import annotations

from datetime import datetime, timedelta

from hibiki_reporting.domain.calendar import TOKYO
from hibiki_reporting.domain.facts import (
    CallEnded,
    CallFact,
    CallStarted,
    CallTransferred,
    DigitsCollected,
    InputTimedOut,
    MessageSnapshot,
    PromptIssued,
    PromptReason,
    SmsFact,
    SmsRequested,
    SmsRequestedByCall,
    SmsResultReported,
    SmsStatus,
    TargetIssued,
    TargetKind,
)

SHOP = "+81312345678"
SUPPORT = "+81698765432"
CALLER = "+819012345678"
DAY1 = datetime(2026, 11, 9, 10, 0, tzinfo=TOKYO)
DAY2 = datetime(2026, 11, 10, 0, 30, tzinfo=TOKYO)
SNAPSHOT = MessageSnapshot(
    "001", "予約案内", "ご予約はこちら", "https://example.jp/r", 2, "ご予約はこちら https://example.jp/r", 1
)


def at(base: datetime, seconds: int) -> datetime:
    return base + timedelta(seconds=seconds)


def prompt(
    call: str, step: int, t: datetime, route: str, reason: PromptReason, inv: int = 0, to: int = 0
) -> PromptIssued:
    names = {"main": "メインメニュー", "sub": "予約メニュー"}
    return PromptIssued(t, step, f"{call}:{step}", route, names[route], reason, inv, to)


def sms_call(call: str, start: datetime, dialed: str, request_id: str) -> list[CallFact]:
    """main menu → digit 1 → SMS → hang-up 'completed'."""
    return [
        CallStarted(start, dialed, CALLER),
        prompt(call, 1, at(start, 1), "main", PromptReason.INITIAL),
        DigitsCollected(at(start, 10), f"{call}:1", "1"),
        SmsRequestedByCall(at(start, 11), request_id, dialed),
        TargetIssued(at(start, 11), 2, f"{call}:2", TargetKind.HANGUP, "main", "completed"),
        CallEnded(at(start, 20), "system_hangup", f"{call}:2"),
    ]


CALLS: dict[str, list[CallFact]] = {
    # Invalid input, then a time-out, then "1" → SMS (request A).
    "call-a": [
        CallStarted(DAY1, SHOP, CALLER),
        prompt("call-a", 1, at(DAY1, 1), "main", PromptReason.INITIAL),
        DigitsCollected(at(DAY1, 5), "call-a:1", "9"),
        prompt("call-a", 2, at(DAY1, 5), "main", PromptReason.INVALID_INPUT, inv=1),
        InputTimedOut(at(DAY1, 20), "call-a:2"),
        prompt("call-a", 3, at(DAY1, 20), "main", PromptReason.TIMEOUT, inv=1, to=1),
        DigitsCollected(at(DAY1, 25), "call-a:3", "1"),
        SmsRequestedByCall(at(DAY1, 26), "req-a", SHOP),
        TargetIssued(at(DAY1, 26), 4, "call-a:4", TargetKind.HANGUP, "main", "completed"),
        CallEnded(at(DAY1, 35), "system_hangup", "call-a:4"),
    ],
    # Hung up while hearing the invalid-input guidance: abandoned at main / invalid_input after 1 mistake.
    "call-b": [
        CallStarted(at(DAY1, 60), SHOP, CALLER),
        prompt("call-b", 1, at(DAY1, 61), "main", PromptReason.INITIAL),
        DigitsCollected(at(DAY1, 65), "call-b:1", "7"),
        prompt("call-b", 2, at(DAY1, 65), "main", PromptReason.INVALID_INPUT, inv=1),
        CallEnded(at(DAY1, 70), "caller_hangup", "call-b:2"),
    ],
    # main → 2 → sub → 1 → transfer.
    "call-c": [
        CallStarted(at(DAY1, 120), SHOP, "+819011112222"),
        prompt("call-c", 1, at(DAY1, 121), "main", PromptReason.INITIAL),
        DigitsCollected(at(DAY1, 125), "call-c:1", "2"),
        prompt("call-c", 2, at(DAY1, 125), "sub", PromptReason.INITIAL),
        DigitsCollected(at(DAY1, 130), "call-c:2", "1"),
        TargetIssued(at(DAY1, 130), 3, "call-c:3", TargetKind.TRANSFER, "sub"),
        CallTransferred(at(DAY1, 135), "call-c:3"),
        CallEnded(at(DAY1, 136), "transferred", "call-c:3"),
    ],
    "call-d": [
        CallStarted(at(DAY1, 180), SUPPORT, "+819033334444"),
        TargetIssued(at(DAY1, 180), 1, "call-d:1", TargetKind.HANGUP, "", "not_in_service"),
        CallEnded(at(DAY1, 190), "system_hangup", "call-d:1"),
    ],
    # Hung up during the first prompt of the main menu.
    "call-e": [
        CallStarted(at(DAY1, 240), SUPPORT, "+819055556666"),
        prompt("call-e", 1, at(DAY1, 241), "main", PromptReason.INITIAL),
        CallEnded(at(DAY1, 245), "caller_hangup", "call-e:1"),
    ],
    "call-f": sms_call("call-f", DAY2, SHOP, "req-f"),
    "call-h": sms_call("call-h", at(DAY1, 300), SHOP, "req-h"),
    "call-j": sms_call("call-j", at(DAY1, 360), SHOP, "req-j"),
    "call-k": sms_call("call-k", at(DAY1, 420), SHOP, "req-k"),
}


def requested(call: str, t: datetime) -> SmsRequested:
    return SmsRequested(t, call, "001", CALLER, SHOP, "main")


SMS: dict[str, list[SmsFact]] = {
    "req-a": [
        requested("call-a", at(DAY1, 26)),
        SmsResultReported(at(DAY1, 27), SmsStatus.ACCEPTED, "accepted", "docomo", SNAPSHOT),
        SmsResultReported(at(DAY1, 40), SmsStatus.DELIVERED, "DELIVRD", "docomo", SNAPSHOT),
    ],
    "req-f": [
        requested("call-f", at(DAY2, 11)),
        SmsResultReported(at(DAY2, 12), SmsStatus.REJECTED, "unsupported_carrier", "", SNAPSHOT),
    ],
    "req-h": [
        requested("call-h", at(DAY1, 311)),
        SmsResultReported(at(DAY1, 312), SmsStatus.ACCEPTED, "accepted", "kddi", SNAPSHOT),
        SmsResultReported(at(DAY1, 400), SmsStatus.UNDELIVERED, "UNDELIV", "kddi", SNAPSHOT),
    ],
    "req-j": [
        requested("call-j", at(DAY1, 371)),
        SmsResultReported(at(DAY1, 500), SmsStatus.FAILED, "retries_exhausted", "softbank", SNAPSHOT),
    ],
    "req-k": [requested("call-k", at(DAY1, 431))],
}
