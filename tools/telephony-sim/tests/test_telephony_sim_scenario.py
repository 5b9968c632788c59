"""Scenario files, behaviour mixes and the deterministic draw of callers."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from hibiki_telephony_sim.scenario import (
    Answer,
    Keys,
    ScenarioError,
    draw_callers,
    load_scenario,
    parse_mix,
    parse_scenario,
)


def test_short_form_maps_dialed_numbers_to_digits() -> None:
    scenario = parse_scenario({"+81312345678": {"right": "1", "wrong": "9"}})
    assert scenario.numbers["+81312345678"].keys == Keys("1", "9", sms=True)
    assert "right" in scenario.mix and scenario.unknown_numbers


def test_long_form_with_routes_custom_behaviours_and_mix(tmp_path: Path) -> None:
    path = tmp_path / "scenario.json"
    path.write_text(
        json.dumps(
            {
                "numbers": {
                    "+81312345678": {
                        "right": "1",
                        "wrong": "9",
                        "routes": {"operator-menu": {"right": "2", "wrong": "8", "sms": False}},
                    }
                },
                "behaviours": {"stubborn": {"plan": ["wrong", "wrong", "right"]}},
                "mix": "stubborn=3,unknown=1",
                "unknown_numbers": ["+81300000001"],
                "caller_numbers": ["+819011112222"],
                "withheld_ratio": 0.0,
            }
        )
    )
    scenario = load_scenario(path)
    entry = scenario.numbers["+81312345678"]
    assert entry.keys_for("r-1", "operator-menu") == Keys("2", "8", sms=False)
    assert entry.keys_for("r-2", "main") == Keys("1", "9")
    stubborn = scenario.behaviours["stubborn"]
    assert [stubborn.answer(i) for i in range(5)] == [Answer.WRONG, Answer.WRONG] + [Answer.RIGHT] * 3
    assert scenario.mix == {"stubborn": 3.0, "unknown": 1.0}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"+81312345678": {"right": "1", "wrong": "1"}}, "must differ"),
        ({"+81312345678": {"right": "x", "wrong": "9"}}, "DTMF"),
        ({"numbers": {"0312345678": {"right": "1", "wrong": "9"}}}, "E.164"),
        (
            {"numbers": {"+81312345678": {"right": "1", "wrong": "9"}}, "mix": {"nope": 1}},
            "unknown behaviour",
        ),
        ({"numbers": {}, "mix": {"right": 1}}, "needs at least one number"),
        ({"numbers": {"+81312345678": {"right": "1", "wrong": "9"}}, "withheld_ratio": 2}, "withheld_ratio"),
        ({"numbers": {}, "colour": "red"}, "unknown scenario keys"),
        ({"numbers": {}, "behaviours": {"b": {"plan": ["dance"]}}, "mix": {"b": 1}}, "dance"),
        (
            {
                "numbers": {"+81312345678": {"right": "1", "wrong": "9"}},
                "unknown_numbers": ["+81312345678"],
            },
            "both as known and unknown",
        ),
    ],
)
def test_bad_scenarios_are_refused_with_a_reason(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(raw)


def test_parse_mix() -> None:
    assert parse_mix("right=5, hangup=0.5,unknown") == {"right": 5.0, "hangup": 0.5, "unknown": 1.0}
    with pytest.raises(ScenarioError):
        parse_mix("right=lots")


def test_draw_is_deterministic_and_follows_the_weights() -> None:
    scenario = parse_scenario(
        {
            "numbers": {
                "+81312345678": {"right": "1", "wrong": "9"},
                "+81312340000": {"right": "2", "wrong": "8"},
            },
            "mix": {"right": 3, "unknown": 1},
            "withheld_ratio": 0.25,
        }
    )
    first = list(itertools.islice(draw_callers(scenario, run_id="r", seed=7), 400))
    again = list(itertools.islice(draw_callers(scenario, run_id="r", seed=7), 400))
    assert first == again
    assert [c.call_id for c in first[:2]] == ["r-000000", "r-000001"]
    names = Counter(c.behaviour.name for c in first)
    assert 250 < names["right"] < 350 and names["right"] + names["unknown"] == 400
    for c in first:
        if c.behaviour.unknown_number:
            assert c.entry is None and c.dialed_number in scenario.unknown_numbers
        else:
            assert c.entry is scenario.numbers[c.dialed_number]
        assert c.withheld == (c.caller_number == "")
        assert c.withheld or re.fullmatch(r"\+8190[1-9]\d{7}", c.caller_number)
    assert 50 < sum(c.withheld for c in first) < 150
    other = list(itertools.islice(draw_callers(scenario, run_id="r", seed=8), 400))
    assert other != first


def test_schedule_assigns_behaviours_in_turn() -> None:
    scenario = parse_scenario({"+81312345678": {"right": "1", "wrong": "9"}})
    callers = itertools.islice(
        draw_callers(scenario, run_id="r", seed=0, schedule=("hangup", "unknown", "timeout_then_right")), 6
    )
    assert [c.behaviour.name for c in callers] == ["hangup", "unknown", "timeout_then_right"] * 2
    with pytest.raises(ScenarioError, match="unknown behaviour"):
        next(draw_callers(scenario, run_id="r", seed=0, schedule=("flying",)))


def test_the_example_scenario_loads() -> None:
    example = Path(__file__).resolve().parent.parent / "scenario.example.json"
    scenario = load_scenario(example)
    assert set(scenario.numbers) == {"+81312345678", "+81312340000"}
    assert scenario.numbers["+81312340000"].keys_for("", "operator-menu") == Keys("2", "8", sms=False)
    assert scenario.behaviours["stubborn"].plan == (Answer.WRONG, Answer.WRONG, Answer.RIGHT)
