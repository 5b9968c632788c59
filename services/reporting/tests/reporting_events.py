"""A recorded sequence of protobuf events on the four topics, with the figures it must produce.

Shared by the service-layer tests (SQLite) and the integration test (real broker and PostgreSQL).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from google.protobuf.message import Message
from hibiki.call.v1 import call_actions_pb2 as actions
from hibiki.call.v1 import call_events_pb2 as events
from hibiki.sms.v1 import sms_requests_pb2 as requests
from hibiki.sms.v1 import sms_results_pb2 as results
from hibiki_runtime.events import CALL_ACTIONS, CALL_EVENTS, SMS_REQUESTS, SMS_RESULTS, new_envelope

SHOP = "+81312345678"
SUPPORT = "+81698765432"
CALLER = "+819012345678"
OTHER_CALLER = "+819011112222"
ROUTES = {"main": "メインメニュー", "sub": "予約メニュー"}
SNAPSHOT = results.MessageSnapshot(
    box_number="001",
    box_name="予約案内",
    message_text="ご予約はこちら",
    url="https://example.jp/r",
    box_revision=2,
    rendered_text="ご予約はこちら https://example.jp/r",
    segments=1,
)


@dataclass
class Recorder:
    """Builds (topic, key, message) records with deterministic event ids; `prefix` namespaces the ids."""

    tenant: str
    prefix: str = ""
    records: list[tuple[str, str, Message]] = field(default_factory=list)
    flow_id: str = "flow-1"

    def _add(
        self, topic: str, key: str, message: Message, body: Message, event_id: str, at: datetime
    ) -> None:
        message.envelope.CopyFrom(new_envelope(self.tenant, body, event_id=event_id, occurred_at=at))  # type: ignore[attr-defined]
        self.records.append((topic, key, message))

    def call_event(self, call_id: str, at: datetime, name: str, body: Message, tag: str) -> None:
        message = events.CallEvent(call_id=call_id, **{name: body})
        self._add(CALL_EVENTS, call_id, message, body, f"{call_id}:{tag}", at)

    def started(self, call_id: str, at: datetime, dialed: str, caller: str = CALLER) -> None:
        call_id = self.prefix + call_id
        body = events.CallStarted(dialed_number=dialed, caller_number=caller)
        self.call_event(call_id, at, "call_started", body, "started")

    def digits(self, call_id: str, step: int, at: datetime, digits: str) -> None:
        call_id = self.prefix + call_id
        body = events.DigitsCollected(action_id=f"{call_id}:{step}", digits=digits)
        self.call_event(call_id, at, "digits_collected", body, f"digits:{step}")

    def timed_out(self, call_id: str, step: int, at: datetime) -> None:
        call_id = self.prefix + call_id
        body = events.InputTimedOut(action_id=f"{call_id}:{step}", kind=events.TIMEOUT_KIND_FIRST_DIGIT)
        self.call_event(call_id, at, "input_timed_out", body, f"timeout:{step}")

    def transferred(self, call_id: str, step: int, at: datetime) -> None:
        call_id = self.prefix + call_id
        body = events.CallTransferred(action_id=f"{call_id}:{step}", destination="+81300000000")
        self.call_event(call_id, at, "call_transferred", body, f"transferred:{step}")

    def ended(self, call_id: str, at: datetime, reason: int, during_step: int) -> None:
        call_id = self.prefix + call_id
        body = events.CallEnded(reason=reason, during_action_id=f"{call_id}:{during_step}")
        self.call_event(call_id, at, "call_ended", body, "ended")

    def lost(self, call_id: str, at: datetime) -> None:
        """media-gateway's report of a call whose process stopped: no action named, its own event id."""
        call_id = self.prefix + call_id
        body = events.CallEnded(reason=events.END_REASON_PLATFORM_FAILURE)
        self.call_event(call_id, at, "call_ended", body, "lost:ended")

    def action(self, call_id: str, step: int, at: datetime, name: str, body: Message) -> None:
        call_id = self.prefix + call_id
        action_id = f"{call_id}:{step}"
        message = actions.CallAction(
            call_id=call_id,
            action_id=action_id,
            step=step,
            flow_id=self.flow_id,
            flow_version=1,
            **{name: body},
        )
        self._add(CALL_ACTIONS, call_id, message, body, action_id, at)

    def prompt(
        self, call_id: str, step: int, at: datetime, route: str, reason: int = 1, inv: int = 0, to: int = 0
    ) -> None:
        body = actions.PlayAndCollect(
            route_id=route, route_name=ROUTES[route], reason=reason, invalid_attempts=inv, timeout_attempts=to
        )
        self.action(call_id, step, at, "play_and_collect", body)

    def hangup(self, call_id: str, step: int, at: datetime, reason: str, route: str = "main") -> None:
        self.action(call_id, step, at, "hangup", actions.Hangup(reason=reason, route_id=route))

    def transfer(self, call_id: str, step: int, at: datetime, route: str) -> None:
        self.action(
            call_id, step, at, "transfer", actions.Transfer(destination="+81300000000", route_id=route)
        )

    def sms_requested(
        self, request_id: str, call_id: str, at: datetime, dialed: str, recipient: str = CALLER
    ) -> None:
        request_id, call_id = self.prefix + request_id, self.prefix + call_id
        body = requests.SmsRequested(
            call_id=call_id, box_number="001", recipient=recipient, dialed_number=dialed, route_id="main"
        )
        message = requests.SmsRequest(request_id=request_id, sms_requested=body)
        self._add(SMS_REQUESTS, request_id, message, body, request_id, at)

    def sms_result(self, request_id: str, at: datetime, name: str, body: Message) -> None:
        request_id = self.prefix + request_id
        message = results.SmsResult(request_id=request_id, **{name: body})
        self._add(SMS_RESULTS, request_id, message, body, f"{request_id}:{name}", at)

    def sms_call(self, call_id: str, request_id: str, start: datetime, dialed: str) -> None:
        """main menu → 1 → SMS → hang-up."""
        self.started(call_id, start, dialed)
        self.prompt(call_id, 1, start + timedelta(seconds=1), "main")
        self.digits(call_id, 1, start + timedelta(seconds=10), "1")
        self.sms_requested(request_id, call_id, start + timedelta(seconds=11), dialed)
        self.hangup(call_id, 2, start + timedelta(seconds=11), "completed")
        self.ended(call_id, start + timedelta(seconds=20), events.END_REASON_SYSTEM_HANGUP, 2)


def t(base: datetime, seconds: int) -> datetime:
    return base + timedelta(seconds=seconds)


def recorded_sequence(tenant: str, day1: datetime, prefix: str = "") -> list[tuple[str, str, Message]]:
    """Two days of calls for SHOP and SUPPORT; `day1` is 10:00 JST of the first day."""
    s = Recorder(tenant, prefix)
    day2 = day1.replace(hour=0, minute=30) + timedelta(days=1)
    # call-a: invalid input, time-out, then "1" → SMS delivered (the receipt arrives before the acceptance).
    s.started("call-a", day1, SHOP)
    s.prompt("call-a", 1, t(day1, 1), "main")
    s.digits("call-a", 1, t(day1, 5), "9")
    s.prompt("call-a", 2, t(day1, 5), "main", reason=2, inv=1)
    s.timed_out("call-a", 2, t(day1, 20))
    s.prompt("call-a", 3, t(day1, 20), "main", reason=3, inv=1, to=1)
    s.digits("call-a", 3, t(day1, 25), "1")
    s.sms_requested("req-a", "call-a", t(day1, 26), SHOP)
    s.hangup("call-a", 4, t(day1, 26), "completed")
    s.ended("call-a", t(day1, 35), events.END_REASON_SYSTEM_HANGUP, 4)
    s.sms_result(
        "req-a",
        t(day1, 40),
        "sms_delivered",
        results.SmsDelivered(carrier=1, snapshot=SNAPSHOT, reason="DELIVRD"),
    )
    s.sms_result(
        "req-a",
        t(day1, 27),
        "sms_accepted",
        results.SmsAccepted(carrier=1, snapshot=SNAPSHOT, reason="accepted"),
    )
    # call-b: hangs up during the invalid-input guidance.
    s.started("call-b", t(day1, 60), SHOP)
    s.prompt("call-b", 1, t(day1, 61), "main")
    s.digits("call-b", 1, t(day1, 65), "7")
    s.ended("call-b", t(day1, 70), events.END_REASON_CALLER_HANGUP, 2)
    s.prompt("call-b", 2, t(day1, 65), "main", reason=2, inv=1)
    # call-c: main → 2 → sub → 1 → transfer; the end arrives before the transfer action.
    s.started("call-c", t(day1, 120), SHOP, OTHER_CALLER)
    s.prompt("call-c", 1, t(day1, 121), "main")
    s.digits("call-c", 1, t(day1, 125), "2")
    s.prompt("call-c", 2, t(day1, 125), "sub")
    s.digits("call-c", 2, t(day1, 130), "1")
    s.ended("call-c", t(day1, 136), events.END_REASON_TRANSFERRED, 3)
    s.transferred("call-c", 3, t(day1, 135))
    s.transfer("call-c", 3, t(day1, 130), "sub")
    # call-d: a number without a flow; call-e: hangs up during the first prompt.
    s.started("call-d", t(day1, 180), SUPPORT, "+819033334444")
    s.hangup("call-d", 1, t(day1, 180), "not_in_service", route="")
    s.ended("call-d", t(day1, 190), events.END_REASON_SYSTEM_HANGUP, 1)
    s.started("call-e", t(day1, 240), SUPPORT, "+819055556666")
    s.prompt("call-e", 1, t(day1, 241), "main")
    s.ended("call-e", t(day1, 245), events.END_REASON_CALLER_HANGUP, 1)
    # SMS outcomes: undelivered, failed, no result yet, and (next day) rejected.
    s.sms_call("call-h", "req-h", t(day1, 300), SHOP)
    s.sms_result(
        "req-h",
        t(day1, 312),
        "sms_accepted",
        results.SmsAccepted(carrier=2, snapshot=SNAPSHOT, reason="accepted"),
    )
    s.sms_result(
        "req-h",
        t(day1, 400),
        "sms_undelivered",
        results.SmsUndelivered(carrier=2, snapshot=SNAPSHOT, reason="UNDELIV", error_code="012"),
    )
    s.sms_call("call-j", "req-j", t(day1, 360), SHOP)
    s.sms_result(
        "req-j",
        t(day1, 500),
        "sms_failed",
        results.SmsFailed(reason="retries_exhausted", carrier=3, attempts=5, snapshot=SNAPSHOT),
    )
    s.sms_call("call-k", "req-k", t(day1, 420), SHOP)
    s.sms_call("call-f", "req-f", day2, SHOP)
    s.sms_result(
        "req-f",
        t(day2, 12),
        "sms_rejected",
        results.SmsRejected(
            reason=results.REJECT_REASON_UNSUPPORTED_CARRIER, detail="MVNO without SMS", snapshot=SNAPSHOT
        ),
    )
    return s.records


# (day offset, dialed number) → figures: calls, abandoned, requested, accepted, delivered, undelivered,
# rejected by reason, failed.
EXPECTED = {
    (0, SHOP): (6, 1, 4, 2, 1, 1, {}, 1),
    (0, SUPPORT): (2, 1, 0, 0, 0, 0, {}, 0),
    (1, SHOP): (1, 0, 1, 0, 0, 0, {"unsupported_carrier": 1}, 0),
}
# route → reached, invalid inputs, time-outs, abandoned here (both days, both numbers).
EXPECTED_FUNNEL = {
    "main": (8, 2, 1, 2),
    "sub": (1, 0, 0, 0),
}
# (day offset, Asia/Tokyo hour) → calls, SMS requested, accepted (送信完了), delivered (到達), both numbers;
# every other hour of the two days is all zero. Day 1's calls start 10:00–10:07, day 2's at 00:30.
EXPECTED_HOURLY = {
    (0, 10): (8, 4, 2, 1),
    (1, 0): (1, 1, 0, 0),
}
