"""The call session: play-and-collect timers, barge-in, transfers and endings, without SIP or a clock."""

from __future__ import annotations

from hibiki_media_gateway.domain.session import (
    CallEnded,
    CallSession,
    CallStarted,
    CallTransferred,
    DigitsCollected,
    Effect,
    EndReason,
    HangUp,
    Hangup,
    InputTimedOut,
    Phase,
    Play,
    PlayAndCollect,
    PlayPrompts,
    Prompt,
    PromptFinished,
    Publish,
    StartTimer,
    StopPlayback,
    TimeoutKind,
    Transfer,
    TransferTo,
)

MENU = Prompt("g-menu", "ご用件の番号を押してください")


def events(effects: list[Effect]) -> list[object]:
    return [e.event for e in effects if isinstance(e, Publish)]


def timer(effects: list[Effect]) -> StartTimer:
    (found,) = [e for e in effects if isinstance(e, StartTimer)]
    return found


def collect(action_id: str = "c:2", max_digits: int = 1, terminator: str = "") -> PlayAndCollect:
    return PlayAndCollect(action_id, (MENU,), max_digits, terminator, 5.0, 3.0)


def started() -> CallSession:
    session = CallSession("c", idle_timeout=15.0)
    effects = session.start("+81312345678", "+819012345678", False)
    assert events(effects) == [CallStarted("+81312345678", "+819012345678", False)]
    assert timer(effects).seconds == 15.0
    return session


def playing(session: CallSession, action: PlayAndCollect | Play | Hangup | Transfer) -> int:
    (play,) = [e for e in session.act(action) if isinstance(e, PlayPrompts)]
    assert play.prompts == action.prompts
    return play.playback


def test_a_menu_plays_then_waits_for_the_first_digit_and_one_key_completes_it() -> None:
    session = started()
    playback = playing(session, collect(max_digits=1))
    first_digit = timer(session.playback_ended(playback))
    assert first_digit.seconds == 5.0

    effects = session.key("2")
    assert events(effects) == [DigitsCollected("c:2", "2", False)]
    assert timer(effects).seconds == 15.0  # waiting for routing again
    assert [e.sequence for e in effects if isinstance(e, Publish)] == [2]


def test_a_key_during_the_prompt_stops_it_and_counts() -> None:
    session = started()
    playing(session, collect(max_digits=11, terminator="#"))
    effects = session.key("0")
    assert StopPlayback() in effects and session.phase is Phase.COLLECTING
    assert timer(effects).seconds == 3.0  # inter-digit
    for key in "9012345678":
        session.key(key)
    assert events(session.key("#")) == []  # max_digits reached before: collected already
    assert session.phase is Phase.WAITING


def test_the_terminator_ends_input_early_and_is_not_a_digit() -> None:
    session = started()
    playback = playing(session, collect(max_digits=11, terminator="#"))
    session.playback_ended(playback)
    session.key("1")
    session.key("2")
    assert events(session.key("#")) == [DigitsCollected("c:2", "12", True)]


def test_silence_times_out_on_the_first_digit_and_a_pause_on_the_next() -> None:
    session = started()
    playback = playing(session, collect(max_digits=4))
    waiting = timer(session.playback_ended(playback))
    assert events(session.timer_fired(waiting.timer)) == [InputTimedOut("c:2", TimeoutKind.FIRST_DIGIT, "")]

    playback = playing(session, collect("c:3", max_digits=4))
    session.playback_ended(playback)
    pause = timer(session.key("7"))
    assert events(session.timer_fired(pause.timer)) == [InputTimedOut("c:3", TimeoutKind.INTER_DIGIT, "7")]


def test_a_timer_or_playback_replaced_meanwhile_changes_nothing() -> None:
    session = started()
    playback = playing(session, collect(max_digits=4))
    old = timer(session.playback_ended(playback))
    session.key("1")  # restarts the timer
    assert session.timer_fired(old.timer) == []
    assert session.playback_ended(playback) == []  # it already ended
    assert session.key("x") == []  # not a DTMF key


def test_play_reports_the_end_of_its_prompts() -> None:
    session = started()
    playback = playing(session, Play("c:4", (MENU,)))
    assert session.key("1") == []  # only a PlayAndCollect listens
    assert events(session.playback_ended(playback)) == [PromptFinished("c:4")]


def test_hangup_plays_its_prompts_then_ends_the_call() -> None:
    session = started()
    playback = playing(session, Hangup("c:5", (MENU,), "completed"))
    effects = session.playback_ended(playback)
    assert events(effects) == [CallEnded(EndReason.SYSTEM_HANGUP, "c:5")]
    assert effects[-1] == HangUp()
    assert session.ended and session.line_closed() == []


def test_a_transfer_is_reported_once_the_transferee_took_it() -> None:
    session = started()
    effects = session.act(Transfer("c:6", "+81311112222", ()))
    assert effects == [TransferTo("+81311112222")]
    effects = session.transfer_result(True)
    assert events(effects) == [
        CallTransferred("c:6", "+81311112222"),
        CallEnded(EndReason.TRANSFERRED, "c:6"),
    ]
    assert effects[-1] == HangUp()


def test_a_failed_transfer_ends_the_call_as_a_network_error() -> None:
    session = started()
    session.act(Transfer("c:6", "+81311112222", ()))
    assert events(session.transfer_result(False)) == [CallEnded(EndReason.NETWORK_ERROR, "c:6")]


def test_a_caller_hanging_up_mid_prompt_names_the_action_in_progress() -> None:
    session = started()
    playing(session, collect())
    effects = session.line_closed()
    assert events(effects) == [CallEnded(EndReason.CALLER_HANGUP, "c:2")]
    assert StopPlayback() in effects and HangUp() not in effects


def test_a_caller_hanging_up_between_actions_names_none() -> None:
    session = started()
    playback = playing(session, collect())
    session.playback_ended(playback)
    session.key("1")  # answered: waiting for routing
    assert events(session.line_closed()) == [CallEnded(EndReason.CALLER_HANGUP, "")]


def test_a_redelivered_action_is_carried_out_once() -> None:
    session = started()
    playing(session, collect())
    assert session.act(collect()) == []


def test_a_call_routing_leaves_in_silence_is_hung_up() -> None:
    session = CallSession("c", idle_timeout=15.0)
    idle = timer(session.start("+81312345678", "", True))
    effects = session.timer_fired(idle.timer)
    assert events(effects) == [CallEnded(EndReason.NETWORK_ERROR, "")]
    assert effects[-1] == HangUp()


def test_a_cut_off_call_ends_as_a_platform_failure() -> None:
    session = started()
    playing(session, collect())
    assert events(session.cut_off()) == [CallEnded(EndReason.PLATFORM_FAILURE, "c:2")]
