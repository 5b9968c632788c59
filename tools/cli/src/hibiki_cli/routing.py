"""`hibiki routing`: 入力指示ルーティング (flows): search → show → change → validate → publish."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer
from google.protobuf import empty_pb2, field_mask_pb2, json_format
from hibiki.call.v1 import call_actions_pb2
from hibiki.routing.v1 import routing_service_pb2 as pb
from hibiki.routing.v1 import routing_service_pb2_grpc as pb_grpc

from hibiki_cli.connection import Api, Service, connect
from hibiki_cli.errors import EXIT_FAILED, EXIT_REFUSED, stderr
from hibiki_cli.output import JsonOption, as_dict, emit, local_time, table

app = typer.Typer(
    help="入力指示ルーティング (routing flows per dialed number) — routing. Edit the draft, validate, "
    "publish a new version; calls in progress keep the version they started with. "
    "Seed workflow 04.ルーティング設定 ⑬–⑲.",
    no_args_is_help=True,
)
FlowId = Annotated[str, typer.Argument(help="Flow id (see `hibiki routing search`).")]
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
    history = table(
        "published versions",
        ["version", "published (JST)", "by", "live"],
        [(v.version, local_time(v.publish_time), v.published_by, "●" if v.live else "") for v in versions],
    )
    return [header, nodes, history]


def _draft(api: Api, flow_id: str) -> pb.Flow:
    reply = api.unary(pb_grpc.RoutingServiceStub(api.channel).GetFlow, pb.GetFlowRequest(id=flow_id))
    draft: pb.Flow = reply.flow
    return draft


@app.command()
def search(
    ctx: typer.Context,
    name_contains: Annotated[str, typer.Option(help="Only flows whose name contains this text.")] = "",
    dialed_number: Annotated[str, typer.Option(help="Only the flow of this dialed number.")] = "",
    guidance_id: Annotated[str, typer.Option(help="Only flows that play this guidance.")] = "",
    json_output: JsonOption = False,
) -> None:
    """Search flows (検索, ⑮)."""
    request = pb.SearchFlowsRequest(
        name_contains=name_contains, dialed_number=dialed_number, guidance_id=guidance_id
    )
    with connect(ctx, Service.ROUTING) as api:
        flows = api.every_page(pb_grpc.RoutingServiceStub(api.channel).SearchFlows, request, "flows")
    emit(flows, json_output, lambda: _flows_table(flows))


@app.command()
def show(
    ctx: typer.Context,
    flow_id: FlowId,
    version: Annotated[int, typer.Option(help="A published version; 0 shows the draft.")] = 0,
    json_output: JsonOption = False,
) -> None:
    """Show a flow's routes and its published versions (詳細, ⑯)."""
    with connect(ctx, Service.ROUTING) as api:
        stub = pb_grpc.RoutingServiceStub(api.channel)
        flow = api.unary(stub.GetFlow, pb.GetFlowRequest(id=flow_id, version=version)).flow
        versions = list(api.unary(stub.ListFlowVersions, pb.ListFlowVersionsRequest(id=flow_id)).versions)
    document = {"flow": as_dict(flow), "versions": [as_dict(v) for v in versions]}
    emit(document, json_output, lambda: _flow_view(flow, versions))


@app.command()
def create(
    ctx: typer.Context,
    flow_file: Annotated[
        Path,
        typer.Argument(help="A Flow as proto3 JSON (the `flow` of `routing show --json`).", dir_okay=False),
    ],
    json_output: JsonOption = False,
) -> None:
    """Create the draft flow of a dialed number from a JSON file."""
    try:
        flow = json_format.Parse(flow_file.read_text(encoding="utf-8"), pb.Flow())
    except (OSError, json_format.ParseError) as error:
        raise typer.BadParameter(str(error), param_hint="FLOW_FILE") from error
    with connect(ctx, Service.ROUTING) as api:
        reply = api.unary(pb_grpc.RoutingServiceStub(api.channel).CreateFlow, pb.CreateFlowRequest(flow=flow))
    emit(reply.flow, json_output, lambda: _flows_table([reply.flow]))


def _set_guidance(
    ctx: typer.Context,
    flow_id: str,
    route_id: str,
    field: str,
    choice: pb.GuidanceChoice,
    expected_revision: int | None,
    json_output: bool,
) -> None:
    """Change one guidance choice of one menu route in the draft, as a partial update of `nodes`."""
    with connect(ctx, Service.ROUTING) as api:
        draft = _draft(api, flow_id)
        menus = [node for node in draft.nodes if node.WhichOneof("kind") == "menu"]
        route = next((node for node in menus if node.id == route_id), None)
        if route is None:
            known = ", ".join(node.id for node in menus) or "none"
            stderr.print(
                f"[bold red]error[/]: flow {flow_id} has no input-instruction route {route_id!r} "
                f"(its routes: {known})"
            )
            raise typer.Exit(EXIT_REFUSED)
        getattr(route.menu, field).CopyFrom(choice)
        reply = api.unary(
            pb_grpc.RoutingServiceStub(api.channel).UpdateFlow,
            pb.UpdateFlowRequest(
                flow=pb.Flow(id=flow_id, nodes=draft.nodes),
                update_mask=field_mask_pb2.FieldMask(paths=["nodes"]),
                expected_revision=draft.revision if expected_revision is None else expected_revision,
            ),
        )
    emit(
        reply.flow,
        json_output,
        lambda: (
            f"saved draft revision {reply.flow.revision} of {flow_id}; route {route_id} now plays "
            f"{_choice(choice)} — run `hibiki routing validate` and `publish` to make it live"
        ),
    )


def _guidance_choice(guidance: str | None, system_default: bool, none: bool) -> pb.GuidanceChoice:
    if sum((guidance is not None, system_default, none)) != 1:
        raise typer.BadParameter(
            "give exactly one of --guidance, --system-default or --none", param_hint="--guidance"
        )
    if guidance is not None:
        return pb.GuidanceChoice(kind=pb.GUIDANCE_CHOICE_KIND_ORIGINAL_GUIDANCE, guidance_id=guidance)
    return pb.GuidanceChoice(
        kind=pb.GUIDANCE_CHOICE_KIND_SYSTEM_DEFAULT if system_default else pb.GUIDANCE_CHOICE_KIND_NONE
    )


GuidanceOption = Annotated[
    str | None, typer.Option(help="Play this original guidance (id), then the prompt again.")
]
DefaultOption = Annotated[
    bool, typer.Option("--system-default", help="Play the seed's default text, then the prompt.")
]
NoneOption = Annotated[bool, typer.Option("--none", help="Play nothing; repeat the prompt directly.")]
RouteId = Annotated[str, typer.Argument(help="Id of the input-instruction route (a menu node) in the flow.")]


@app.command("set-miss-guidance")
def set_miss_guidance(
    ctx: typer.Context,
    flow_id: FlowId,
    route_id: RouteId,
    guidance: GuidanceOption = None,
    system_default: DefaultOption = False,
    none: NoneOption = False,
    expected_revision: ExpectedRevision = None,
    json_output: JsonOption = False,
) -> None:
    """Change the 入力ミス時ガイダンス (invalid-input guidance) of a route in the draft (⑰)."""
    choice = _guidance_choice(guidance, system_default, none)
    _set_guidance(ctx, flow_id, route_id, "invalid_input_guidance", choice, expected_revision, json_output)


@app.command("set-timeout-guidance")
def set_timeout_guidance(
    ctx: typer.Context,
    flow_id: FlowId,
    route_id: RouteId,
    guidance: GuidanceOption = None,
    system_default: DefaultOption = False,
    none: NoneOption = False,
    expected_revision: ExpectedRevision = None,
    json_output: JsonOption = False,
) -> None:
    """Change the 入力タイムアウト時ガイダンス種別 (input-timeout guidance) of a route in the draft (⑱)."""
    choice = _guidance_choice(guidance, system_default, none)
    _set_guidance(ctx, flow_id, route_id, "input_timeout_guidance", choice, expected_revision, json_output)


@app.command()
def validate(ctx: typer.Context, flow_id: FlowId, json_output: JsonOption = False) -> None:
    """Check the draft before publishing; exits with 1 when it has problems."""
    with connect(ctx, Service.ROUTING) as api:
        reply = api.unary(
            pb_grpc.RoutingServiceStub(api.channel).ValidateFlow, pb.ValidateFlowRequest(id=flow_id)
        )
    emit(
        reply,
        json_output,
        lambda: (
            "the draft is valid"
            if reply.valid
            else table(
                "problems",
                ["node", "field", "problem"],
                [(p.node_id, p.field, p.description) for p in reply.problems],
            )
        ),
    )
    if not reply.valid:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def publish(
    ctx: typer.Context,
    flow_id: FlowId,
    expected_revision: ExpectedRevision = None,
    json_output: JsonOption = False,
) -> None:
    """Publish the draft as a new live version (保存, ⑲); calls in progress keep their version."""
    with connect(ctx, Service.ROUTING) as api:
        revision = _draft(api, flow_id).revision if expected_revision is None else expected_revision
        reply = api.unary(
            pb_grpc.RoutingServiceStub(api.channel).PublishFlow,
            pb.PublishFlowRequest(id=flow_id, expected_revision=revision),
        )
    emit(reply, json_output, lambda: f"published {flow_id} as version {reply.version}; new calls use it")


@app.command()
def rollback(
    ctx: typer.Context,
    flow_id: FlowId,
    version: Annotated[int, typer.Argument(help="The earlier published version to make live again.")],
    json_output: JsonOption = False,
) -> None:
    """Make an earlier published version live again (as a new version)."""
    with connect(ctx, Service.ROUTING) as api:
        reply = api.unary(
            pb_grpc.RoutingServiceStub(api.channel).RollbackFlow,
            pb.RollbackFlowRequest(id=flow_id, version=version),
        )
    emit(
        reply, json_output, lambda: f"version {version} of {flow_id} is live again as version {reply.version}"
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
    flow_id: FlowId,
    inputs: Annotated[
        list[str] | None,
        typer.Argument(help='Caller inputs in order: DTMF digits ("1", "09012345678#") or "timeout".'),
    ] = None,
    version: Annotated[int, typer.Option(help="Published version to run; 0 = the draft.")] = 0,
    caller: Annotated[str, typer.Option(help="Caller number, E.164 (e.g. +819012345678).")] = "",
    withheld: Annotated[bool, typer.Option(help="The caller withholds the number (非通知).")] = False,
    json_output: JsonOption = False,
) -> None:
    """Run a flow version against a scripted caller: what the engine would do; nothing live changes."""
    request = pb.DryRunFlowRequest(
        id=flow_id,
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
    with connect(ctx, Service.ROUTING) as api:
        reply = api.unary(pb_grpc.RoutingServiceStub(api.channel).DryRunFlow, request)
    emit(
        reply,
        json_output,
        lambda: table(
            "dry run (nothing live is touched)",
            ["step", "answers", "what the engine does"],
            [(s.step, s.answered or "(call starts)", _describe_step(s)) for s in reply.steps],
        ),
    )
