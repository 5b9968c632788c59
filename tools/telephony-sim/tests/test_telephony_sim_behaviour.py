"""The caller state machine: (plan, action) → replies, without a broker."""

from __future__ import annotations

from typing import Any

import pytest
from hibiki_telephony_sim.behaviour import (
    DEFAULT_FIRST_DIGIT_TIMEOUT,
    CallEnded,
    Caller,
    CallTransferred,
    DigitsCollected,
    EndReason,
    Hangup,
    InputTimedOut,
    Outcome,
    Play,
    PlayAndCollect,
    PromptFinished,
    Reply,
    Timing,
    Transfer,
)
from hibiki_telephony_sim.scenario import Answer, Behaviour, CallerSpec, Keys, NumberEntry

NUMBER = NumberEntry("+81312345678", Keys(right="1", wrong="9"), routes={"sub": Keys("2", "7", sms=False)})


def caller(*plan: Answer, withheld: bool = False, entry: NumberEntry | None = NUMBER) -> Caller:
    spec = CallerSpec(
        index=0,
        call_id="c-1",
        dialed_number=NUMBER.number,
        caller_number="" if withheld else "+819011112222",
        withheld=withheld,
        behaviour=Behaviour("test", plan),
        entry=entry,
    )
    return Caller(spec, Timing(think_seconds=0.5, hangup_fraction=0.5))


def pac(step: int, route: str = "menu", reason: str = "initial", **kw: Any) -> PlayAndCollect:
    fields: dict[str, Any] = {
        "prompts": (),
        "max_digits": 1,
        "terminator": "",
        "first_digit_timeout": 4.0,
        "inter_digit_timeout": 2.0,
        "route_id": route,
        "route_name": route.title(),
        "reason": reason,
    }
    fields.update(kw)
    return PlayAndCollect(action_id=f"c-1:{step}", step=step, **fields)


def hangup(step: int, reason: str = "completed") -> Hangup:
    return Hangup(f"c-1:{step}", step, (), reason, "menu")


def test_right_caller_keys_the_right_digit_after_the_prompt_and_is_promised_an_sms() -> None:
    c = caller(Answer.RIGHT)
    assert c.on_action(pac(1), prompt_seconds=3.0) == [Reply(3.5, DigitsCollected("c-1:1", "1", False))]
    assert not c.sms_promised  # routing has not answered the digit yet
    assert c.on_action(hangup(2), 2.0) == [Reply(2.0, CallEnded(EndReason.SYSTEM_HANGUP, "c-1:2"))]
    assert c.ended and c.outcome is Outcome.SYSTEM_HANGUP and c.outcome_label == "hangup:completed"
    assert c.sms_promised


def test_wrong_then_right_answers_the_reprompt_with_the_right_digit() -> None:
    c = caller(Answer.WRONG, Answer.RIGHT)
    assert c.on_action(pac(1), 1.0)[0].event == DigitsCollected("c-1:1", "9", False)
    assert c.on_action(pac(2, reason="invalid_input"), 1.0)[0].event == DigitsCollected("c-1:2", "1", False)
    assert c.answers == ["wrong", "right"]


def test_the_last_answer_of_a_plan_repeats() -> None:
    c = caller(Answer.WRONG)
    digits = [c.on_action(pac(step, reason="invalid_input"), 1.0)[0].event for step in (1, 2, 3)]
    assert [d.digits for d in digits if isinstance(d, DigitsCollected)] == ["9", "9", "9"]
    c.on_action(hangup(4, "fallback"), 1.0)
    assert c.outcome_label == "hangup:fallback"
    assert not c.sms_promised


def test_timeout_caller_waits_the_first_digit_timeout_after_the_prompt() -> None:
    c = caller(Answer.TIMEOUT, Answer.RIGHT)
    assert c.on_action(pac(1), 2.0) == [Reply(6.0, InputTimedOut("c-1:1", "first_digit"))]
    # an unset timeout falls back to the default
    replies = c.on_action(pac(2, reason="timeout", first_digit_timeout=0.0), 2.0)
    assert replies[0].event == DigitsCollected("c-1:2", "1", False)
    c2 = caller(Answer.TIMEOUT)
    assert c2.on_action(pac(1, first_digit_timeout=0.0), 1.0)[0].after == 1.0 + DEFAULT_FIRST_DIGIT_TIMEOUT


def test_hangup_caller_leaves_during_the_guidance_and_later_actions_are_not_answered() -> None:
    c = caller(Answer.RIGHT, Answer.HANGUP)
    c.on_action(pac(1), 1.0)
    replies = c.on_action(pac(2, reason="invalid_input"), 4.0)
    assert replies == [Reply(2.0, CallEnded(EndReason.CALLER_HANGUP, "c-1:2"))]
    assert c.outcome is Outcome.ABANDONED and c.outcome_label == "abandoned"
    assert not c.sms_promised  # the right key was answered with a re-prompt: judged invalid
    assert c.on_action(hangup(3), 1.0) == []
    assert c.late_actions == 1


def test_a_redelivered_action_is_answered_once() -> None:
    c = caller(Answer.RIGHT)
    assert c.on_action(pac(1), 1.0)
    assert c.on_action(pac(1), 1.0) == []
    assert c.duplicates == 1 and c.has_seen("c-1:1")


def test_play_is_answered_with_prompt_finished_and_transfer_ends_the_call() -> None:
    c = caller(Answer.RIGHT)
    assert c.on_action(Play("c-1:1", 1, (), "ann"), 3.0) == [Reply(3.0, PromptFinished("c-1:1"))]
    replies = c.on_action(Transfer("c-1:2", 2, "+81300001111", (), "op"), 1.5)
    assert [r.event for r in replies] == [
        CallTransferred("c-1:2", "+81300001111"),
        CallEnded(EndReason.TRANSFERRED, "c-1:2"),
    ]
    assert c.outcome is Outcome.TRANSFERRED and c.transferred_to == "+81300001111"


def test_keys_per_route_and_terminator_handling() -> None:
    c = caller(Answer.RIGHT)
    # route "sub" has its own digits and does not promise an SMS
    event = c.on_action(pac(1, route="sub", max_digits=3, terminator="#"), 1.0)[0].event
    assert event == DigitsCollected("c-1:1", "2", True)  # fewer than max_digits: ended with '#'
    c.on_action(hangup(2), 1.0)
    assert not c.sms_promised


def test_withheld_caller_is_never_promised_an_sms() -> None:
    c = caller(Answer.RIGHT, withheld=True)
    c.on_action(pac(1), 1.0)
    c.on_action(hangup(2), 1.0)
    assert not c.sms_promised


def test_unknown_number_hears_not_in_service_and_the_system_hangs_up() -> None:
    c = caller(Answer.RIGHT, entry=None)
    assert c.on_action(hangup(1, "not_in_service"), 2.0) == [
        Reply(2.0, CallEnded(EndReason.SYSTEM_HANGUP, "c-1:1"))
    ]
    assert c.outcome_label == "hangup:not_in_service"


@pytest.mark.parametrize("answered_first", [True, False])
def test_a_caller_who_hears_nothing_gives_up_during_the_current_action(answered_first: bool) -> None:
    c = caller(Answer.RIGHT)
    if answered_first:
        c.on_action(pac(1), 1.0)
    assert c.give_up() == [Reply(0.0, CallEnded(EndReason.CALLER_HANGUP, "c-1:1" if answered_first else ""))]
    assert c.outcome is Outcome.GAVE_UP
    assert c.give_up() == []
    assert not c.sms_promised
