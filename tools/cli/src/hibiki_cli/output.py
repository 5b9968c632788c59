"""Results for people (rich tables on stdout) or for scripts (`-o json|yaml|tsv`: one document on stdout).

`-o table` (the default) wraps long cells, ids included, instead of cutting them; `-o wide` prints every row
on one line whatever the terminal's width. `--json` is kept as the alias of `-o json`. Progress (speech
synthesis, downloads) goes to stderr, and only for people: `-o json|yaml|tsv` keep stderr quiet.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
import yaml
from google.protobuf import timestamp_pb2
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

TOKYO = ZoneInfo("Asia/Tokyo")
WIDE_WIDTH = 100_000  # `-o wide`: wider than any row, so that nothing wraps


class Format(StrEnum):
    TABLE = "table"
    WIDE = "wide"
    JSON = "json"
    YAML = "yaml"
    TSV = "tsv"

    @property
    def for_people(self) -> bool:
        return self in (Format.TABLE, Format.WIDE)


OutputOption = Annotated[
    Format | None,
    typer.Option(
        "--output",
        "-o",
        help="table: for people, long cells wrap (ids are never cut); wide: one line per row; "
        "json, yaml or tsv: for scripts (every field, nothing on stderr).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Same as -o json.")]

stdout = Console(highlight=False, soft_wrap=False)
progress_console = Console(stderr=True, highlight=False)


def chosen(output: Format | None, json_output: bool) -> Format:
    """The format asked for with `-o` or its alias `--json` (table when neither)."""
    if json_output and output not in (None, Format.JSON):
        raise typer.BadParameter(f"--json contradicts -o {output.value}", param_hint="--json")
    return Format.JSON if json_output else output or Format.TABLE


def as_dict(message: Message) -> dict[str, Any]:
    """Proto3 JSON with the proto field names (snake_case) and zero values included."""
    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def print_json(document: object) -> None:
    print(json.dumps(document, ensure_ascii=False, indent=2))


def plain(document: Message | Sequence[Message] | dict[str, Any] | list[dict[str, Any]]) -> Any:
    """The document as JSON-like data (dicts, lists, scalars)."""
    if isinstance(document, Message):
        return as_dict(document)
    if isinstance(document, dict):
        return document
    return [as_dict(item) if isinstance(item, Message) else item for item in document]


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    # One record per line, one field per tab: escape what would break that.
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def tsv(data: Any) -> str:
    """Tab-separated values with a header line: a list is a row per item, anything else a single row.

    Columns are the fields (the union, in order of appearance); nested values are compact JSON.
    """
    rows = data if isinstance(data, list) else [data]
    records = [row if isinstance(row, dict) else {"value": row} for row in rows]
    columns: list[str] = []
    for record in records:
        columns.extend(key for key in record if key not in columns)
    lines = ["\t".join(columns)] if columns else []
    lines += ["\t".join(_cell(record.get(column)) for column in columns) for record in records]
    return "\n".join(lines)


def print_document(data: Any, fmt: Format) -> None:
    """Print JSON-like data as json, yaml or tsv."""
    if fmt is Format.YAML:
        print(yaml.safe_dump(data, allow_unicode=True, sort_keys=False, default_flow_style=False), end="")
    elif fmt is Format.TSV:
        print(tsv(data))
    else:
        print_json(data)


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> Table:
    view = Table(title=title, title_justify="left")
    for column in columns:
        # fold: a cell longer than its column wraps onto the next line; no id is ever cut with "…".
        view.add_column(column, overflow="fold")
    for row in rows:
        view.add_row(*("" if cell is None else str(cell) for cell in row))
    return view


def emit(
    document: Message | Sequence[Message] | dict[str, Any],
    fmt: Format | bool,
    render: Callable[[], Any],
    tsv_rows: Callable[[], Any] | None = None,
) -> None:
    """Print `document` for scripts (json, yaml, tsv), or what `render` returns (a table, text) for people.

    `tsv_rows` gives the rows of `-o tsv` when they are not the document itself (e.g. a flow's nodes).
    A bool `fmt` is the old `--json` flag.
    """
    if isinstance(fmt, bool):
        fmt = Format.JSON if fmt else Format.TABLE
    if not fmt.for_people:
        print_document(tsv_rows() if fmt is Format.TSV and tsv_rows else plain(document), fmt)
        return
    rendered = render()
    console = (
        Console(highlight=False, soft_wrap=False, width=WIDE_WIDTH, file=stdout.file)
        if fmt is Format.WIDE
        else stdout
    )
    for part in rendered if isinstance(rendered, list | tuple) else [rendered]:
        if isinstance(part, Table) and fmt is Format.WIDE:
            part.expand = False
        console.print(part, crop=False) if fmt is Format.WIDE else console.print(part)


def local_time(stamp: timestamp_pb2.Timestamp) -> str:
    """A timestamp in Asia/Tokyo, as tenants read times; empty when unset."""
    if not stamp.seconds and not stamp.nanos:
        return ""
    return datetime.fromtimestamp(stamp.seconds, TOKYO).strftime("%Y-%m-%d %H:%M:%S")


@contextmanager
def working(description: str, enabled: bool = True) -> Iterator[None]:
    """Progress on stderr while slow work (e.g. speech synthesis) runs: a spinner with the elapsed time on a
    terminal; otherwise (a log, a pipe) a line when it starts and one when it is done. Nothing when not
    `enabled` (output for scripts)."""
    if not enabled:
        yield
        return
    if not progress_console.is_terminal:
        started = time.monotonic()
        progress_console.print(f"{escape(description)}…")
        yield
        progress_console.print(f"{escape(description)}: done in {time.monotonic() - started:.1f} s")
        return
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=progress_console,
        transient=True,
    ) as progress:  # fmt: skip
        progress.add_task(escape(description), total=None)
        yield
