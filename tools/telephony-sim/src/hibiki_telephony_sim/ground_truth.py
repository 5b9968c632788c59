"""The ground-truth log: one JSON line per simulated call, written when the call ends."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any


@dataclass
class CallLog:
    """Everything one simulated caller did and experienced."""

    run_id: str
    tenant_id: str
    call_id: str
    dialed_number: str
    caller_number: str
    caller_withheld: bool
    behaviour: str
    plan: list[str]
    unknown_number: bool
    started_at: str = ""
    ended_at: str = ""
    duration_seconds: float = 0.0
    actions: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    outcome: str = "in_progress"
    end_reason: str = ""
    hangup_reason: str = ""
    transferred_to: str = ""
    abandoned: bool = False
    gave_up: bool = False
    sms_promised: bool = False
    duplicate_actions: int = 0
    audio_bytes: int = 0
    audio_errors: list[str] = field(default_factory=list)
    error: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))


class GroundTruthWriter:
    """Appends call lines to a JSON-lines file, flushed per line so a killed run keeps what it wrote."""

    def __init__(self, path: Path, *, append: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: IO[str] = path.open("a" if append else "w", encoding="utf-8")

    def write(self, log: CallLog) -> None:
        self._file.write(log.to_json() + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_ground_truth(path: Path) -> list[dict[str, Any]]:
    """The call lines of a ground-truth file."""
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]
