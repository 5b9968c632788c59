"""What the simulated callers dial and how they behave: the scenario file, the behaviour mix, the draw.

Pure: no broker, no clock. The same scenario, seed and run id always draw the same callers.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any


class ScenarioError(ValueError):
    """The scenario file or the behaviour mix is not usable."""


class Answer(StrEnum):
    """What a caller does when asked to key digits (one PlayAndCollect)."""

    RIGHT = "right"  # keys the digits that lead where the caller wants to go
    WRONG = "wrong"  # keys digits the menu does not offer
    TIMEOUT = "timeout"  # keys nothing; the first-digit timer expires
    HANGUP = "hangup"  # hangs up while the guidance is playing (途中放棄)


@dataclass(frozen=True)
class Behaviour:
    """A named caller plan: answers to successive PlayAndCollects, the last one repeating."""

    name: str
    plan: tuple[Answer, ...]
    unknown_number: bool = False

    def answer(self, attempt: int) -> Answer:
        """The answer to the `attempt`-th PlayAndCollect of the call (0-based)."""
        return self.plan[min(attempt, len(self.plan) - 1)]


BUILTIN_BEHAVIOURS: Mapping[str, Behaviour] = {
    b.name: b
    for b in (
        Behaviour("right", (Answer.RIGHT,)),
        Behaviour("wrong", (Answer.WRONG,)),
        Behaviour("wrong_then_right", (Answer.WRONG, Answer.RIGHT)),
        Behaviour("timeout", (Answer.TIMEOUT,)),
        Behaviour("timeout_then_right", (Answer.TIMEOUT, Answer.RIGHT)),
        Behaviour("hangup", (Answer.HANGUP,)),
        Behaviour("wrong_then_hangup", (Answer.WRONG, Answer.HANGUP)),
        Behaviour("unknown", (Answer.RIGHT,), unknown_number=True),
    )
}

DEFAULT_MIX: Mapping[str, float] = {
    "right": 50,
    "wrong_then_right": 15,
    "timeout_then_right": 10,
    "wrong": 5,
    "timeout": 5,
    "hangup": 10,
    "unknown": 5,
}

DEFAULT_UNKNOWN_NUMBERS = ("+81399990000",)


@dataclass(frozen=True)
class Keys:
    """Digits for one menu: the right choice, a wrong one, and whether the right one promises an SMS."""

    right: str
    wrong: str
    sms: bool = True


@dataclass(frozen=True)
class NumberEntry:
    """A dialed number of the tenant and the digits its menus expect (per route id or name if they differ)."""

    number: str
    keys: Keys
    routes: Mapping[str, Keys] = field(default_factory=dict)

    def keys_for(self, route_id: str, route_name: str) -> Keys:
        return self.routes.get(route_id) or self.routes.get(route_name) or self.keys


@dataclass(frozen=True)
class Scenario:
    numbers: Mapping[str, NumberEntry]
    mix: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    behaviours: Mapping[str, Behaviour] = field(default_factory=lambda: dict(BUILTIN_BEHAVIOURS))
    unknown_numbers: tuple[str, ...] = DEFAULT_UNKNOWN_NUMBERS
    caller_numbers: tuple[str, ...] = ()
    withheld_ratio: float = 0.0


@dataclass(frozen=True)
class CallerSpec:
    """One simulated call, decided before it starts."""

    index: int
    call_id: str
    dialed_number: str
    caller_number: str  # "" when withheld
    withheld: bool
    behaviour: Behaviour
    entry: NumberEntry | None  # None for an unknown number

    def keys_for(self, route_id: str, route_name: str) -> Keys:
        if self.entry is None:  # an unknown number has no menu; key something harmless if asked
            return Keys(right="1", wrong="9", sms=False)
        return self.entry.keys_for(route_id, route_name)


def _keys(raw: Any, where: str) -> Keys:
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"{where}: expected an object with 'right' and 'wrong' digits")
    right, wrong = str(raw.get("right", "")), str(raw.get("wrong", ""))
    for name, digits in (("right", right), ("wrong", wrong)):
        if not digits or any(c not in "0123456789*#" for c in digits):
            raise ScenarioError(f"{where}.{name}: {digits!r} is not a DTMF digit string")
    if right == wrong:
        raise ScenarioError(f"{where}: right and wrong digits must differ")
    return Keys(right=right, wrong=wrong, sms=bool(raw.get("sms", True)))


def _number(raw: Any, where: str) -> str:
    text = str(raw)
    if not (text.startswith("+") and text[1:].isdigit() and 8 <= len(text) <= 16):
        raise ScenarioError(f"{where}: {text!r} is not an E.164 number")
    return text


def parse_mix(text: str) -> dict[str, float]:
    """`right=5,wrong_then_right=2` → weights."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, weight = part.partition("=")
        try:
            mix[name.strip()] = float(weight) if sep else 1.0
        except ValueError as error:
            raise ScenarioError(f"mix: weight of {name!r} is not a number") from error
    return mix


def _plan(raw: Any, where: str) -> tuple[Answer, ...]:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, Sequence) or not raw:
        raise ScenarioError(f"{where}: a plan is a non-empty list of {[a.value for a in Answer]}")
    try:
        return tuple(Answer(str(a)) for a in raw)
    except ValueError as error:
        raise ScenarioError(f"{where}: {error}") from error


def parse_scenario(raw: Mapping[str, Any]) -> Scenario:
    """A scenario from its JSON form.

    Either the short form `{"+81312345678": {"right": "1", "wrong": "9"}}`, or
    `{"numbers": {...}, "mix": {...}, "behaviours": {"name": {"plan": [...], "unknown_number": false}},
    "unknown_numbers": [...], "caller_numbers": [...], "withheld_ratio": 0.1}`.
    """
    if not isinstance(raw, Mapping):
        raise ScenarioError("a scenario is a JSON object")
    if raw and all(str(k).startswith("+") for k in raw):
        raw = {"numbers": raw}
    unknown_keys = set(raw) - {
        "numbers", "mix", "behaviours", "unknown_numbers", "caller_numbers", "withheld_ratio"
    }  # fmt: skip
    if unknown_keys:
        raise ScenarioError(f"unknown scenario keys: {sorted(unknown_keys)}")
    numbers: dict[str, NumberEntry] = {}
    for number, entry in dict(raw.get("numbers", {})).items():
        where = f"numbers[{number}]"
        routes = entry.get("routes", {}) if isinstance(entry, Mapping) else {}
        numbers[_number(number, where)] = NumberEntry(
            number=number,
            keys=_keys(entry, where),
            routes={str(r): _keys(k, f"{where}.routes[{r}]") for r in routes for k in [routes[r]]},
        )
    behaviours = dict(BUILTIN_BEHAVIOURS)
    for name, spec in dict(raw.get("behaviours", {})).items():
        if not isinstance(spec, Mapping):
            spec = {"plan": spec}
        behaviours[name] = Behaviour(
            name, _plan(spec.get("plan"), f"behaviours[{name}]"), bool(spec.get("unknown_number", False))
        )
    mix_raw = raw.get("mix", DEFAULT_MIX)
    mix = parse_mix(mix_raw) if isinstance(mix_raw, str) else {str(k): float(v) for k, v in mix_raw.items()}
    unknown = tuple(
        _number(n, "unknown_numbers") for n in raw.get("unknown_numbers", DEFAULT_UNKNOWN_NUMBERS)
    )
    callers = tuple(_number(n, "caller_numbers") for n in raw.get("caller_numbers", ()))
    scenario = Scenario(
        numbers=numbers,
        mix=mix,
        behaviours=behaviours,
        unknown_numbers=unknown,
        caller_numbers=callers,
        withheld_ratio=float(raw.get("withheld_ratio", 0.0)),
    )
    validate(scenario)
    return scenario


def validate(scenario: Scenario, schedule: Sequence[str] = ()) -> None:
    """Raise ScenarioError unless callers can be drawn from the scenario."""
    if not 0.0 <= scenario.withheld_ratio <= 1.0:
        raise ScenarioError("withheld_ratio must be between 0 and 1")
    overlap = set(scenario.unknown_numbers) & set(scenario.numbers)
    if overlap:
        raise ScenarioError(f"numbers listed both as known and unknown: {sorted(overlap)}")
    used = [name for name, weight in scenario.mix.items() if weight > 0] + list(schedule)
    if not schedule and not used:
        raise ScenarioError("the mix gives no behaviour a positive weight")
    if any(w < 0 for w in scenario.mix.values()):
        raise ScenarioError("mix weights must not be negative")
    for name in used:
        behaviour = scenario.behaviours.get(name)
        if behaviour is None:
            raise ScenarioError(f"unknown behaviour {name!r} (known: {sorted(scenario.behaviours)})")
        if behaviour.unknown_number and not scenario.unknown_numbers:
            raise ScenarioError(f"behaviour {name!r} needs unknown_numbers")
        if not behaviour.unknown_number and not scenario.numbers:
            raise ScenarioError(f"behaviour {name!r} needs at least one number in the scenario")


def load_scenario(path: Path) -> Scenario:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ScenarioError(f"cannot read scenario {path}: {error}") from error
    return parse_scenario(raw)


def draw_callers(
    scenario: Scenario,
    *,
    run_id: str,
    seed: int,
    schedule: Sequence[str] = (),
    start: int = 0,
) -> Iterator[CallerSpec]:
    """An endless, deterministic stream of callers: behaviours from `schedule` in turn, else from the mix."""
    validate(scenario, schedule)
    rng = random.Random(f"{seed}:{run_id}")
    names = [n for n, w in scenario.mix.items() if w > 0]
    weights = [scenario.mix[n] for n in names]
    known = sorted(scenario.numbers)
    index = start
    while True:
        name = schedule[index % len(schedule)] if schedule else rng.choices(names, weights)[0]
        behaviour = scenario.behaviours[name]
        if behaviour.unknown_number:
            dialed, entry = rng.choice(scenario.unknown_numbers), None
        else:
            dialed = rng.choice(known)
            entry = scenario.numbers[dialed]
        withheld = rng.random() < scenario.withheld_ratio
        if withheld:
            caller = ""
        elif scenario.caller_numbers:
            caller = rng.choice(scenario.caller_numbers)
        else:
            # 090-0… is not allocated: such callers would be refused as invalid SMS recipients.
            caller = f"+8190{rng.randrange(10**7, 10**8)}"
        yield CallerSpec(
            index=index,
            call_id=f"{run_id}-{index:06d}",
            dialed_number=dialed,
            caller_number=caller,
            withheld=withheld,
            behaviour=behaviour,
            entry=entry,
        )
        index += 1
