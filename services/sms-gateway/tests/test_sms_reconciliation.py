"""Receipts whose part a crash lost find their message by handset and time — only when exactly one fits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hibiki_sms_gateway.domain.receipts import Receipt
from hibiki_sms_gateway.domain.reconciliation import Uncertain, handset_e164, reconcile, submit_times

SUBMITTED = datetime(2026, 11, 24, 3, 15, 20, tzinfo=UTC)
WINDOW = timedelta(days=3)


def uncertain(request_id: str, recipient: str = "+819012345678", at: datetime = SUBMITTED, parts: int = 1):  # type: ignore[no-untyped-def]
    return Uncertain(request_id, recipient, at, parts, 0)


def receipt(recipient: str = "819012345678", submit_date: str = "2611240315") -> Receipt:
    return Receipt("lost-id", "DELIVRD", "000", recipient, submit_date)


def test_handsets_are_read_in_the_forms_smscs_write_them() -> None:
    for written in ("819012345678", "+819012345678", "09012345678", "+81 90-1234-5678"):
        assert handset_e164(written) == "+819012345678", written
    assert handset_e164("") == ""


def test_submit_dates_are_read_on_utc_and_on_japan_time() -> None:
    assert submit_times("2611240315") == [
        datetime(2026, 11, 24, 3, 15, tzinfo=UTC),
        datetime(2026, 11, 23, 18, 15, tzinfo=UTC),
    ]
    assert len(submit_times("261124031520")) == 2
    assert submit_times("garbage") == []


def test_a_receipt_fitting_one_message_is_matched_to_it() -> None:
    later = SUBMITTED + timedelta(seconds=30)
    assert reconcile([(1, receipt(), later)], [uncertain("m1")], WINDOW) == {1: "m1"}
    # Japan time on the SMSC's clock (12:15 JST = 03:15 UTC).
    assert reconcile([(1, receipt(submit_date="2611241215"), later)], [uncertain("m1")], WINDOW) == {1: "m1"}
    # No submit date at all: the handset and the time it came decide.
    assert reconcile([(1, receipt(submit_date=""), later)], [uncertain("m1")], WINDOW) == {1: "m1"}


def test_another_handset_or_another_time_does_not_fit() -> None:
    later = SUBMITTED + timedelta(seconds=30)
    assert reconcile([(1, receipt(recipient="819099999999"), later)], [uncertain("m1")], WINDOW) == {}
    assert reconcile([(1, receipt(submit_date="2611240500"), later)], [uncertain("m1")], WINDOW) == {}
    # A receipt that arrived before the message was submitting is not its receipt.
    assert reconcile([(1, receipt(), SUBMITTED - timedelta(minutes=1))], [uncertain("m1")], WINDOW) == {}


def test_a_receipt_that_could_belong_to_two_messages_is_left_alone() -> None:
    later = SUBMITTED + timedelta(minutes=2)
    both = [uncertain("m1"), uncertain("m2", at=SUBMITTED + timedelta(seconds=50))]
    assert reconcile([(1, receipt(), later)], both, WINDOW) == {}
    # Told apart by the submit date when they were sent minutes apart.
    apart = [uncertain("m1"), uncertain("m2", at=SUBMITTED + timedelta(minutes=10))]
    assert reconcile([(1, receipt(), later)], apart, WINDOW) == {1: "m1"}


def test_a_message_gets_no_more_receipts_than_it_has_parts() -> None:
    later = SUBMITTED + timedelta(seconds=30)
    receipts = [(n, receipt(), later) for n in (1, 2, 3)]
    assert reconcile(receipts, [uncertain("m1", parts=2)], WINDOW) == {1: "m1", 2: "m1"}
