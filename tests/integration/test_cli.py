"""The `hibiki` console against the four services running as processes: each seed workflow as a CLI session
(guidance setup ①–⑲, SMS content change ①–⑧, the "SMS did not arrive" checklist ①–③), every command, and
what the operator sees when the services refuse.

guidance-tts, routing and sms-gateway run on the shared broker; reporting runs on this module's own broker
with a recorded event sequence, so that no other process reacts to those events (as in test_reporting).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hibiki_cli.main import app
from hibiki_devstack.infra import Broker, Postgres, free_port, kafka_broker
from hibiki_devstack.stack import ServiceSpec, Stack
from hibiki_reporting.domain.calendar import TOKYO, BusinessCalendar, report_date
from hibiki_reporting.domain.finalization import FinalizationSchedule
from hibiki_runtime.events import ALL_TOPICS
from hibiki_runtime.kafka import ensure_topics
from typer.testing import CliRunner, Result

from services.reporting.tests.reporting_events import EXPECTED, EXPECTED_FUNNEL, SHOP, recorded_sequence
from tests.integration.conftest import TENANT, start_service
from tests.integration.kafka_io import produce

DIALED = "+81501234000"
DAY1 = datetime.combine(
    report_date(datetime.now(UTC)) - timedelta(days=1), datetime.min.time(), TOKYO
).replace(hour=10)
DAY2 = DAY1 + timedelta(days=1)
Hibiki = Callable[..., Result]


@pytest.fixture(scope="module")
def endpoints() -> dict[str, str]:
    """HIBIKI_*_ENDPOINT of the services this module started so far (each service fixture adds its own)."""
    return {"COLUMNS": "240"}


@pytest.fixture(scope="module")
def guidance(postgres: Postgres, stack: Stack, endpoints: dict[str, str]) -> Iterator[ServiceSpec]:
    spec = start_service(stack, postgres, "guidance-tts", "hibiki_guidance_tts", HIBIKI_SYNTHESIS_WORKERS="1")
    endpoints["HIBIKI_GUIDANCE_ENDPOINT"] = f"127.0.0.1:{spec.grpc_port}"
    yield spec
    stack.stop_module("hibiki_guidance_tts")


@pytest.fixture(scope="module")
def routing(
    postgres: Postgres, stack: Stack, guidance: ServiceSpec, endpoints: dict[str, str]
) -> Iterator[ServiceSpec]:
    # Publishing records which guidances the flow plays in guidance-tts, as in production.
    spec = start_service(
        stack,
        postgres,
        "routing",
        "hibiki_routing",
        HIBIKI_GUIDANCE_ADDRESS=f"127.0.0.1:{guidance.grpc_port}",
        HIBIKI_GUIDANCE_TOKENS=json.dumps({TENANT: "token-platform"}),
    )
    endpoints["HIBIKI_ROUTING_ENDPOINT"] = f"127.0.0.1:{spec.grpc_port}"
    yield spec
    stack.stop_module("hibiki_routing")


@pytest.fixture(scope="module")
def sms_gateway(postgres: Postgres, stack: Stack, endpoints: dict[str, str]) -> Iterator[ServiceSpec]:
    spec = start_service(stack, postgres, "sms-gateway", "hibiki_sms_gateway")
    endpoints["HIBIKI_SMS_ENDPOINT"] = f"127.0.0.1:{spec.grpc_port}"
    yield spec
    stack.stop_module("hibiki_sms_gateway")


@pytest.fixture(scope="module")
async def report_broker(work_dir: Path) -> AsyncIterator[Broker]:
    with kafka_broker(free_port(), work_dir / "cli-broker.log") as running:
        await ensure_topics(running.bootstrap_servers, ALL_TOPICS, partitions=3)
        yield running


@pytest.fixture(scope="module")
def report_stack(work_dir: Path, report_broker: Broker, stack: Stack) -> Iterator[Stack]:
    own = Stack(
        work_dir / "cli-logs",
        {**stack.base_env, "HIBIKI_KAFKA_BOOTSTRAP_SERVERS": report_broker.bootstrap_servers},
        say=lambda _line: None,
    )
    yield own
    own.stop()


@pytest.fixture(scope="module")
async def reporting(
    report_stack: Stack, postgres: Postgres, report_broker: Broker, endpoints: dict[str, str]
) -> ServiceSpec:
    spec = start_service(report_stack, postgres, "reporting", "hibiki_reporting")
    endpoints["HIBIKI_REPORTING_ENDPOINT"] = f"127.0.0.1:{spec.grpc_port}"
    records = recorded_sequence(TENANT, DAY1)
    for topic in ("call.events", "call.actions", "sms.requests", "sms.results"):
        await produce(report_broker.bootstrap_servers, topic, [(k, m) for t, k, m in records if t == topic])
    return spec


@pytest.fixture(scope="module")
def hibiki(endpoints: dict[str, str]) -> Hibiki:
    """Runs `hibiki ARGS…` in-process with endpoints and token from the environment, as an operator would."""

    def run(*args: str, token: str = "token-a-operator", env: dict[str, str] | None = None) -> Result:
        return CliRunner().invoke(app, list(args), env={**endpoints, "HIBIKI_TOKEN": token, **(env or {})})

    return run


def ok_json(result: Result) -> Any:
    assert result.exit_code == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def prompt(guidance: ServiceSpec, hibiki: Hibiki) -> dict[str, str]:
    """Guidance setup ①–⑫: an audio file from text, registered as a PB-routing original guidance."""
    audio = ok_json(
        hibiki(
            "guidance",
            "create-file",
            "受付メニュー",
            "--text",
            "ご予約は1を、その他は2を押してください。",
            "--json",
        )
    )
    assert isinstance(audio, dict)
    guidance = ok_json(hibiki("guidance", "register", "受付メニュー", "--audio-file", audio["id"], "--json"))
    assert isinstance(guidance, dict)
    return {"audio_file": audio["id"], "guidance": guidance["id"]}


def test_guidance_setup_creates_registers_lists_and_plays(
    hibiki: Hibiki, prompt: dict[str, str], tmp_path: Path
) -> None:
    files = ok_json(hibiki("guidance", "list", "--files", "--name-contains", "受付", "--json"))
    assert [(f["id"], f["text"]) for f in files] == [
        (prompt["audio_file"], "ご予約は1を、その他は2を押してください。")
    ]
    guidances = ok_json(hibiki("guidance", "list", "--type", "pb-routing", "--json"))
    (mine,) = [g for g in guidances if g["id"] == prompt["guidance"]]
    assert (mine["type"], mine["speech_synthesis"], mine["audio_file_id"]) == (
        "GUIDANCE_TYPE_PB_ROUTING", True, prompt["audio_file"],
    )  # fmt: skip
    table = hibiki("guidance", "list")
    assert table.exit_code == 0 and "受付メニュー" in table.stdout and "オリジナルガイダンス" in table.stdout

    wav = tmp_path / "prompt.wav"
    played = hibiki("guidance", "play", prompt["guidance"], "--format", "mulaw", "-o", str(wav))
    assert played.exit_code == 0, played.stderr
    audio = wav.read_bytes()
    assert audio[:4] == b"RIFF" and audio[8:12] == b"WAVE" and len(audio) > 8000  # over a second at 8 kHz
    assert f"wrote {len(audio)} bytes" in played.stdout

    duplicate = hibiki("guidance", "create-file", "受付メニュー", "--text", "別の文")
    assert duplicate.exit_code == 3 and "ALREADY_EXISTS" in duplicate.stderr
    empty = hibiki("guidance", "create-file", "空", "--text", "")
    assert empty.exit_code == 3 and "INVALID_ARGUMENT" in empty.stderr and "• text:" in empty.stderr
    missing = hibiki("guidance", "register", "迷子", "--audio-file", "no-such-file")
    assert missing.exit_code == 4 and "no audio file has the id or name 'no-such-file'" in missing.stderr


def flow_file(tmp_path: Path, prompt_guidance: str) -> Path:
    flow = {
        "name": "予約窓口",
        "dialed_number": DIALED,
        "entry_node_id": "menu",
        "nodes": [
            {
                "id": "menu",
                "name": "メインメニュー",
                "menu": {
                    "prompt_guidance_id": prompt_guidance,
                    "digit_targets": {"1": "sms"},
                    "fallback_node_id": "bye",
                },
            },
            {"id": "sms", "send_sms": {"box_number": "100"}},
            {"id": "bye", "hangup": {}},
        ],
    }
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(flow, ensure_ascii=False), encoding="utf-8")
    return path


def test_routing_editing_session_searches_changes_validates_publishes_and_rolls_back(
    routing: ServiceSpec, hibiki: Hibiki, prompt: dict[str, str], tmp_path: Path
) -> None:
    created = ok_json(hibiki("routing", "create", str(flow_file(tmp_path, prompt["guidance"])), "--json"))
    flow_id = created["id"]
    # ⑮ search, ⑯ details
    found = ok_json(hibiki("routing", "search", "--name-contains", "予約", "--json"))
    assert [f["id"] for f in found] == [flow_id]
    shown = hibiki("routing", "show", flow_id)
    assert shown.exit_code == 0 and "メインメニュー" in shown.stdout and "system default" in shown.stdout
    # ⑰ 入力ミス時ガイダンス, ⑱ 入力タイムアウト時ガイダンス種別, ⑲ save (publish)
    miss = ok_json(
        hibiki("routing", "set-miss-guidance", flow_id, "menu", "--guidance", prompt["guidance"], "--json")
    )
    timeout = ok_json(hibiki("routing", "set-timeout-guidance", flow_id, "menu", "--none", "--json"))
    assert timeout["revision"] == miss["revision"] + 1
    (menu,) = [n for n in timeout["nodes"] if n["id"] == "menu"]
    assert menu["menu"]["invalid_input_guidance"] == {
        "kind": "GUIDANCE_CHOICE_KIND_ORIGINAL_GUIDANCE", "guidance_id": prompt["guidance"],
    }  # fmt: skip
    assert menu["menu"]["input_timeout_guidance"]["kind"] == "GUIDANCE_CHOICE_KIND_NONE"
    valid = hibiki("routing", "validate", flow_id)
    assert valid.exit_code == 0 and "valid" in valid.stdout
    # A dry run of the draft: wrong digit → miss guidance + prompt; timeout → prompt again; 1 → SMS.
    trial = ok_json(
        hibiki("routing", "dry-run", flow_id, "9", "timeout", "1", "--caller", "+819012345678", "--json")
    )
    answered = [step.get("answered", "") for step in trial["steps"]]
    assert answered[:4] == ["", "9", "timeout", "1"]
    reasons = [s["action"]["play_and_collect"]["reason"] for s in trial["steps"][:3]]
    assert reasons == ["PROMPT_REASON_INITIAL", "PROMPT_REASON_INVALID_INPUT", "PROMPT_REASON_TIMEOUT"]
    assert any(
        s.get("sms_request", {}).get("sms_requested", {}).get("box_number") == "100" for s in trial["steps"]
    )
    shown_trial = hibiki("routing", "dry-run", flow_id, "9", "--caller", "+819012345678")
    assert shown_trial.exit_code == 0 and "invalid_input" in shown_trial.stdout
    assert ok_json(hibiki("routing", "publish", flow_id, "--json"))["version"] == 1

    # A second change and publication, then back to version 1.
    ok_json(hibiki("routing", "set-miss-guidance", flow_id, "menu", "--system-default", "--json"))
    assert ok_json(hibiki("routing", "publish", flow_id, "--json"))["version"] == 2
    rolled = ok_json(hibiki("routing", "rollback", flow_id, "1", "--json"))
    assert rolled["version"] == 3
    live = ok_json(hibiki("routing", "show", flow_id, "--version", "3", "--json"))
    (menu,) = [n for n in live["flow"]["nodes"] if n["id"] == "menu"]
    assert menu["menu"]["invalid_input_guidance"]["guidance_id"] == prompt["guidance"]
    assert [(v["version"], v["live"]) for v in live["versions"]] == [(1, False), (2, False), (3, True)]
    # The rollback made version 1 the draft as well: the next publish cannot bring version 2 back.
    (draft_menu,) = [
        n for n in ok_json(hibiki("routing", "show", flow_id, "--json"))["flow"]["nodes"] if n["id"] == "menu"
    ]
    assert draft_menu == menu

    stale = hibiki(
        "routing", "set-timeout-guidance", flow_id, "menu", "--system-default", "--expected-revision", "1"
    )
    assert stale.exit_code == 3 and "ABORTED" in stale.stderr and "hint:" in stale.stderr
    no_route = hibiki("routing", "set-miss-guidance", flow_id, "nope", "--none")
    assert no_route.exit_code == 3 and "its routes: menu" in no_route.stderr
    viewer = hibiki("routing", "publish", flow_id, token="token-a-viewer")
    assert viewer.exit_code == 5 and "PERMISSION_DENIED" in viewer.stderr
    other_tenant = hibiki("routing", "show", flow_id, token="token-b-operator")
    assert other_tenant.exit_code == 4
    usage = hibiki("routing", "set-miss-guidance", flow_id, "menu")
    assert usage.exit_code == 2  # none of --guidance, --system-default, --none

    # A draft with a dangling target is saved, but does not validate (exit 1) and is not published.
    broken = flow_file(tmp_path, prompt["guidance"])
    document = json.loads(broken.read_text(encoding="utf-8"))
    document["dialed_number"] = "+81501234001"
    document["nodes"][0]["menu"]["digit_targets"]["2"] = "nowhere"
    broken.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    broken_id = ok_json(hibiki("routing", "create", str(broken), "--json"))["id"]
    problems = hibiki("routing", "validate", broken_id)
    assert problems.exit_code == 1 and "targets missing node 'nowhere'" in problems.stdout
    assert ok_json(hibiki("routing", "validate", flow_id, "--json"))["valid"] is True
    refused = hibiki("routing", "publish", broken_id)
    assert refused.exit_code == 3 and "FAILED_PRECONDITION" in refused.stderr


def test_sms_content_change_session_keeps_number_and_name_and_every_revision(
    sms_gateway: ServiceSpec, hibiki: Hibiki
) -> None:
    created = ok_json(
        hibiki(
            "sms-box",
            "create",
            "100",
            "予約案内",
            "--text",
            "ご予約はこちら",
            "--url",
            "https://example.jp/a",
            "--json",
        )
    )
    assert created["revision"] == 1
    # ④ search, ⑤ details, ⑥ message, ⑦ URL, ⑧ save
    listed = ok_json(hibiki("sms-box", "list", "--query", "予約", "--json"))
    assert [b["box_number"] for b in listed] == ["100"]
    shown = hibiki("sms-box", "show", "100")
    assert shown.exit_code == 0 and "予約案内" in shown.stdout
    updated = ok_json(
        hibiki(
            "sms-box",
            "update",
            "100",
            "--text",
            "ご予約の確認はこちら",
            "--url",
            "https://example.jp/b",
            "--json",
        )
    )
    assert (updated["box_name"], updated["message_text"], updated["url"], updated["revision"]) == (
        "予約案内", "ご予約の確認はこちら", "https://example.jp/b", 2,
    )  # fmt: skip
    url_only = ok_json(hibiki("sms-box", "update", "100", "--url", "https://example.jp/c", "--json"))
    assert (url_only["message_text"], url_only["url"]) == ("ご予約の確認はこちら", "https://example.jp/c")
    revisions = ok_json(hibiki("sms-box", "revisions", "100", "--json"))
    changes = {r["revision"]: (r["message_text_after"], r["url_after"]) for r in revisions}
    assert changes[2] == ("ご予約の確認はこちら", "https://example.jp/b")
    assert changes[3] == ("ご予約の確認はこちら", "https://example.jp/c")

    preview = ok_json(hibiki("sms-box", "preview", "--box", "100", "--json"))
    assert (preview["encoding"], preview["segments"]) == ("UCS-2", 1)
    assert preview["rendered_text"].startswith("ご予約の確認はこちら")
    long = ok_json(hibiki("sms-box", "preview", "--text", "あ" * 71, "--json"))
    assert (long["characters"], long["segments"]) == (71, 2)

    stale = hibiki("sms-box", "update", "100", "--text", "古い版から", "--expected-revision", "1")
    assert stale.exit_code == 3 and "ABORTED" in stale.stderr
    too_long = hibiki("sms-box", "update", "100", "--text", "あ" * 2000)
    assert too_long.exit_code == 3 and "• message_text:" in too_long.stderr
    again = hibiki("sms-box", "create", "100", "別名", "--text", "x")
    assert again.exit_code == 3 and "ALREADY_EXISTS" in again.stderr
    nothing = hibiki("sms-box", "update", "100")
    assert nothing.exit_code == 2
    assert hibiki("sms-box", "show", "999").exit_code == 4


def expected_figures() -> dict[tuple[str, str], tuple[int, int, int]]:
    """(date, dialed number) → calls, abandoned calls, SMS requested, from the recorded sequence."""
    return {
        ((DAY1.date() + timedelta(days=offset)).isoformat(), dialed): figures[:3]
        for (offset, dialed), figures in EXPECTED.items()
    }


def report_figures(report: Any) -> dict[tuple[str, str], tuple[int, int, int]]:
    return {
        (row["date"], row["dialed_number"]): (
            int(row["calls"]),
            int(row["abandoned_calls"]),
            int(row["sms_requested"]),
        )
        for row in report["rows"]
    }


def wait_for_report(hibiki: Hibiki) -> Any:
    """The report once every recorded event is in (events of one call may arrive over several batches)."""
    deadline = time.monotonic() + 45
    while True:
        report = ok_json(
            hibiki("report", "daily", "--from", str(DAY1.date()), "--to", str(DAY2.date()), "--json")
        )
        if report_figures(report) == expected_figures() or time.monotonic() > deadline:
            return report
        time.sleep(0.5)


def test_report_commands_answer_from_the_recorded_sequence(
    reporting: ServiceSpec, hibiki: Hibiki, tmp_path: Path
) -> None:
    report = wait_for_report(hibiki)
    got = report_figures(report)
    assert got == expected_figures()
    final_through = FinalizationSchedule(BusinessCalendar()).final_through(datetime.now(UTC))
    assert {row["date"]: row["final"] for row in report["rows"]} == {
        day: datetime.fromisoformat(day).date() <= final_through for day, _ in got
    }
    with_funnel = ok_json(
        hibiki("report", "daily", "--from", str(DAY1.date()), "--to", str(DAY2.date()), "--funnel", "--json")
    )
    assert {
        r["route_id"]: (int(r["reached"]), int(r["invalid_inputs"]), int(r["timeouts"]), int(r["abandoned"]))
        for r in with_funnel["funnel"]
    } == EXPECTED_FUNNEL
    people = hibiki(
        "report", "daily", "--from", str(DAY1.date()), "--to", str(DAY2.date()), "--dialed-number", SHOP
    )
    assert people.exit_code == 0 and SHOP in people.stdout and "着信・SMS送信レポート" in people.stdout

    # The "SMS did not arrive" checklist: ① history, ② the SMS as sent, ③ the carrier's result.
    traced = ok_json(
        hibiki(
            "report",
            "trace-caller",
            "090-1234-5678",
            "--from",
            str(DAY1.date()),
            "--to",
            str(DAY1.date()),
            "--json",
        )
    )
    assert traced["verdict"] == "TRACE_VERDICT_SMS_PENDING"
    sent = {s["request_id"]: s for call in traced["calls"] for s in call["sms"]}
    assert (sent["req-a"]["status"], sent["req-a"]["snapshot"]["url"]) == (
        "SMS_STATUS_DELIVERED",
        "https://example.jp/r",
    )
    nobody = hibiki(
        "report", "trace-caller", "+819099990000", "--from", str(DAY1.date()), "--to", str(DAY2.date())
    )
    assert nobody.exit_code == 0 and "お電話されていない可能性" in nobody.stdout

    csv_file = tmp_path / "report.csv"
    exported = hibiki(
        "report", "export-csv", "--from", str(DAY1.date()), "--to", str(DAY2.date()), "--encoding", "cp932",
        "-o", str(csv_file), token="token-a-viewer",
    )  # fmt: skip
    assert exported.exit_code == 0, exported.stderr
    text = csv_file.read_bytes().decode("cp932")
    assert text.startswith("日付,着信番号,着信数") and text.count("\n") == 1 + len(EXPECTED)

    status = ok_json(hibiki("report", "status", "--json"))
    assert status["final_through_date"] == final_through.isoformat()
    assert hibiki("report", "status").exit_code == 0

    bad_range = hibiki("report", "daily", "--from", str(DAY2.date()), "--to", str(DAY1.date()))
    assert bad_range.exit_code == 3 and "• range.end_date:" in bad_range.stderr


def test_missing_token_and_unreachable_service_say_what_to_do(reporting: ServiceSpec, hibiki: Hibiki) -> None:
    anonymous = hibiki("report", "status", token="")
    assert anonymous.exit_code == 5 and "HIBIKI_TOKEN" in anonymous.stderr
    unreachable = hibiki(
        "sms-box", "list", env={"HIBIKI_SMS_ENDPOINT": f"127.0.0.1:{free_port()}", "HIBIKI_TIMEOUT": "3"}
    )
    assert unreachable.exit_code == 6 and "HIBIKI_SMS_ENDPOINT" in unreachable.stderr


def test_synthesis_shows_progress_on_stderr_for_people_and_nothing_for_scripts(
    guidance: ServiceSpec, hibiki: Hibiki
) -> None:
    people = hibiki("guidance", "create-file", "進捗テスト", "--text", "しばらくお待ちください。")
    assert people.exit_code == 0, people.stderr
    assert "synthesizing 「進捗テスト」" in people.stderr and "done in" in people.stderr
    script = hibiki("guidance", "create-file", "進捗テスト2", "--text", "少々お待ちください。", "-o", "json")
    assert (
        script.exit_code == 0 and script.stderr == "" and json.loads(script.stdout)["name"] == "進捗テスト2"
    )
    changed = hibiki("guidance", "update-file", "進捗テスト", "--text", "もうしばらくお待ちください。")
    assert changed.exit_code == 0 and "synthesizing 進捗テスト" in changed.stderr


def test_guidance_commands_take_names_and_cover_every_rpc(
    hibiki: Hibiki, prompt: dict[str, str], tmp_path: Path
) -> None:
    # Names wherever ids, in every output format.
    shown = ok_json(hibiki("guidance", "show", "受付メニュー", "-o", "json"))
    assert shown["id"] == prompt["guidance"]
    file_yaml = hibiki("guidance", "show-file", "受付メニュー", "-o", "yaml")
    assert file_yaml.exit_code == 0 and yaml.safe_load(file_yaml.stdout)["id"] == prompt["audio_file"]
    tsv = hibiki("guidance", "list", "--files", "-o", "tsv")
    header, *rows = tsv.stdout.splitlines()
    assert header.split("\t")[:3] == ["id", "name", "text"]
    assert any(row.split("\t")[0] == prompt["audio_file"] for row in rows)
    narrow = hibiki("guidance", "list", "--files", env={"COLUMNS": "60"})
    assert narrow.exit_code == 0 and "…" not in narrow.stdout
    wide = hibiki("guidance", "list", "--files", "-o", "wide", env={"COLUMNS": "60"})
    assert any(prompt["audio_file"] in line and "受付メニュー" in line for line in wide.stdout.splitlines())

    ok_json(hibiki("guidance", "create-file", "閉店案内", "--text", "本日の受付は終了しました。", "--json"))
    closing = ok_json(
        hibiki(
            "guidance",
            "register",
            "閉店ガイダンス",
            "--audio-file",
            "閉店案内",
            "--type",
            "announcement",
            "--json",
        )
    )
    renamed = ok_json(hibiki("guidance", "update", "閉店ガイダンス", "--name", "終了ガイダンス", "--json"))
    assert (renamed["id"], renamed["name"], renamed["revision"]) == (closing["id"], "終了ガイダンス", 2)
    wav = tmp_path / "closing.wav"
    assert hibiki("guidance", "play", "終了ガイダンス", "-o", str(wav)).exit_code == 0
    assert wav.read_bytes()[:4] == b"RIFF"
    preview = tmp_path / "preview.wav"
    heard = hibiki("guidance", "preview", "--text", "ただいまの時間は営業時間外です。", "-o", str(preview))
    assert heard.exit_code == 0 and preview.read_bytes()[:4] == b"RIFF" and "s of speech" in heard.stdout
    in_use = hibiki("guidance", "delete-file", "閉店案内")
    assert in_use.exit_code == 3 and "FAILED_PRECONDITION" in in_use.stderr
    assert ok_json(hibiki("guidance", "delete", "終了ガイダンス", "--json")) == {"deleted": closing["id"]}
    assert hibiki("guidance", "delete-file", "閉店案内").exit_code == 0
    unknown = hibiki("guidance", "show", "存在しないガイダンス")
    assert (
        unknown.exit_code == 4 and "no guidance has the id or name '存在しないガイダンス'" in unknown.stderr
    )
    usage = ok_json(
        hibiki("guidance", "set-usage", "cli-test/1", prompt["guidance"], "--version", "1", "--pin-content",
               "--json", token="token-platform")
    )  # fmt: skip
    assert usage["applied"] is True and prompt["guidance"] in usage["content_revisions"]


def hours_flow(tmp_path: Path, prompt_guidance: str, dialed: str) -> Path:
    flow = {
        "name": "時間外窓口",
        "dialed_number": dialed,
        "entry_node_id": "hours",
        "nodes": [
            {
                "id": "hours",
                "business_hours": {
                    "windows": [
                        {"weekdays": [1, 2, 3, 4, 5, 6, 7], "start_time": "00:00", "end_time": "23:59"}
                    ],
                    "open_node_id": "menu",
                    "closed_node_id": "bye",
                },
            },
            {
                "id": "menu",
                "menu": {"prompt_guidance_id": prompt_guidance, "digit_targets": {"1": "bye"}},
            },
            {"id": "bye", "hangup": {}},
        ],
    }
    path = tmp_path / f"hours-{dialed}.json"
    path.write_text(json.dumps(flow, ensure_ascii=False), encoding="utf-8")
    return path


def test_routing_commands_edit_every_setting_by_name_and_refuse_ambiguous_names(
    routing: ServiceSpec, hibiki: Hibiki, prompt: dict[str, str], tmp_path: Path
) -> None:
    flow_id = ok_json(
        hibiki("routing", "create", str(hours_flow(tmp_path, prompt["guidance"], "+81501234100")), "--json")
    )["id"]
    # Digit targets, prompt (a guidance by name), how the menu collects input, by the flow's name.
    two = ok_json(hibiki("routing", "set-digit", "時間外窓口", "menu", "2", "hours", "--json"))
    (menu,) = [n["menu"] for n in two["nodes"] if n["id"] == "menu"]
    assert menu["digit_targets"] == {"1": "bye", "2": "hours"}
    one = ok_json(hibiki("routing", "remove-digit", "時間外窓口", "menu", "1", "--json"))
    assert [n["menu"]["digit_targets"] for n in one["nodes"] if n["id"] == "menu"] == [{"2": "hours"}]
    missing = hibiki("routing", "remove-digit", "時間外窓口", "menu", "9")
    assert missing.exit_code == 3 and "routes no '9'" in missing.stderr
    ok_json(
        hibiki(
            "guidance", "create-file", "時間外メニュー", "--text", "ご用件の番号を押してください。", "--json"
        )
    )
    other = ok_json(
        hibiki("guidance", "register", "時間外メニュー", "--audio-file", "時間外メニュー", "--json")
    )
    prompted = ok_json(hibiki("routing", "set-prompt", "+81501234100", "menu", "時間外メニュー", "--json"))
    assert [n["menu"]["prompt_guidance_id"] for n in prompted["nodes"] if n["id"] == "menu"] == [other["id"]]
    tuned = ok_json(
        hibiki("routing", "set-menu", flow_id, "menu", "--max-invalid-attempts", "2",
               "--first-digit-timeout", "4", "--fallback", "bye", "--json")
    )  # fmt: skip
    (menu,) = [n["menu"] for n in tuned["nodes"] if n["id"] == "menu"]
    assert (menu["max_invalid_attempts"], menu["first_digit_timeout"], menu["fallback_node_id"]) == (
        2,
        "4s",
        "bye",
    )
    # Business hours, caller rejection, the blocklist.
    hours = ok_json(
        hibiki("routing", "set-business-hours", "時間外窓口", "hours", "--window", "mon-fri 09:00-18:00",
               "--closed-on-public-holidays", "--closed-date", "2026-12-31", "--json")
    )  # fmt: skip
    (business,) = [n["business_hours"] for n in hours["nodes"] if n["id"] == "hours"]
    assert business["windows"] == [{"weekdays": [1, 2, 3, 4, 5], "start_time": "09:00", "end_time": "18:00"}]
    assert (business["closed_on_public_holidays"], business["closed_dates"]) == (True, ["2026-12-31"])
    rejecting = ok_json(
        hibiki(
            "routing",
            "set-caller-rejection",
            "時間外窓口",
            "--reject-withheld",
            "--reject-blocklisted",
            "--json",
        )
    )
    assert (
        rejecting["caller_rejection"]["reject_withheld"]
        and rejecting["caller_rejection"]["reject_blocklisted"]
    )
    assert hibiki("routing", "validate", "時間外窓口").exit_code == 0
    assert ok_json(hibiki("routing", "publish", "時間外窓口", "--json"))["version"] == 1
    assert [v["version"] for v in ok_json(hibiki("routing", "versions", "時間外窓口", "--json"))] == [1]
    saturday = ok_json(
        hibiki(
            "routing",
            "dry-run",
            "時間外窓口",
            "--at",
            "2026-12-05 10:00",
            "--caller",
            "+819012345678",
            "--json",
        )
    )
    assert saturday["call_ended"] is True
    ok_json(hibiki("routing", "block", "add", "+819011112222", "--note", "迷惑電話", "--json"))
    listed = hibiki("routing", "block", "list", "-o", "tsv")
    assert "+819011112222\t迷惑電話" in listed.stdout
    assert ok_json(hibiki("routing", "block", "remove", "+819011112222", "--json")) == {
        "removed": "+819011112222"
    }
    assert "+819011112222" not in hibiki("routing", "block", "list", "--json").stdout
    renamed = ok_json(hibiki("routing", "update", flow_id, "--name", "夜間窓口", "--json"))
    assert renamed["name"] == "夜間窓口"

    # A name two flows share is refused with both; an unknown name says so.
    twin = ok_json(
        hibiki("routing", "create", str(hours_flow(tmp_path, prompt["guidance"], "+81501234101")), "--json")
    )
    ok_json(hibiki("routing", "update", twin["id"], "--name", "夜間窓口", "--json"))
    ambiguous = hibiki("routing", "show", "夜間窓口")
    assert ambiguous.exit_code == 2 and "2 flows match '夜間窓口'" in ambiguous.stderr
    assert flow_id in ambiguous.stderr and twin["id"] in ambiguous.stderr
    unknown = hibiki("routing", "show", "昼間窓口")
    assert unknown.exit_code == 4 and "no flow has the id or name '昼間窓口'" in unknown.stderr


def test_sms_box_names_opt_outs_and_each_field_error_once(sms_gateway: ServiceSpec, hibiki: Hibiki) -> None:
    ok_json(hibiki("sms-box", "create", "200", "資料請求", "--text", "資料はこちら", "--json"))
    assert ok_json(hibiki("sms-box", "show", "資料請求", "--json"))["box_number"] == "200"
    updated = ok_json(hibiki("sms-box", "update", "資料請求", "--url", "https://example.jp/d", "--json"))
    assert (updated["box_number"], updated["revision"]) == ("200", 2)
    assert len(ok_json(hibiki("sms-box", "revisions", "資料請求", "-o", "json"))) == 2
    assert ok_json(hibiki("sms-box", "opt-out", "add", "+819033334444", "--json"))["recipient"]
    assert ok_json(hibiki("sms-box", "opt-out", "remove", "+819033334444", "--json"))["removed"] is True
    again = hibiki("sms-box", "opt-out", "remove", "+819033334444")
    assert again.exit_code == 0 and "was not on the opt-out list" in again.stdout
    too_long = hibiki("sms-box", "update", "200", "--text", "あ" * 2000)
    assert too_long.exit_code == 3 and too_long.stderr.count("message_text") == 1, too_long.stderr


def test_report_commands_for_calls_funnel_clicks_and_csv_kinds(
    reporting: ServiceSpec, hibiki: Hibiki, tmp_path: Path
) -> None:
    wait_for_report(hibiki)
    days = ("--from", str(DAY1.date()), "--to", str(DAY2.date()))
    calls = ok_json(hibiki("report", "calls", *days, "--json"))
    assert calls and {"call_id", "caller_number", "outcome"} <= calls[0].keys()
    abandoned = ok_json(hibiki("report", "calls", *days, "--outcome", "abandoned", "--json"))
    assert abandoned and all(c["outcome"] == "CALL_OUTCOME_ABANDONED" for c in abandoned)
    funnel = ok_json(hibiki("report", "funnel", *days, "--json"))
    assert {r["route_id"] for r in funnel} == set(EXPECTED_FUNNEL)
    assert hibiki("report", "link-clicks", *days).exit_code == 0
    csv_file = tmp_path / "calls.csv"
    exported = hibiki("report", "export-csv", *days, "--kind", "calls", "-o", str(csv_file))
    assert exported.exit_code == 0 and csv_file.read_bytes().decode("utf-8-sig").count("\n") >= len(calls)
    status = ok_json(hibiki("report", "status", "--as-of", "2026-12-01 12:00", "--json"))
    assert status["final_through_date"] < "2026-12-01"
