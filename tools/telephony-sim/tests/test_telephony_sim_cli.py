"""Command line and environment of hibiki-telephony-sim (no broker needed)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from hibiki_telephony_sim.cli import build_parser, config_from_args, main
from hibiki_telephony_sim.scenario import ScenarioError
from hibiki_telephony_sim.simulator import Summary


@pytest.fixture
def scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps({"+81312345678": {"right": "1", "wrong": "9"}}))
    return path


def test_flags_make_the_run_config(scenario_file: Path) -> None:
    args = build_parser().parse_args(
        [
            "--scenario", str(scenario_file), "--calls", "20", "--rate", "2", "--concurrency", "5",
            "--tenant", "acme", "--speed", "10", "--mix", "right=1,hangup=1", "--run-id", "r1",
            "--schedule", "hangup, right",
        ]
    )  # fmt: skip
    config, scenario = config_from_args(args)
    assert (config.tenant_id, config.run_id, config.calls, config.duration) == ("acme", "r1", 20, None)
    assert (config.rate, config.concurrency, config.speed) == (2.0, 5, 10.0)
    assert config.schedule == ("hangup", "right")
    assert scenario.mix == {"right": 1.0, "hangup": 1.0}
    assert args.bootstrap == "127.0.0.1:9092" and args.guidance_endpoint is None


def test_environment_variables_are_the_defaults(monkeypatch: pytest.MonkeyPatch, scenario_file: Path) -> None:
    monkeypatch.setenv("HIBIKI_SIM_SCENARIO", str(scenario_file))
    monkeypatch.setenv("HIBIKI_SIM_DURATION", "30")
    monkeypatch.setenv("HIBIKI_SIM_RATE", "0.5")
    monkeypatch.setenv("HIBIKI_SIM_TENANT", "demo2")
    monkeypatch.setenv("HIBIKI_SIM_GUIDANCE_ENDPOINT", "127.0.0.1:50051")
    monkeypatch.setenv("HIBIKI_SIM_FROM_BEGINNING", "true")
    monkeypatch.setenv("HIBIKI_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    args = build_parser().parse_args([])
    config, _ = config_from_args(args)
    assert (config.duration, config.rate, config.tenant_id) == (30.0, 0.5, "demo2")
    assert config.run_id.startswith("sim-")
    assert args.guidance_endpoint == "127.0.0.1:50051" and args.from_beginning
    assert args.bootstrap == "127.0.0.1:19092"


def test_missing_or_bad_settings_are_refused(scenario_file: Path, tmp_path: Path) -> None:
    parser = build_parser()
    with pytest.raises(ScenarioError, match="--scenario"):
        config_from_args(parser.parse_args(["--calls", "1"]))
    with pytest.raises(ValueError, match="--calls or --duration"):
        config_from_args(parser.parse_args(["--scenario", str(scenario_file)]))
    with pytest.raises(ScenarioError, match="unknown behaviour"):
        config_from_args(
            parser.parse_args(["--scenario", str(scenario_file), "--calls", "1", "--mix", "x=1"])
        )
    with pytest.raises(ScenarioError, match="cannot read"):
        config_from_args(parser.parse_args(["--scenario", str(tmp_path / "none.json"), "--calls", "1"]))


def test_main_exits_2_on_a_bad_configuration(capsys: pytest.CaptureFixture[str], scenario_file: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--scenario", str(scenario_file)])
    assert exit_info.value.code == 2
    assert "--calls or --duration" in capsys.readouterr().err


def test_summary_lists_calls_by_outcome() -> None:
    summary = Summary(
        "r1",
        calls=5,
        outcomes=Counter({"hangup:completed": 3, "abandoned": 2}),
        sms_promised=3,
        events_sent=17,
        actions_received=12,
        duplicate_actions=2,
        elapsed_seconds=2.5,
    )
    text = "\n".join(summary.lines())
    assert "r1: 5 calls in 2.5s" in text
    assert "hangup:completed" in text and "abandoned" in text and "sms promised" in text
    assert summary.as_dict()["outcomes"] == {"hangup:completed": 3, "abandoned": 2}
