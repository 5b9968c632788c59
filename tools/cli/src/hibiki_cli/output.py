"""Results for people (rich tables on stdout) or for scripts (`--json`: one JSON document on stdout)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from google.protobuf import timestamp_pb2
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

TOKYO = ZoneInfo("Asia/Tokyo")
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]

stdout = Console(highlight=False, soft_wrap=False)
progress_console = Console(stderr=True)


def as_dict(message: Message) -> dict[str, Any]:
    """Proto3 JSON with the proto field names (snake_case) and zero values included."""
    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def print_json(document: object) -> None:
    print(json.dumps(document, ensure_ascii=False, indent=2))


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> Table:
    view = Table(title=title, title_justify="left")
    for column in columns:
        view.add_column(column)
    for row in rows:
        view.add_row(*("" if cell is None else str(cell) for cell in row))
    return view


def emit(
    document: Message | Sequence[Message] | dict[str, Any],
    json_output: bool,
    render: Callable[[], Any],
) -> None:
    """Print `document` as JSON, or what `render` returns (a table, text) for people."""
    if json_output:
        if isinstance(document, Message):
            print_json(as_dict(document))
        elif isinstance(document, dict):
            print_json(document)
        else:
            print_json([as_dict(item) for item in document])
        return
    rendered = render()
    for part in rendered if isinstance(rendered, list | tuple) else [rendered]:
        stdout.print(part)


def local_time(stamp: timestamp_pb2.Timestamp) -> str:
    """A timestamp in Asia/Tokyo, as tenants read times; empty when unset."""
    if not stamp.seconds and not stamp.nanos:
        return ""
    return datetime.fromtimestamp(stamp.seconds, TOKYO).strftime("%Y-%m-%d %H:%M:%S")


@contextmanager
def working(description: str, enabled: bool = True) -> Iterator[None]:
    """A spinner with elapsed time on stderr while slow work (e.g. speech synthesis) runs."""
    if not enabled:
        yield
        return
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=progress_console,
        transient=True,
    ) as progress:  # fmt: skip
        progress.add_task(description, total=None)
        yield
