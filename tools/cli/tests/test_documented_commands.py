"""Every `hibiki …` command line that README.md and the start-up guide of `make run` print parses: each
command exists, and its options and arguments are the ones the command takes (a dry parse: nothing runs)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from hibiki_cli.main import app
from hibiki_devstack.cli import what_to_look_at
from hibiki_devstack.stack import default_services
from typer import _click
from typer.core import TyperGroup
from typer.exceptions import Exit
from typer.main import get_command

ROOT = Path(__file__).resolve().parents[3]
README = ROOT / "README.md"
# The project's own guides: the root README and each service's and tool's.
GUIDES = [README, *sorted(ROOT.glob("services/*/README.md")), *sorted(ROOT.glob("tools/*/README.md"))]


def dry_parse(args: list[str]) -> str | None:
    """None when `hibiki ARGS` parses; otherwise the usage error. No command callback runs."""
    command: _click.Command = get_command(app)
    parent: _click.Context | None = None
    name: str | None = "hibiki"
    try:
        while True:
            ctx = command.make_context(name, list(args), parent=parent)
            if not isinstance(command, TyperGroup):
                return None
            rest = [*ctx._protected_args, *ctx.args]
            if not rest:
                return "a command is missing"
            name, found, args = command.resolve_command(ctx, rest)
            if found is None:
                return f"no command {name}"
            command, parent = found, ctx
    except _click.exceptions.NoArgsIsHelpError:
        return "a command is missing"
    except Exit as done:
        return None if done.exit_code == 0 else f"exit {done.exit_code}"
    except _click.exceptions.ClickException as error:
        return error.format_message()


def command_lines(text: str) -> list[str]:
    """The `hibiki …` commands: shell lines starting with it (or `$(hibiki …)`), and `inline code` spans."""
    found: list[str] = []
    for line in text.splitlines():
        match = re.match(r"\s*(hibiki\s.*)$", line) or re.search(r"\$\((hibiki\s[^)|]*)", line)
        if match and "`" not in line:
            found.append(match.group(1).split(" | ")[0])
    # Inline spans of prose (a table of RPCs names commands without their arguments: not command lines).
    prose = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("|"))
    found += re.findall(r"`(hibiki [^`]+)`", prose)
    return found


PLACEHOLDERS = {"today": "2026-11-26", "partition": "0", "offset": "0"}


def argv(line: str) -> list[str]:
    """The arguments after `hibiki`: <placeholders> and $VARIABLES filled in, [optional] parts included."""
    line = re.sub(r"<([^>]+)>", lambda m: PLACEHOLDERS.get(m.group(1), "PLACEHOLDER"), line)
    line = re.sub(r"\$\w+|\$\([^)]*\)", "VALUE", line.replace("[", "").replace("]", ""))
    return shlex.split(line, comments=True)[1:]


def parses(line: str) -> str | None:
    """None when the line parses; a bare group named in prose (`hibiki dlq`) is a reference, not a command."""
    words = argv(line)
    problem = dry_parse(words)
    if problem == "a command is missing" and len(words) <= 1:
        return None
    return problem


def start_up_guide() -> str:
    specs = {spec.name: spec for spec in default_services(0)}
    return "\n".join(
        what_to_look_at(specs, {"operator": "tok"}, Path("/data"), "2026-11-26", "simulated callers: 0.5/s")
    )


def test_the_readme_has_hibiki_commands_and_grpcurl_is_not_needed() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(command_lines(text)) > 20
    assert "grpcurl" not in text, "grpcurl is not installed by the project: show the hibiki command"


@pytest.mark.parametrize(
    ("guide", "line"),
    [(guide.relative_to(ROOT), line) for guide in GUIDES for line in command_lines(guide.read_text("utf-8"))],
)
def test_each_hibiki_command_of_the_guides_parses(guide: Path, line: str) -> None:
    assert parses(line) is None, f"{guide}: {line}"


@pytest.mark.parametrize("guide", GUIDES, ids=lambda guide: str(guide.relative_to(ROOT)))
def test_the_guides_need_nothing_the_project_does_not_install(guide: Path) -> None:
    text = guide.read_text(encoding="utf-8")
    assert "grpcurl " not in text and "jq " not in text, "show the hibiki command (or python) instead"


def test_the_start_up_guide_prints_hibiki_commands_that_parse_and_no_grpcurl() -> None:
    guide = start_up_guide()
    assert "grpcurl" not in guide
    lines = command_lines(guide)
    assert len(lines) >= 2
    for line in lines:
        assert parses(line) is None, line


def test_a_dry_parse_finds_unknown_commands_and_options() -> None:
    assert dry_parse(["routing", "set-digit", "予約窓口", "menu", "2", "operator"]) is None
    assert dry_parse(["routing", "set-digits", "x"]) is not None
    assert dry_parse(["report", "daily", "--no-such-option"]) is not None
    assert dry_parse(["report", "daily", "--from", "yesterday"]) is not None
