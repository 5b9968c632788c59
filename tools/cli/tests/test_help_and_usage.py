"""The console without services: help in English with the seed's Japanese terms, usage errors exit with 2."""

from __future__ import annotations

import pytest
from hibiki_cli.main import app
from typer.testing import CliRunner

runner = CliRunner()


@pytest.mark.parametrize(
    ("group", "terms"),
    [
        ("guidance", ["音声ファイル", "オリジナルガイダンス", "create-file", "register", "list", "play"]),
        ("routing", ["入力指示ルーティング", "set-miss-guidance", "set-timeout-guidance", "rollback"]),
        ("sms-box", ["蓄積BOX", "create", "update", "revisions", "preview"]),
        ("report", ["着信・SMS送信レポート", "90 days", "export-csv", "trace-caller", "status"]),
    ],
)
def test_each_group_explains_itself_with_the_seed_terms(group: str, terms: list[str]) -> None:
    result = runner.invoke(app, [group, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for term in terms:
        assert term in result.stdout


def test_root_help_documents_endpoints_token_and_exit_codes() -> None:
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    for expected in (
        "HIBIKI_TOKEN",
        "HIBIKI_ROUTING_ENDPOINT",
        "127.0.0.1:50054",
        "4 not found",
        "6 service",
    ):
        assert expected in text


def test_a_guidance_choice_needs_exactly_one_option() -> None:
    result = runner.invoke(
        app, ["routing", "set-miss-guidance", "flow", "menu", "--none", "--system-default"]
    )
    assert result.exit_code == 2
    assert "exactly one of --guidance, --system-default or --none" in result.stderr


def test_create_file_needs_text_or_a_file() -> None:
    result = runner.invoke(app, ["guidance", "create-file", "name"])
    assert result.exit_code == 2
    assert "--text" in result.stderr


def test_unreachable_service_exits_with_6_and_names_the_variable() -> None:
    result = runner.invoke(
        app, ["report", "status"], env={"HIBIKI_REPORTING_ENDPOINT": "127.0.0.1:1", "HIBIKI_TIMEOUT": "2"}
    )
    assert result.exit_code == 6
    assert "UNAVAILABLE" in result.stderr and "HIBIKI_REPORTING_ENDPOINT" in result.stderr
