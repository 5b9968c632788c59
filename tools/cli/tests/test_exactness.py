"""The console's own logic, without services: output formats, tables that never cut ids, names that resolve or
say why not, each field error printed once, and a command for every RPC of the four APIs."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
import typer
import yaml
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from hibiki.guidance.v1 import guidance_service_pb2
from hibiki.reporting.v1 import report_service_pb2
from hibiki.routing.v1 import routing_service_pb2
from hibiki.sms.v1 import sms_box_service_pb2 as sms_pb
from hibiki.sms.v1 import sms_box_service_pb2_grpc as sms_grpc
from hibiki_cli import output, resolve
from hibiki_cli.errors import headline
from hibiki_cli.main import RPC_COMMANDS, app, commands_of
from hibiki_cli.output import Format, emit, table
from rich.console import Console
from typer.testing import CliRunner

runner = CliRunner()
LONG_ID = "3f2b8c1e-9a47-4d2e-b6f1-0c5e7a9d8b21"
SERVICES = [guidance_service_pb2, routing_service_pb2, sms_pb, report_service_pb2]


def test_every_rpc_of_the_four_apis_has_a_command_and_every_command_named_exists() -> None:
    rpcs = {
        f"{service.full_name}/{method.name}"
        for module in SERVICES
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    assert sorted(rpcs - RPC_COMMANDS.keys()) == [], "RPCs without a hibiki command"
    assert sorted(RPC_COMMANDS.keys() - rpcs) == [], "commands mapped to RPCs that do not exist"
    for description in RPC_COMMANDS.values():
        for words in commands_of(description):
            result = runner.invoke(app, [*words, "--help"])
            assert result.exit_code == 0, f"hibiki {' '.join(words)}: {result.output}"


def _rendered(fmt: Format, width: int, capsys: pytest.CaptureFixture[str]) -> str:
    view = table("flows", ["id", "name", "dialed number"], [(LONG_ID, "予約窓口", "+81501234000")])
    previous = output.stdout
    output.stdout = Console(file=io.StringIO(), width=width, highlight=False, soft_wrap=False)
    try:
        emit([], fmt, lambda: view)
        assert isinstance(output.stdout.file, io.StringIO)
        return output.stdout.file.getvalue() + capsys.readouterr().out
    finally:
        output.stdout = previous


def test_a_narrow_table_wraps_ids_instead_of_cutting_them(capsys: pytest.CaptureFixture[str]) -> None:
    narrow = _rendered(Format.TABLE, 40, capsys)
    assert "…" not in narrow
    cells = "".join(line.split("│")[1].strip() for line in narrow.splitlines() if line.count("│") == 4)
    assert LONG_ID in cells
    wide = _rendered(Format.WIDE, 40, capsys)
    assert any(LONG_ID in line and "+81501234000" in line for line in wide.splitlines())


def test_scripts_get_json_yaml_or_tsv_with_every_field(capsys: pytest.CaptureFixture[str]) -> None:
    boxes = [
        sms_pb.SmsBox(box_number="100", box_name="予約\t案内", message_text="一行目\n二行目", revision=2)
    ]
    emit(boxes, Format.JSON, lambda: "table")
    assert json.loads(capsys.readouterr().out)[0]["box_name"] == "予約\t案内"
    emit(boxes, Format.YAML, lambda: "table")
    assert yaml.safe_load(capsys.readouterr().out)[0]["message_text"] == "一行目\n二行目"
    emit(boxes, Format.TSV, lambda: "table")
    header, row = capsys.readouterr().out.splitlines()
    cells = dict(zip(header.split("\t"), row.split("\t"), strict=True))
    assert (cells["box_number"], cells["box_name"], cells["message_text"], cells["revision"]) == (
        "100", "予約\\t案内", "一行目\\n二行目", "2",
    )  # fmt: skip


def test_json_is_an_alias_of_output_json_and_contradictions_are_usage_errors() -> None:
    for args in (["--json"], ["-o", "json"], ["-o", "yaml"], ["-o", "tsv"], ["-o", "wide"]):
        result = runner.invoke(app, ["sms-box", "list", *args, "--help"])
        assert result.exit_code == 0, result.output
    refused = runner.invoke(app, ["sms-box", "list", "--json", "-o", "yaml"])
    assert refused.exit_code == 2 and "--json contradicts -o yaml" in refused.stderr
    for group, command in [("routing", "block"), ("sms-box", "opt-out"), ("report", "calls")]:
        listed = runner.invoke(app, [group, "--help"], env={"COLUMNS": "200"})
        assert command in listed.stdout


def test_a_name_that_matches_several_things_lists_them_and_an_unknown_one_names_similar_ones() -> None:
    one = resolve.Candidate("id-1", "「予約窓口」 +81501234000")
    two = resolve.Candidate("id-2", "「予約窓口」 +81501234001")
    assert resolve.pick("flow", "予約窓口", [one, one]) == "id-1"
    with pytest.raises(typer.Exit) as ambiguous:
        resolve.pick("flow", "予約窓口", [one, two])
    assert ambiguous.value.exit_code == resolve.EXIT_AMBIGUOUS
    with pytest.raises(typer.Exit) as unknown:
        resolve.pick("flow", "予約", [], [one])
    assert unknown.value.exit_code == 4


def test_the_status_message_does_not_repeat_the_field_violations() -> None:
    violations = [("message_text", "must be at most 660 characters"), ("url", "must be http(s)")]
    message = "message_text: must be at most 660 characters; url: must be http(s)"
    assert headline(message, violations) == "2 invalid fields:"
    assert headline("box 100: " + message, violations) == "box 100:"
    assert headline("stale revision", []) == "stale revision"


class Refusing(sms_grpc.SmsBoxServiceServicer):
    """SearchSmsBoxes refuses as the services do: the violations in the message and in BadRequest (twice)."""

    def SearchSmsBoxes(
        self, request: sms_pb.SearchSmsBoxesRequest, context: grpc.ServicerContext
    ) -> sms_pb.SearchSmsBoxesResponse:
        violation = error_details_pb2.BadRequest.FieldViolation(field="query", description="must not be 長い")
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.BadRequest(field_violations=[violation, violation]))
        status = status_pb2.Status(
            code=code_pb2.INVALID_ARGUMENT, message="query: must not be 長い", details=[detail]
        )
        context.abort_with_status(rpc_status.to_status(status))
        raise AssertionError("abort raises")


@pytest.fixture
def refusing_sms() -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    sms_grpc.add_SmsBoxServiceServicer_to_server(Refusing(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


def test_each_field_error_is_printed_once(refusing_sms: str) -> None:
    result = runner.invoke(
        app, ["sms-box", "list", "--query", "長い"], env={"HIBIKI_SMS_ENDPOINT": refusing_sms}
    )
    assert result.exit_code == 3
    assert result.stderr.count("must not be 長い") == 1, result.stderr
    assert "INVALID_ARGUMENT" in result.stderr and "• query: must not be 長い" in result.stderr


def test_the_readme_lists_every_rpc_with_its_command() -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    for rpc, command in RPC_COMMANDS.items():
        service, method = rpc.split("/")
        assert f"| `{service.split('.')[-1]}/{method}` | `hibiki {command}` |" in readme, rpc
