from datetime import UTC, datetime, timedelta

import pytest
from hibiki_sms_gateway.domain.carrier import Carrier, parse_carrier
from hibiki_sms_gateway.domain.cooldown import CooldownPolicy
from hibiki_sms_gateway.domain.lifecycle import IllegalTransition, MessageState, advance
from hibiki_sms_gateway.domain.receipts import Receipt, outcome_of, parse_receipt
from hibiki_sms_gateway.domain.recipient import Recipient, Refusal, RejectReason, classify_recipient


@pytest.mark.parametrize("number", ["09012345678", "+818012345678", "070-1234-5678"])
def test_japanese_mobile_numbers_are_accepted_as_e164(number: str) -> None:
    result = classify_recipient(number)
    assert isinstance(result, Recipient)
    assert result.e164.startswith("+81") and len(result.e164) == 13


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("0312345678", RejectReason.LANDLINE_NUMBER),
        ("05012345678", RejectReason.IP_PHONE_NUMBER),
        ("0120123456", RejectReason.TOLL_FREE_NUMBER),
        ("08001234567", RejectReason.TOLL_FREE_NUMBER),
        ("+14155552671", RejectReason.FOREIGN_NUMBER),
        ("0901234", RejectReason.INVALID_NUMBER),
        ("hello", RejectReason.INVALID_NUMBER),
        ("02012345678", RejectReason.M2M_NUMBER),
        ("anonymous", RejectReason.WITHHELD_NUMBER),
    ],
)
def test_numbers_that_cannot_receive_sms_are_refused_with_distinct_reasons(
    number: str, reason: RejectReason
) -> None:
    result = classify_recipient(number)
    assert isinstance(result, Refusal)
    assert result.reason == reason


def test_m2m_numbers_are_accepted_when_enabled() -> None:
    assert classify_recipient("02012345678", allow_m2m=True) == Recipient("+812012345678")


def test_carrier_names_include_au_as_kddi_and_refuse_others() -> None:
    assert parse_carrier("au") == Carrier.KDDI
    assert parse_carrier("SoftBank") == Carrier.SOFTBANK
    assert parse_carrier("willcom") is None


def test_cooldown_refuses_a_second_sms_within_the_interval_and_too_many_per_window() -> None:
    policy = CooldownPolicy(min_interval=timedelta(seconds=60), max_sends=2, window=timedelta(hours=1))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert policy.refusal([], now) is None
    assert policy.refusal([now - timedelta(seconds=30)], now) is not None
    assert policy.refusal([now - timedelta(minutes=5)], now) is None
    assert policy.refusal([now - timedelta(minutes=5), now - timedelta(minutes=10)], now) is not None
    assert policy.refusal([now - timedelta(hours=2), now - timedelta(hours=3)], now) is None


def test_the_lifecycle_allows_the_normal_path_and_refuses_going_back() -> None:
    state = MessageState.REQUESTED
    for target in (
        MessageState.QUEUED,
        MessageState.SUBMITTING,
        MessageState.ACCEPTED,
        MessageState.DELIVERED,
    ):
        state = advance(state, target)
    assert state == MessageState.DELIVERED
    with pytest.raises(IllegalTransition):
        advance(MessageState.FAILED, MessageState.DELIVERED)
    with pytest.raises(IllegalTransition):
        advance(MessageState.REQUESTED, MessageState.ACCEPTED)
    with pytest.raises(IllegalTransition):  # a queued message has not been on the wire: never uncertain
        advance(MessageState.QUEUED, MessageState.UNCERTAIN)
    assert advance(MessageState.SUBMITTING, MessageState.UNCERTAIN) == MessageState.UNCERTAIN
    # A receipt still tells the truth about a message a crash left uncertain.
    assert advance(MessageState.UNCERTAIN, MessageState.DELIVERED) == MessageState.DELIVERED


def test_a_receipt_text_gives_id_state_and_error() -> None:
    text = (
        "id:abc123 sub:001 dlvrd:000 submit date:2601011200 done date:2601011201 stat:UNDELIV err:006 text:"
    )
    assert parse_receipt(text) == Receipt("abc123", "UNDELIV", "006", "", "2601011200")
    assert parse_receipt(text, recipient="819012345678").recipient == "819012345678"  # type: ignore[union-attr]
    assert parse_receipt("id:abc stat:ENROUTE") is None
    assert parse_receipt("hello") is None


def test_a_multipart_message_is_delivered_only_when_every_part_is() -> None:
    ok = Receipt("1", "DELIVRD", "000")
    assert outcome_of([ok, None]) is None
    delivered = outcome_of([ok, Receipt("2", "DELIVRD", "000")])
    assert delivered is not None and delivered.delivered
    undelivered = outcome_of([ok, Receipt("2", "EXPIRED", "001")])
    assert undelivered is not None and (undelivered.delivered, undelivered.state) == (False, "EXPIRED")
