"""`hibiki routing`: 入力指示ルーティング (flows): search → show → change → validate → publish."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from google.protobuf import empty_pb2, field_mask_pb2, json_format
from hibiki.call.v1 import call_actions_pb2
from hibiki.routing.v1 import routing_service_pb2 as pb
from hibiki.routing.v1 import routing_service_pb2_grpc as pb_grpc

from hibiki_cli import resolve
from hibiki_cli.connection import Api, Service, connect
from hibiki_cli.errors import EXIT_FAILED, EXIT_REFUSED, stderr
from hibiki_cli.output import (
    TOKYO,
    Format,
    JsonOption,
    OutputOption,
    as_dict,
    chosen,
    emit,
    local_time,
    table,
)

app = typer.Typer(
    help="入力指示ルーティング (routing flows per dialed number) — routing. Edit the draft, validate, "
    "publish a new version; calls in progress keep the version they started with. "
    "Seed workflow 04.ルーティング設定 ⑬–⑲.",
    no_args_is_help=True,
)
FlowRef = Annotated[str, typer.Argument(help="Flow id, name or dialed number (see `hibiki routing search`).")]
ExpectedRevision = Annotated[
    int | None,
    typer.Option(
        help="Draft revision you checked; a newer one refuses the change. Default: the current one."
    ),
]


def _flows_table(flows: list[pb.Flow]) -> object:
    return table(
        "入力指示ルーティング (flows)",
        ["id", "name", "dialed number", "draft revision", "live version", "updated (JST)"],
        [
            (f.id, f.name, f.dialed_number, f.revision, f.published_version or "-", local_time(f.update_time))
            for f in flows
        ],
    )


def _choice(choice: pb.GuidanceChoice) -> str:
    match choice.kind:
        case pb.GUIDANCE_CHOICE_KIND_ORIGINAL_GUIDANCE:
            return f"guidance {choice.guidance_id}"
        case pb.GUIDANCE_CHOICE_KIND_NONE:
            return "none"
        case _:
            return "system default"


def _node_details(node: pb.Node) -> tuple[str, str]:
    kind = node.WhichOneof("kind") or ""
    match kind:
        case "menu":
            menu = node.menu
            digits = ", ".join(f"{d}→{t}" for d, t in sorted(menu.digit_targets.items()))
            return kind, (
                f"prompt {menu.prompt_guidance_id}; {digits}; "
                f"入力ミス時: {_choice(menu.invalid_input_guidance)}; "
                f"タイムアウト時: {_choice(menu.input_timeout_guidance)}; "
                f"fallback → {menu.fallback_node_id or '-'}"
            )
        case "send_sms":
            return kind, f"蓄積BOX {node.send_sms.box_number} → {node.send_sms.next_node_id or 'hang up'}"
        case "announcement":
            return (
                kind,
                f"guidance {node.announcement.guidance_id} → {node.announcement.next_node_id or 'hang up'}",
            )
        case "transfer":
            return kind, f"to {node.transfer.destination}"
        case "business_hours":
            hours = node.business_hours
            return kind, f"open → {hours.open_node_id}, closed → {hours.closed_node_id}"
        case _:
            return kind, ""


def _flow_view(flow: pb.Flow, versions: list[pb.FlowVersion]) -> list[object]:
    header = (
        f"[bold]{flow.name}[/] ({flow.id}) dialed number {flow.dialed_number}, entry {flow.entry_node_id}, "
        f"draft revision {flow.revision}, live version {flow.published_version or 'none'}"
    )
    nodes = table(
        "routes and targets",
        ["id", "name", "kind", "details"],
        [(n.id, n.name, *_node_details(n)) for n in flow.nodes],
    )
    return [header, nodes, _versions_table(versions)]


def _versions_table(versions: list[pb.FlowVersion]) -> object:
    return table(
        "published versions",
        ["version", "published (JST)", "by", "live"],
        [(v.version, local_time(v.publish_time), v.published_by, "●" if v.live else "") for v in versions],
    )


def _draft(api: Api, flow_id: str) -> pb.Flow:
    reply = api.unary(pb_grpc.RoutingServiceStub(api.channel).GetFlow, pb.GetFlowRequest(id=flow_id))
    draft: pb.Flow = reply.flow
    return draft


def _guidance_id(ctx: typer.Context, reference: str) -> str:
    """A guidance given by id or name, as guidance-tts knows it."""
    with connect(ctx, Service.GUIDANCE) as api:
        return resolve.guidance(api, reference)


@app.command()
def search(
    ctx: typer.Context,
    name_contains: Annotated[str, typer.Option(help="Only flows whose name contains this text.")] = "",
    dialed_number: Annotated[str, typer.Option(help="Only the flow of this dialed number.")] = "",
    guidance: Annotated[
        str,
        typer.Option("--guidance", "--guidance-id", help="Only flows that play this guidance (id or name)."),
    ] = "",
    output: OutputOption = None,
    json_output: JsonOption = False,
) -> None:
    """Search flows (検索, ⑮)."""
    request = pb.SearchFlowsRequest(
        name_contains=name_contains,
        dialed_number=dialed_number,
        guidance_id=_guidance_id(ctx, guidance) if guidance else "",
    )
    with connect(ctx, Service.ROUTING) as api:
        flows = api.every_page(pb_grpc.RoutingServiceStub(api.channel).SearchFlows, request, "flows")
    emit(flows, chosen(output, json_output), lambda: _flows_table(flows))


@app.command()
def show(
    ctx: typer.Context,
    flow_ref: FlowRef,
    version: Annotated[int, typer.Option(help="A published version; 0 shows the draft.")] = 0,
    output: OutputOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show a flow's routes and its published versions (詳細, ⑯)."""
    with connect(ctx, Service.ROUTING) as api:
        stub = pb_grpc.RoutingServiceStub(api.channel)
        flow_id = resolve.flow(api, flow_ref)
        flow = api.unary(stub.GetFlow, pb.GetFlowRequest(id=flow_id, version=version)).flow
        versions = list(api.unary(stub.ListFlowVersions, pb.ListFlowVersionsRequest(id=flow_id)).versions)
    document = {"flow": as_dict(flow), "versions": [as_dict(v) for v in versions]}
    emit(
        document,
        chosen(output, json_output),
        lambda: _flow_view(flow, versions),
        tsv_rows=lambda: [as_dict(node) for node in flow.nodes],
    )


@app.command()
def versions(
    ctx: typer.Context, flow_ref: FlowRef, output: OutputOption = None, json_output: JsonOption = False
) -> None:
    """The published versions of a flow: when, by whom, which one is live."""
    with connect(ctx, Service.ROUTING) as api:
        flow_id = resolve.flow(api, flow_ref)
        found = list(
            api.unary(
                pb_grpc.RoutingServiceStub(api.channel).ListFlowVersions,
                pb.ListFlowVersionsRequest(id=flow_id),
            ).versions
        )
    emit(found, chosen(output, json_output), lambda: _versions_table(found))


def _read_flow(flow_file: Path, param: str) -> pb.Flow:
    try:
        return json_format.Parse(flow_file.read_text(encoding="utf-8"), pb.Flow())
    except (OSError, json_format.ParseError) as error:
        raise typer.BadParameter(str(error), param_hint=param) from error


@app.command()
def create(
    ctx: typer.Context,
    flow_file: Annotated[
        Path,
        typer.Argument(help="A Flow as proto3 JSON (the `flow` of `routing show --json`).", dir_okay=False),
    ],
    output: OutputOption = None,
    json_output: JsonOption = False,
) -> None:
    """Create the draft flow of a dialed number from a JSON file."""
    flow = _read_flow(flow_file, "FLOW_FILE")
    with connect(ctx, Service.ROUTING) as api:
        reply = api.unary(pb_grpc.RoutingServiceStub(api.channel).CreateFlow, pb.CreateFlowRequest(flow=flow))
    emit(reply.flow, chosen(output, json_output), lambda: _flows_table([reply.flow]))


def _save(
    ctx: typer.Context,
    flow_ref: str,
    change: Callable[[pb.Flow], str],
    paths: list[str],
    expected_revision: int | None,
    fmt: Format,
) -> None:
    """Read the draft, let `change` edit it (it returns what changed, for people), save the fields `paths`."""
    with connect(ctx, Service.ROUTING) as api:
        flow_id = resolve.flow(api, flow_ref)
        draft = _draft(api, flow_id)
        done = change(draft)
        reply = api.unary(
            pb_grpc.RoutingServiceStub(api.channel).UpdateFlow,
            pb.UpdateFlowRequest(
                flow=draft,
                update_mask=field_mask_pb2.FieldMask(paths=paths),
                expected_revision=draft.revision if expected_revision is None else expected_revision,
            ),
        )
    emit(
        reply.flow,
        fmt,
        lambda: (
            f"saved draft revision {reply.flow.revision} of {reply.flow.name} ({flow_id}): {done} — run "
            "`hibiki routing validate` and `publish` to make it live"
        ),
    )


def _node(flow: pb.Flow, node_id: str, kind: str, what: str) -> pb.Node:
    """The node `node_id` of kind `kind` in the draft, or a clear error naming the ones it has."""
    nodes = [node for node in flow.nodes if node.WhichOneof("kind") == kind]
    found = next((node for node in nodes if node.id == node_id), None)
    if found is None:
        known = ", ".join(node.id for node in nodes) or "none"
        stderr.print(f"[bold red]error[/]: flow {flow.id} has no {what} {node_id!r} (its routes: {known})")
        raise typer.Exit(EXIT_REFUSED)
    return found


def _menu(flow: pb.Flow, route_id: str) -> pb.MenuNode:
    return _node(flow, route_id, "menu", "input-instruction route").menu


def _set_guidance(
    ctx: typer.Context,
    flow_ref: str,
    route_id: str,
    field: str,
    choice: pb.GuidanceChoice,
    expected_revision: int | None,
    fmt: Format,
) -> None:
    """Change one guidance choice of one menu route in the draft, as a partial update of `nodes`."""

    def change(draft: pb.Flow) -> str:
        getattr(_menu(draft, route_id), field).CopyFrom(choice)
        return f"route {route_id} now plays {_choice(choice)}"

    _save(ctx, flow_ref, change, ["nodes"], expected_revision, fmt)


def _guidance_choice(
    ctx: typer.Context, guidance: str | None, system_default: bool, none: bool
) -> pb.GuidanceChoice:
    if sum((guidance is not None, system_default, none)) != 1:
        raise typer.BadParameter(
            "give exactly one of --guidance, --system-default or --none", param_hint="--guidance"
        )
    if guidance is not None:
        return pb.GuidanceChoice(
            kind=pb.GUIDANCE_CHOICE_KIND_ORIGINAL_GUIDANCE, guidance_id=_guidance_id(ctx, guidance)
        )
    return pb.GuidanceChoice(
        kind=pb.GUIDANCE_CHOICE_KIND_SYSTEM_DEFAULT if system_default else pb.GUIDANCE_CHOICE_KIND_NONE
    )


GuidanceOption = Annotated[
    str | None, typer.Option(help="Play this original guidance (id or name), then the prompt again.")
]
DefaultOption = Annotated[
    bool, typer.Option("--system-default", help="Play the seed's default text, then the prompt.")
]
NoneOption = Annotated[bool, typer.Option("--none", help="Play nothing; repeat the prompt directly.")]
RouteId = Annotated[str, typer.Argument(help="Id of the input-instruction route (a menu node) in the flow.")]


@app.command("set-miss-guidance")
def set_miss_guidance(
    ctx: typer.Context,
    flow_ref: FlowRef,
    route_id: RouteId,
    guidance: GuidanceOption = None,
    system_default: DefaultOption = False,
    none: NoneOption = False,
    expected_revision: ExpectedRevision = None,
    output: OutputOption = None,
    json_output: JsonOption = False,
) -> None:
    """Change the 入力ミス時ガイダンス (invalid-input guidance) of a route in the draft (⑰)."""
    fmt = chosen(output, json_output)
    choice = _guidance_choice(ctx, guidance, system_default, none)
    _set_guidance(ctx, flow_ref, route_id, "invalid_input_guidance", choice, expected_revision, fmt)


@app.command("set-timeout-guidance")
def set_timeout_guidance(
    ctx: typer.Context,
    flow_ref: FlowRef,
    route_id: RouteId,
    guidance: GuidanceOption = None,
    system_default: DefaultOption = False,
    none: NoneOption = False,
    expected_revision: ExpectedRevision = None,
    output: OutputOption = None,
    json_output: JsonOption = False,
) -> None:
    """Change the 入力タイムアウト時ガイダンス種別 (input-timeout guidance) of a route in the draft (⑱)."""
    fmt = chosen(output, json_output)
    choice = _guidance_choice(ctx, guidance, system_default, none)
    _set_guidance(ctx, flow_ref, route_id, "input_timeout_guidance", choice, expected_revision, fmt)


@app.command("set-digit")
def set_digit(
    ctx: typer.Context,
    flow_ref: FlowRef,
    route_id: RouteId,
    digits: Annotated[str, typer.Argument(help='The keys, e.g. "1" or "09".')],
    target: Annotated[str, typer.Argument(help="Id of the node the call goes to.")],
    expected_revision: ExpectedRevision = None,
    output: OutputOption = None,
    json_output: JsonOption = False,
) -> None:
    """Route a key (or keys) of an input-instruction route to a node (振り分け先), in the draft."""

    def change(draft: pb.Flow) -> str:
        _menu(draft, route_id).digit_targets[digits] = target
        return f"route {route_id}: {digits} → {target}"

    _save(ctx, flow_ref, change, ["nodes"], expected_revision, chosen(output, json_output))


@app.command("remove-digit")
def remove_digit(
    ctx: typer.Context,
    flow_ref: FlowRef,
    route_id: RouteId,
    digits: Annotated[str, typer.Argument(help="The keys whose target goes away.")],
    expected_revision: ExpectedRevision = None,
    output: OutputOption = None,
    json_output: JsonOption = False,
) -> None:
    """Stop routing a key of an input-instruction route (it becomes an invalid input), in the draft."""

    def change(draft: pb.Flow) -> str:
        menu = _menu(draft, route_id)
        if digits not in menu.digit_targets:
            known = ", ".join(sorted(menu.digit_targets)) or "none"
            stderr.print(f"[bold red]error[/]: route {route_id} routes no {digits!r} (it routes: {known})")
            raise typer.Exit(EXIT_REFUSED)
        del menu.digit_targets[digits]
        return f"route {route_id}: {digits} no longer routed"

    _save(ctx, flow_ref, change, ["nodes"], expected_revision, chosen(output, json_output))


@app.command("set-prompt")
def set_prompt(
    ctx: typer.Context,
    flow_ref: FlowRef,
    route_id: RouteId,
    guidance: Annotated[str, typer.Argument(help="The guidance (id or name) that asks for input.")],
    expected_revision: ExpectedRevision = None,
    output: OutputOption = None,
    json_output: JsonOption = False,
) -> None:
    """Change the prompt (振り分けガイダンス) an input-instruction route plays, in the draft."""
    guidance_id = _guidance_id(ctx, guidance)

    def change(draft: pb.Flow) -> str:
        _menu(draft, route_id).prompt_guidance_id = guidance_id
        return f"route {route_id} now asks with guidance {guidance_id}"

    _save(ctx, flow_ref, change, ["nodes"], expected_revision, chosen(output, json_output))


@app.command("set-menu")
def set_menu(
    ctx: typer.Context,
    flow_ref: FlowRef,
    route_id: RouteId,
    max_digits: Annotated[int | None, typer.Option(min=0, help="Keys collected at most (1–32).")] = None,
    terminator: Annotated[
        str | None, typer.Option(help='Key that ends input: "#", "*" or "" for none.')
    ] = None,
    first_digit_timeout: Annotated[
        float | None, typer.Option(min=0, help="Seconds allowed for the first key (1–60).")
    ] = None,
    inter_digit_timeout: Annotated[
        float | None, typer.Option(min=0, help="Seconds allowed between keys (1–60).")
    ] = None,
    max_invalid_attempts: Annotated[
        int | None, typer.Option(min=0, help="The N-th invalid input goes to the fallback (1–10).")
    ] = None,
    max_timeout_attempts: Annotated[
        int | None, typer.Option(min=0, help="The N-th timeout goes to the fallback (1–10).")
    ] = None,
    fallback: Annotated[
        str | None, typer.Option(help='Node past either limit; "" plays the closing guidance and hangs up.')
    ] = None,
    expected_revision: ExpectedRevision = None,
    output: OutputOption = None,
    json_output: JsonOption = False,
) -> None:
    """Change how an input-instruction route collects keys: length, terminator, timeouts, limits, fallback."""
    given = {
        "max_digits": max_digits, "terminator": terminator, "first_digit_timeout": first_digit_timeout,
        "inter_digit_timeout": inter_digit_timeout, "max_invalid_attempts": max_invalid_attempts,
        "max_timeout_attempts": max_timeout_attempts, "fallback_node_id": fallback,
    }  # fmt: skip
    changed = {field: value for field, value in given.items() if value is not None}
    if not changed:
        raise typer.BadParameter("give at least one setting to change", param_hint="--max-digits")

    def change(draft: pb.Flow) -> str:
        menu = _menu(draft, route_id)
        for field, value in changed.items():
            if field.endswith("_timeout"):
                getattr(menu, field).FromTimedelta(timedelta(seconds=float(value)))
            else:
                setattr(menu, field, value)
        return f"route {route_id}: " + ", ".join(f"{field} = {value!r}" for field, value in changed.items())

    _save(ctx, flow_ref, change, ["nodes"], expected_revision, chosen(output, json_output))


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_window(text: str) -> pb.TimeWindow:
    """ "mon-fri 09:00-18:00" or "sat,sun 10:00-12:00" (days Monday = 1 … Sunday = 7, times JST)."""
    days_text, _, times = text.strip().partition(" ")
    start, _, end = times.strip().partition("-")
    days: list[int] = []
    try:
        for part in days_text.lower().split(","):
            first, _, last = part.partition("-")
            a, b = WEEKDAYS.index(first) + 1, WEEKDAYS.index(last or first) + 1
            days.extend(range(a, b + 1))
    except ValueError:
        raise typer.BadParameter(
            f"{text!r}: days are mon … sun, e.g. mon-fri or sat,sun", param_hint="--window"
        ) from None
    if not (start and end):
        raise typer.BadParameter(f"{text!r}: give the hours as HH:MM-HH:MM", param_hint="--window")
    return pb.TimeWindow(weekdays=sorted(set(days)), start_time=start, end_time=end)


@app.command("set-business-hours")
def set_business_hours(
    ctx: typer.Context,
    flow_ref: FlowRef,
    node_id: Annotated[str, typer.Argument(help="Id of the business-hours node in the flow.")],
    window: Annotated[
        list[str] | None,
        typer.Option(help='Opening hours, e.g. "mon-fri 09:00-18:00" (repeatable; replaces all windows).'),
    ] = None,
    closed_on_public_holidays: Annotated[
        bool | None,
        typer.Option(
            "--closed-on-public-holidays/--open-on-public-holidays", help="Japanese public holidays."
        ),
    ] = None,
    closed_date: Annotated[
        list[str] | None, typer.Option(help="A YYYY-MM-DD the tenant is closed (repeatable; replaces all).")
    ] = None,
    no_closed_dates: Annotated[
        bool, typer.Option("--no-closed-dates", help="Remove every closed date.")
    ] = False,
    open_node: Annotated[str | None, typer.Option(help="Node the call goes to when open.")] = None,
    closed_node: Annotated[str | None, typer.Option(help="Node the call goes to when closed.")] = None,
    expected_revision: ExpectedRevision = None,
    output: OutputOption = None,
    json_output: JsonOption = False,
) -> None:
    """Change the business hours (営業時間) of a business-hours node: windows, holidays, closed days."""
    windows = [parse_window(text) for text in window or []]
    if not (windows or closed_date or no_closed_dates or open_node or closed_node) and (
        closed_on_public_holidays is None
    ):
        raise typer.BadParameter("give at least one setting to change", param_hint="--window")

    def change(draft: pb.Flow) -> str:
        hours = _node(draft, node_id, "business_hours", "business-hours node").business_hours
        if windows:
            del hours.windows[:]
            hours.windows.extend(windows)
        if closed_on_public_holidays is not None:
            hours.closed_on_public_holidays = closed_on_public_holidays
        if closed_date or no_closed_dates:
            del hours.closed_dates[:]
            hours.closed_dates.extend(closed_date or [])
        if open_node is not None:
            hours.open_node_id = open_node
        if closed_node is not None:
            hours.closed_node_id = closed_node
        return (
            f"business hours of {node_id}: {_node_details(_node(draft, node_id, 'business_hours', '-'))[1]}"
        )

    _save(ctx, flow_ref, change, ["nodes"], expected_revision, chosen(output, json_output))


@app.command("set-caller-rejection")
def set_caller_rejection(
    ctx: typer.Context,
    flow_ref: FlowRef,
    reject_withheld: Annotated[
        bool | None,
        typer.Option("--reject-withheld/--accept-withheld", help="Callers withholding the number."),
    ] = None,
    reject_blocklisted: Annotated[
        bool | None,
        typer.Option(
            "--reject-blocklisted/--accept-blocklisted", help="Callers on the blocklist (routing block)."
        ),
    ] = None,
    announcement: Annotated[
        str | None, typer.Option(help='Guidance (id or name) played before the hang-up; "" for silence.')
    ] = None,
    expected_revision: ExpectedRevision = None,
    output: OutputOption = None,
    json_output: JsonOption = False,
) -> None:
    """Turn away withheld (非通知) or blocklisted callers before the flow starts."""
    if reject_withheld is None and reject_blocklisted is None and announcement is None:
        raise typer.BadParameter("give at least one setting to change", param_hint="--reject-withheld")
    announcement_id = _guidance_id(ctx, announcement) if announcement else announcement

    def change(draft: pb.Flow) -> str:
        rejection = draft.caller_rejection
        if reject_withheld is not None:
            rejection.reject_withheld = reject_withheld
        if reject_blocklisted is not None:
            rejection.reject_blocklisted = reject_blocklisted
        if announcement_id is not None:
            rejection.announcement_guidance_id = announcement_id
        return (
            f"withheld callers {'rejected' if rejection.reject_withheld else 'accepted'}, "
            f"blocklisted callers {'rejected' if rejection.reject_blocklisted else 'accepted'}"
        )

    _save(ctx, flow_ref, change, ["caller_rejection"], expected_revision, chosen(output, json_output))


@app.command()
def update(
    ctx: typer.Context,
    flow_ref: FlowRef,
    flow_file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            help="A Flow as proto3 JSON: its nodes, entry node and caller rejection replace the draft's.",
            dir_okay=False,
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="New name of the flow.")] = None,
    dialed_number: Annotated[str | None, typer.Option(help="New dialed number (E.164).")] = None,
    entry_node: Annotated[str | None, typer.Option(help="Node where calls start.")] = None,
    expected_revision: ExpectedRevision = None,
    output: OutputOption = None,
    json_output: JsonOption = False,
) -> None:
    """Change the draft: name, dialed number, entry node, or everything from a JSON file (routing show)."""
    source = _read_flow(flow_file, "--file") if flow_file is not None else None
    paths = ["nodes", "entry_node_id", "caller_rejection"] if source is not None else []
    paths += [
        path
        for path, value in (("name", name), ("dialed_number", dialed_number), ("entry_node_id", entry_node))
        if value is not None and path not in paths
    ]
    if not paths:
        raise typer.BadParameter("give --file, --name, --dialed-number or --entry-node", param_hint="--file")

    def change(draft: pb.Flow) -> str:
        if source is not None:
            del draft.nodes[:]
            draft.nodes.extend(source.nodes)
            draft.entry_node_id = source.entry_node_id
            draft.caller_rejection.CopyFrom(source.caller_rejection)
        for field, value in (("name", name), ("dialed_number", dialed_number), ("entry_node_id", entry_node)):
            if value is not None:
                setattr(draft, field, value)
        return "changed " + ", ".join(paths)

    _save(ctx, flow_ref, change, paths, expected_revision, chosen(output, json_output))


@app.command()
def validate(
    ctx: typer.Context, flow_ref: FlowRef, output: OutputOption = None, json_output: JsonOption = False
) -> None:
    """Check the draft before publishing; exits with 1 when it has problems."""
    with connect(ctx, Service.ROUTING) as api:
        flow_id = resolve.flow(api, flow_ref)
        reply = api.unary(
            pb_grpc.RoutingServiceStub(api.channel).ValidateFlow, pb.ValidateFlowRequest(id=flow_id)
        )
    # Warnings name what routing could not check (no guidance-tts or sms-gateway address); they do not fail.
    rows = [("problem", p.node_id, p.field, p.description) for p in reply.problems]
    rows += [("warning", w.node_id, w.field, w.description) for w in reply.warnings]
    emit(
        reply,
        chosen(output, json_output),
        lambda: (
            table(
                "problems" if not reply.valid else "the draft is valid, with warnings",
                ["kind", "node", "field", "description"],
                rows,
            )
            if rows
            else "the draft is valid"
        ),
    )
    if not reply.valid:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def publish(
    ctx: typer.Context,
    flow_ref: FlowRef,
    expected_revision: ExpectedRevision = None,
    output: OutputOption = None,
    json_output: JsonOption = False,
) -> None:
    """Publish the draft as a new live version (保存, ⑲); calls in progress keep their version."""
    with connect(ctx, Service.ROUTING) as api:
        flow_id = resolve.flow(api, flow_ref)
        revision = _draft(api, flow_id).revision if expected_revision is None else expected_revision
        reply = api.unary(
            pb_grpc.RoutingServiceStub(api.channel).PublishFlow,
            pb.PublishFlowRequest(id=flow_id, expected_revision=revision),
        )
    emit(
        reply,
        chosen(output, json_output),
        lambda: f"published {flow_id} as version {reply.version}; new calls use it",
    )


@app.command()
def rollback(
    ctx: typer.Context,
    flow_ref: FlowRef,
    version: Annotated[int, typer.Argument(help="The earlier published version to make live again.")],
    discard_draft: Annotated[
        bool,
        typer.Option("--discard-draft", help="Drop the draft's unpublished changes (refused otherwise)."),
    ] = False,
    output: OutputOption = None,
    json_output: JsonOption = False,
) -> None:
    """Make an earlier published version live again (as a new version) and the draft."""
    with connect(ctx, Service.ROUTING) as api:
        flow_id = resolve.flow(api, flow_ref)
        reply = api.unary(
            pb_grpc.RoutingServiceStub(api.channel).RollbackFlow,
            pb.RollbackFlowRequest(id=flow_id, version=version, discard_draft=discard_draft),
        )
    emit(
        reply,
        chosen(output, json_output),
        lambda: (
            f"version {version} of {flow_id} is live again as version {reply.version}; "
            f"the draft is that version now (revision {reply.flow.revision})"
        ),
    )


def _spoken(prompts: Iterable[call_actions_pb2.Prompt]) -> str:
    """What the caller hears, prompt by prompt; a number read back digit by digit reads "090-1234-5678"."""
    words: list[str] = []
    spelling = False
    for prompt in prompts:
        spelled = prompt.guidance_id.startswith("system:digit-") or prompt.guidance_id == "system:pause"
        if spelled and spelling:
            words[-1] += prompt.text
        else:
            words.append(prompt.text or prompt.guidance_id or prompt.audio_file_id)
        spelling = spelled
    return " + ".join(words)


def _describe_step(step: pb.DryRunStep) -> str:
    if step.HasField("sms_request"):
        request = step.sms_request.sms_requested
        recipient = "a captured number" if request.recipient_captured else "the caller"
        return f"SMS request: box {request.box_number} to {recipient}"
    action = step.action
    kind = action.WhichOneof("body") or ""
    body = getattr(action, kind)
    prompts = _spoken(getattr(body, "prompts", []))
    if kind == "play_and_collect":
        reason = call_actions_pb2.PromptReason.Name(body.reason).removeprefix("PROMPT_REASON_").lower()
        return f"play and collect on {body.route_id} ({reason}): {prompts}"
    if kind == "transfer":
        return f"transfer to {body.destination}: {prompts}".rstrip(": ")
    if kind == "hangup":
        return f"hang up ({body.reason}): {prompts}".rstrip(": ")
    return f"{kind.replace('_', ' ')}: {prompts}".rstrip(": ")


@app.command("dry-run")
def dry_run(
    ctx: typer.Context,
    flow_ref: FlowRef,
    inputs: Annotated[
        list[str] | None,
        typer.Argument(help='Caller inputs in order: DTMF digits ("1", "09012345678#") or "timeout".'),
    ] = None,
    version: Annotated[int, typer.Option(help="Published version to run; 0 = the draft.")] = 0,
    caller: Annotated[str, typer.Option(help="Caller number, E.164 (e.g. +819012345678).")] = "",
    withheld: Annotated[bool, typer.Option(help="The caller withholds the number (非通知).")] = False,
    at: Annotated[
        datetime | None,
        typer.Option(
            "--at",
            formats=["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"],
            help='When the call happens, JST ("2026-12-01 09:30"; business hours). Default: now.',
        ),
    ] = None,
    output: OutputOption = None,
    json_output: JsonOption = False,
) -> None:
    """Run a flow version against a scripted caller: what the engine would do; nothing live changes."""
    request = pb.DryRunFlowRequest(
        version=version,
        caller_number=caller,
        caller_withheld=withheld,
        inputs=[
            pb.ScriptedInput(timeout=empty_pb2.Empty())
            if item == "timeout"
            else pb.ScriptedInput(digits=item)
            for item in inputs or []
        ],
    )
    if at is not None:
        request.call_time.FromDatetime(at.replace(tzinfo=TOKYO).astimezone(UTC))
    with connect(ctx, Service.ROUTING) as api:
        request.id = resolve.flow(api, flow_ref)
        reply = api.unary(pb_grpc.RoutingServiceStub(api.channel).DryRunFlow, request)
    emit(
        reply,
        chosen(output, json_output),
        lambda: table(
            "dry run (nothing live is touched)",
            ["step", "answers", "what the engine does"],
            [(s.step, s.answered or "(call starts)", _describe_step(s)) for s in reply.steps],
        ),
    )


block = typer.Typer(
    help="The tenant's blocklist (着信拒否) of caller numbers: flows with --reject-blocklisted "
    "(routing set-caller-rejection) turn these callers away.",
    no_args_is_help=True,
)
app.add_typer(block, name="block")
CallerNumber = Annotated[
    str, typer.Argument(help="The caller's number, e.g. 090-1234-5678 or +819012345678.")
]


def _blocked_table(numbers: list[pb.BlockedNumber]) -> object:
    return table(
        "blocklist (着信拒否)",
        ["number", "note", "added (JST)"],
        [(b.number, b.note, local_time(b.create_time)) for b in numbers],
    )


@block.command("add")
def block_add(
    ctx: typer.Context,
    number: CallerNumber,
    note: Annotated[
        str, typer.Option(help="Why it is blocked, for your staff (200 characters at most).")
    ] = "",
    output: OutputOption = None,
    json_output: JsonOption = False,
) -> None:
    """Put a caller number on the blocklist."""
    request = pb.AddBlockedNumberRequest(blocked_number=pb.BlockedNumber(number=number, note=note))
    with connect(ctx, Service.ROUTING) as api:
        reply = api.unary(pb_grpc.RoutingServiceStub(api.channel).AddBlockedNumber, request)
    emit(reply.blocked_number, chosen(output, json_output), lambda: _blocked_table([reply.blocked_number]))


@block.command("remove")
def block_remove(
    ctx: typer.Context, number: CallerNumber, output: OutputOption = None, json_output: JsonOption = False
) -> None:
    """Take a caller number off the blocklist."""
    with connect(ctx, Service.ROUTING) as api:
        api.unary(
            pb_grpc.RoutingServiceStub(api.channel).RemoveBlockedNumber,
            pb.RemoveBlockedNumberRequest(number=number),
        )
    emit({"removed": number}, chosen(output, json_output), lambda: f"{number} is off the blocklist")


@block.command("list")
def block_list(ctx: typer.Context, output: OutputOption = None, json_output: JsonOption = False) -> None:
    """Every number on the blocklist."""
    with connect(ctx, Service.ROUTING) as api:
        found = api.every_page(
            pb_grpc.RoutingServiceStub(api.channel).ListBlockedNumbers,
            pb.ListBlockedNumbersRequest(),
            "blocked_numbers",
        )
    emit(found, chosen(output, json_output), lambda: _blocked_table(found))
