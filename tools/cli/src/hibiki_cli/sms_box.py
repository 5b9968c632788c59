"""`hibiki sms-box`: 蓄積BOX (SMS boxes) in sms-gateway — number and name fixed, text and URL revised."""

from __future__ import annotations

from typing import Annotated

import typer
from google.protobuf import field_mask_pb2
from hibiki.sms.v1 import sms_box_service_pb2 as pb
from hibiki.sms.v1 import sms_box_service_pb2_grpc as pb_grpc

from hibiki_cli import resolve
from hibiki_cli.connection import Service, connect
from hibiki_cli.output import JsonOption, OutputOption, chosen, emit, local_time, table

app = typer.Typer(
    help="蓄積BOX (SMS boxes) — sms-gateway. 蓄積BOX番号 and 蓄積BOX名 never change; "
    "the message text and URL can, and every change is kept as a revision. "
    "Seed workflow 09.メッセージ蓄積 ①–⑧.",
    no_args_is_help=True,
)
BoxNumber = Annotated[str, typer.Argument(help="蓄積BOX番号.")]
BoxRef = Annotated[str, typer.Argument(help="蓄積BOX番号 or 蓄積BOX名.")]
TextOption = Annotated[str | None, typer.Option("--text", help="メッセージ内容 (Japanese is sent as UCS-2).")]
UrlOption = Annotated[str | None, typer.Option("--url", help="URL appended to the message.")]


def _boxes_table(boxes: list[pb.SmsBox]) -> object:
    return table(
        "蓄積BOX (SMS boxes)",
        ["number", "name", "message", "url", "revision", "updated (JST)"],
        [
            (b.box_number, b.box_name, b.message_text, b.url, b.revision, local_time(b.update_time))
            for b in boxes
        ],
    )


@app.command()
def create(
    ctx: typer.Context,
    box_number: BoxNumber,
    box_name: Annotated[str, typer.Argument(help="蓄積BOX名 (cannot be changed later).")],
    text: Annotated[str, typer.Option("--text", help="メッセージ内容.")],
    url: Annotated[str, typer.Option("--url", help="URL appended to the message.")] = "",
    output: OutputOption = None,
    json_output: JsonOption = False,
) -> None:
    """Create an SMS box; its number and name are fixed from now on."""
    request = pb.CreateSmsBoxRequest(box_number=box_number, box_name=box_name, message_text=text, url=url)
    with connect(ctx, Service.SMS) as api:
        reply = api.unary(pb_grpc.SmsBoxServiceStub(api.channel).CreateSmsBox, request)
    emit(reply.sms_box, chosen(output, json_output), lambda: _boxes_table([reply.sms_box]))


@app.command("list")
def list_(
    ctx: typer.Context,
    query: Annotated[str, typer.Option(help="Only boxes whose number or name contains this text.")] = "",
    output: OutputOption = None,
    json_output: JsonOption = False,
) -> None:
    """Search SMS boxes (検索, ④)."""
    with connect(ctx, Service.SMS) as api:
        stub = pb_grpc.SmsBoxServiceStub(api.channel)
        boxes = api.every_page(stub.SearchSmsBoxes, pb.SearchSmsBoxesRequest(query=query), "sms_boxes")
    emit(boxes, chosen(output, json_output), lambda: _boxes_table(boxes))


@app.command()
def show(
    ctx: typer.Context, box_number: BoxRef, output: OutputOption = None, json_output: JsonOption = False
) -> None:
    """Show one SMS box (詳細, ⑤)."""
    with connect(ctx, Service.SMS) as api:
        number = resolve.sms_box(api, box_number)
        reply = api.unary(
            pb_grpc.SmsBoxServiceStub(api.channel).GetSmsBox, pb.GetSmsBoxRequest(box_number=number)
        )
    emit(reply.sms_box, chosen(output, json_output), lambda: _boxes_table([reply.sms_box]))


@app.command()
def update(
    ctx: typer.Context,
    box_number: BoxRef,
    text: TextOption = None,
    url: UrlOption = None,
    expected_revision: Annotated[
        int | None,
        typer.Option(help="Revision you checked; a newer one refuses the change. Default: the current one."),
    ] = None,
    output: OutputOption = None,
    json_output: JsonOption = False,
) -> None:
    """Change the message text and/or URL (⑥⑦) and save (保存, ⑧) as a new revision."""
    box = pb.SmsBox()
    paths: list[str] = []
    if text is not None:
        box.message_text, paths = text, [*paths, "message_text"]
    if url is not None:
        box.url, paths = url, [*paths, "url"]
    if not paths:
        raise typer.BadParameter("give --text and/or --url", param_hint="--text")
    with connect(ctx, Service.SMS) as api:
        stub = pb_grpc.SmsBoxServiceStub(api.channel)
        box.box_number = resolve.sms_box(api, box_number)
        if expected_revision is None:
            expected_revision = api.unary(
                stub.GetSmsBox, pb.GetSmsBoxRequest(box_number=box.box_number)
            ).sms_box.revision
        reply = api.unary(
            stub.UpdateSmsBox,
            pb.UpdateSmsBoxRequest(
                sms_box=box,
                update_mask=field_mask_pb2.FieldMask(paths=paths),
                expected_revision=expected_revision,
            ),
        )
    emit(reply.sms_box, chosen(output, json_output), lambda: _boxes_table([reply.sms_box]))


@app.command()
def revisions(
    ctx: typer.Context, box_number: BoxRef, output: OutputOption = None, json_output: JsonOption = False
) -> None:
    """Every saved change of a box: who, when, text and URL before and after."""
    with connect(ctx, Service.SMS) as api:
        request = pb.ListSmsBoxRevisionsRequest(box_number=resolve.sms_box(api, box_number))
        found = api.every_page(
            pb_grpc.SmsBoxServiceStub(api.channel).ListSmsBoxRevisions, request, "revisions"
        )
    emit(
        found,
        chosen(output, json_output),
        lambda: table(
            f"revisions of 蓄積BOX {box_number}",
            ["revision", "changed (JST)", "by", "message before → after", "url before → after"],
            [
                (
                    r.revision,
                    local_time(r.change_time),
                    r.actor,
                    f"{r.message_text_before} → {r.message_text_after}",
                    f"{r.url_before} → {r.url_after}",
                )
                for r in found
            ],
        ),
    )


@app.command()
def preview(
    ctx: typer.Context,
    box_number: Annotated[
        str | None, typer.Option("--box", help="Preview this box's current text and URL (number or name).")
    ] = None,
    text: TextOption = None,
    url: UrlOption = None,
    output: OutputOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show the SMS as handsets receive it: UCS-2 characters (70 single, 67 per part) and parts."""
    with connect(ctx, Service.SMS) as api:
        stub = pb_grpc.SmsBoxServiceStub(api.channel)
        if box_number is not None:
            number = resolve.sms_box(api, box_number)
            box = api.unary(stub.GetSmsBox, pb.GetSmsBoxRequest(box_number=number)).sms_box
            text = box.message_text if text is None else text
            url = box.url if url is None else url
        if text is None:
            raise typer.BadParameter("give --text or --box", param_hint="--text")
        reply = api.unary(stub.PreviewMessage, pb.PreviewMessageRequest(message_text=text, url=url or ""))
    emit(
        reply,
        chosen(output, json_output),
        lambda: [
            reply.rendered_text,
            table(
                "",
                ["encoding", "characters", "parts (SMS)", "characters left", "over the maximum", "maximum"],
                [
                    (
                        reply.encoding,
                        reply.characters,
                        reply.segments,
                        reply.characters_left,
                        reply.characters_over,
                        reply.max_characters,
                    )
                ],
            ),
        ],
    )


opt_out = typer.Typer(
    help="The tenant's opt-out list (配信停止): SMS requests to these numbers are rejected "
    "(REJECT_REASON_OPTED_OUT).",
    no_args_is_help=True,
)
app.add_typer(opt_out, name="opt-out")
Recipient = Annotated[
    str, typer.Argument(help="The recipient's number, e.g. 090-1234-5678 or +819012345678.")
]


@opt_out.command("add")
def opt_out_add(
    ctx: typer.Context, recipient: Recipient, output: OutputOption = None, json_output: JsonOption = False
) -> None:
    """Put a number on the opt-out list: no SMS is sent to it any more."""
    with connect(ctx, Service.SMS) as api:
        reply = api.unary(
            pb_grpc.SmsBoxServiceStub(api.channel).AddOptOut, pb.AddOptOutRequest(recipient=recipient)
        )
    emit(reply, chosen(output, json_output), lambda: f"{reply.recipient} is on the opt-out list")


@opt_out.command("remove")
def opt_out_remove(
    ctx: typer.Context, recipient: Recipient, output: OutputOption = None, json_output: JsonOption = False
) -> None:
    """Take a number off the opt-out list."""
    with connect(ctx, Service.SMS) as api:
        reply = api.unary(
            pb_grpc.SmsBoxServiceStub(api.channel).RemoveOptOut, pb.RemoveOptOutRequest(recipient=recipient)
        )
    emit(
        reply,
        chosen(output, json_output),
        lambda: (
            f"{recipient} is off the opt-out list"
            if reply.removed
            else f"{recipient} was not on the opt-out list"
        ),
    )
