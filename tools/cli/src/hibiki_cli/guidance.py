"""`hibiki guidance`: 音声ファイル (audio files) and オリジナルガイダンス (original guidances)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from hibiki.guidance.v1 import guidance_service_pb2 as pb
from hibiki.guidance.v1 import guidance_service_pb2_grpc as pb_grpc
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from hibiki_cli import resolve
from hibiki_cli.connection import Service, connect
from hibiki_cli.output import (
    JsonOption,
    OutputOption,
    chosen,
    emit,
    local_time,
    progress_console,
    stdout,
    table,
    working,
)

app = typer.Typer(
    help="音声ファイル (audio files synthesized from Japanese text) and オリジナルガイダンス "
    "(original guidances that routes play) — guidance-tts. Seed workflow 07.ガイダンス ①–⑫.",
    no_args_is_help=True,
)


class GuidanceKind(StrEnum):
    PB_ROUTING = "pb-routing"
    ANNOUNCEMENT = "announcement"
    INVALID_INPUT = "invalid-input"
    INPUT_TIMEOUT = "input-timeout"
    OUT_OF_HOURS = "out-of-hours"

    @property
    def proto(self) -> pb.GuidanceType.ValueType:
        return pb.GuidanceType.Value("GUIDANCE_TYPE_" + self.name)


class AudioFormat(StrEnum):
    MULAW = "mulaw"
    PCM16 = "pcm16"

    @property
    def proto(self) -> pb.AudioFormat.ValueType:
        return pb.AUDIO_FORMAT_WAV_MULAW_8K if self is AudioFormat.MULAW else pb.AUDIO_FORMAT_WAV_PCM16


def _type_name(value: pb.GuidanceType.ValueType) -> str:
    return GuidanceKind[pb.GuidanceType.Name(value).removeprefix("GUIDANCE_TYPE_")].value if value else ""


def _audio_files_table(files: list[pb.AudioFile]) -> object:
    return table(
        "音声ファイル (audio files)",
        ["id", "name", "text", "revision", "seconds", "updated (JST)"],
        [
            (
                f.id,
                f.name,
                f.text,
                f.revision,
                f"{f.duration.ToTimedelta().total_seconds():.1f}",
                local_time(f.update_time),
            )
            for f in files
        ],
    )


def _guidances_table(guidances: list[pb.OriginalGuidance]) -> object:
    return table(
        "オリジナルガイダンス (original guidances)",
        ["id", "type", "name", "音声合成", "audio file", "system", "revision"],
        [
            (
                g.id,
                _type_name(g.type),
                g.name,
                "yes" if g.speech_synthesis else "no",
                g.audio_file_id,
                "yes" if g.system else "",
                g.revision,
            )
            for g in guidances
        ],
    )


TextOption = Annotated[str | None, typer.Option(help="ガイダンス内容: the Japanese text to synthesize.")]
TextFileOption = Annotated[
    Path | None, typer.Option(help="Read the text from a UTF-8 file ('-' for stdin).", dir_okay=False)
]
AudioFileRef = Annotated[str, typer.Argument(help="Id or name of the audio file.")]
GuidanceRef = Annotated[str, typer.Argument(help="Id or name of the original guidance.")]
ExpectedRevision = Annotated[
    int | None,
    typer.Option(help="Revision you checked; a newer one refuses the change. Default: the current one."),
]


def _text(text: str | None, text_file: Path | None) -> str:
    if (text is None) == (text_file is None):
        raise typer.BadParameter("give exactly one of --text or --text-file", param_hint="--text")
    if text_file is not None:
        text = sys.stdin.read() if str(text_file) == "-" else text_file.read_text(encoding="utf-8")
    return (text or "").strip()


@app.command("create-file")
def create_file(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="作成ファイル名: unique per tenant, 1–64 characters.")],
    text: TextOption = None,
    text_file: TextFileOption = None,
    output: OutputOption = None,
    json_output: JsonOption = False,
) -> None:
    """Create an audio file (音声ファイル作成, ④⑤): synthesize Japanese text to telephony audio."""
    spoken = _text(text, text_file)
    fmt = chosen(output, json_output)
    with connect(ctx, Service.GUIDANCE) as api, working(f"synthesizing 「{name}」", fmt.for_people):
        reply = api.unary(
            pb_grpc.GuidanceServiceStub(api.channel).CreateAudioFile,
            pb.CreateAudioFileRequest(name=name, text=spoken),
        )
    emit(reply.audio_file, fmt, lambda: _audio_files_table([reply.audio_file]))


@app.command("show-file")
def show_file(
    ctx: typer.Context, audio_file: AudioFileRef, output: OutputOption = None, json_output: JsonOption = False
) -> None:
    """Show one audio file: its text, revision, length and content hash."""
    with connect(ctx, Service.GUIDANCE) as api:
        file_id = resolve.audio_file(api, audio_file)
        reply = api.unary(
            pb_grpc.GuidanceServiceStub(api.channel).GetAudioFile, pb.GetAudioFileRequest(id=file_id)
        )
    emit(reply.audio_file, chosen(output, json_output), lambda: _audio_files_table([reply.audio_file]))


@app.command("update-file")
def update_file(
    ctx: typer.Context,
    audio_file: AudioFileRef,
    text: TextOption = None,
    text_file: TextFileOption = None,
    expected_revision: ExpectedRevision = None,
    output: OutputOption = None,
    json_output: JsonOption = False,
) -> None:
    """Change the text of an audio file: synthesized again, saved as a new revision (guidances follow)."""
    spoken = _text(text, text_file)
    fmt = chosen(output, json_output)
    with connect(ctx, Service.GUIDANCE) as api:
        stub = pb_grpc.GuidanceServiceStub(api.channel)
        file_id = resolve.audio_file(api, audio_file)
        if expected_revision is None:
            expected_revision = api.unary(
                stub.GetAudioFile, pb.GetAudioFileRequest(id=file_id)
            ).audio_file.revision
        with working(f"synthesizing {audio_file}", fmt.for_people):
            reply = api.unary(
                stub.UpdateAudioFile,
                pb.UpdateAudioFileRequest(id=file_id, text=spoken, expected_revision=expected_revision),
            )
    emit(reply.audio_file, fmt, lambda: _audio_files_table([reply.audio_file]))


@app.command("delete-file")
def delete_file(
    ctx: typer.Context, audio_file: AudioFileRef, output: OutputOption = None, json_output: JsonOption = False
) -> None:
    """Delete an audio file; refused while a guidance plays it."""
    with connect(ctx, Service.GUIDANCE) as api:
        file_id = resolve.audio_file(api, audio_file)
        api.unary(
            pb_grpc.GuidanceServiceStub(api.channel).DeleteAudioFile, pb.DeleteAudioFileRequest(id=file_id)
        )
    emit({"deleted": file_id}, chosen(output, json_output), lambda: f"deleted audio file {file_id}")


@app.command()
def register(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="オリジナルガイダンス名.")],
    audio_file: Annotated[
        str, typer.Option(help="Id or name of the audio file (from create-file or list --files).")
    ],
    kind: Annotated[
        GuidanceKind,
        typer.Option("--type", help="pb-routing = 振り分けガイダンス【PB】 (a prompt for digits)."),
    ] = GuidanceKind.PB_ROUTING,
    output: OutputOption = None,
    json_output: JsonOption = False,
) -> None:
    """Register an original guidance (オリジナルガイダンス登録, ⑦–⑫) from a synthesized audio file."""
    with connect(ctx, Service.GUIDANCE) as api:
        request = pb.CreateOriginalGuidanceRequest(
            type=kind.proto,
            name=name,
            speech_synthesis=True,
            audio_file_id=resolve.audio_file(api, audio_file),
        )
        reply = api.unary(pb_grpc.GuidanceServiceStub(api.channel).CreateOriginalGuidance, request)
    emit(
        reply.original_guidance,
        chosen(output, json_output),
        lambda: _guidances_table([reply.original_guidance]),
    )


@app.command()
def show(
    ctx: typer.Context, guidance: GuidanceRef, output: OutputOption = None, json_output: JsonOption = False
) -> None:
    """Show one original guidance (or a system guidance, `system:<name>`)."""
    with connect(ctx, Service.GUIDANCE) as api:
        guidance_id = resolve.guidance(api, guidance)
        reply = api.unary(
            pb_grpc.GuidanceServiceStub(api.channel).GetOriginalGuidance,
            pb.GetOriginalGuidanceRequest(id=guidance_id),
        )
    emit(
        reply.original_guidance,
        chosen(output, json_output),
        lambda: _guidances_table([reply.original_guidance]),
    )


@app.command()
def update(
    ctx: typer.Context,
    guidance: GuidanceRef,
    name: Annotated[str | None, typer.Option(help="New name (system guidances keep theirs).")] = None,
    audio_file: Annotated[str | None, typer.Option(help="Id or name of the audio file to play now.")] = None,
    expected_revision: ExpectedRevision = None,
    output: OutputOption = None,
    json_output: JsonOption = False,
) -> None:
    """Rename a guidance and/or point it at another audio file."""
    if name is None and audio_file is None:
        raise typer.BadParameter("give --name and/or --audio-file", param_hint="--name")
    with connect(ctx, Service.GUIDANCE) as api:
        stub = pb_grpc.GuidanceServiceStub(api.channel)
        guidance_id = resolve.guidance(api, guidance)
        file_id = resolve.audio_file(api, audio_file) if audio_file is not None else ""
        if expected_revision is None:
            expected_revision = api.unary(
                stub.GetOriginalGuidance, pb.GetOriginalGuidanceRequest(id=guidance_id)
            ).original_guidance.revision
        reply = api.unary(
            stub.UpdateOriginalGuidance,
            pb.UpdateOriginalGuidanceRequest(
                id=guidance_id, name=name or "", audio_file_id=file_id, expected_revision=expected_revision
            ),
        )
    emit(
        reply.original_guidance,
        chosen(output, json_output),
        lambda: _guidances_table([reply.original_guidance]),
    )


@app.command()
def delete(
    ctx: typer.Context, guidance: GuidanceRef, output: OutputOption = None, json_output: JsonOption = False
) -> None:
    """Delete a guidance; refused while a flow (its draft or a published version) plays it."""
    with connect(ctx, Service.GUIDANCE) as api:
        guidance_id = resolve.guidance(api, guidance)
        api.unary(
            pb_grpc.GuidanceServiceStub(api.channel).DeleteOriginalGuidance,
            pb.DeleteOriginalGuidanceRequest(id=guidance_id),
        )
    emit({"deleted": guidance_id}, chosen(output, json_output), lambda: f"deleted guidance {guidance_id}")


@app.command("list")
def list_(
    ctx: typer.Context,
    files: Annotated[bool, typer.Option("--files", help="List audio files instead of guidances.")] = False,
    name_contains: Annotated[str, typer.Option(help="Only names containing this text.")] = "",
    kind: Annotated[GuidanceKind | None, typer.Option("--type", help="Only guidances of this type.")] = None,
    output: OutputOption = None,
    json_output: JsonOption = False,
) -> None:
    """List original guidances (or audio files with --files) of your tenant."""
    fmt = chosen(output, json_output)
    with connect(ctx, Service.GUIDANCE) as api:
        stub = pb_grpc.GuidanceServiceStub(api.channel)
        if files:
            audio_files = api.every_page(
                stub.ListAudioFiles, pb.ListAudioFilesRequest(name_contains=name_contains), "audio_files"
            )
            emit(audio_files, fmt, lambda: _audio_files_table(audio_files))
            return
        request = pb.ListOriginalGuidancesRequest(
            type=kind.proto if kind else pb.GUIDANCE_TYPE_UNSPECIFIED, name_contains=name_contains
        )
        guidances = api.every_page(stub.ListOriginalGuidances, request, "original_guidances")
    emit(guidances, fmt, lambda: _guidances_table(guidances))


@app.command()
def preview(
    ctx: typer.Context,
    text: TextOption = None,
    text_file: TextFileOption = None,
    audio_format: Annotated[
        AudioFormat, typer.Option("--format", help="mulaw = 8 kHz μ-law (telephony), pcm16 = 16-bit PCM.")
    ] = AudioFormat.PCM16,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="WAV file to write ('-' for stdout).", dir_okay=False)
    ] = Path("preview.wav"),
    player: Annotated[
        str, typer.Option(help="Command that plays the WAV file afterwards, e.g. aplay; empty to only save.")
    ] = "",
) -> None:
    """Hear a text before saving it: synthesized, written as WAV, nothing stored."""
    spoken = _text(text, text_file)
    to_stdout = str(output) == "-"
    with connect(ctx, Service.GUIDANCE) as api, working("synthesizing the preview", not to_stdout):
        reply = api.unary(
            pb_grpc.GuidanceServiceStub(api.channel).Preview,
            pb.PreviewRequest(text=spoken, format=audio_format.proto),
        )
    if to_stdout:
        sys.stdout.buffer.write(reply.audio)
        return
    output.write_bytes(reply.audio)
    seconds = reply.duration.ToTimedelta().total_seconds()
    stdout.print(
        f"wrote {len(reply.audio)} bytes ({seconds:.1f} s of speech) of {audio_format.value} WAV to {output}"
    )
    _play(player, output)


@app.command("set-usage")
def set_usage(
    ctx: typer.Context,
    user_id: Annotated[str, typer.Argument(help='Stable id of the user, e.g. "routing-flow/<flow id>".')],
    guidance_ids: Annotated[
        list[str] | None, typer.Argument(help="Every guidance the user plays now (none: it plays none).")
    ] = None,
    display_name: Annotated[
        str, typer.Option(help='How refusals name the user, e.g. "受付フロー v3". Default: the user id.')
    ] = "",
    version: Annotated[
        int, typer.Option(min=0, help="Increases with every change; older ones are ignored.")
    ] = 0,
    skip_unknown: Annotated[
        bool, typer.Option("--skip-unknown", help="Leave out guidances the tenant does not have.")
    ] = False,
    pin_content: Annotated[
        bool, typer.Option("--pin-content", help="Pin what each guidance sounds like for this user.")
    ] = False,
    content_revision: Annotated[
        list[str] | None,
        typer.Option(
            help="With --pin-content: <guidance id>=<content revision> to keep pinned (repeatable)."
        ),
    ] = None,
    output: OutputOption = None,
    json_output: JsonOption = False,
) -> None:
    """Record which guidances a user plays (platform token; routing does this when it saves or publishes)."""
    revisions: dict[str, int] = {}
    for item in content_revision or []:
        key, _, value = item.partition("=")
        if not key or not value.isdigit():
            raise typer.BadParameter(
                f"{item!r} is not <guidance id>=<revision>", param_hint="--content-revision"
            )
        revisions[key] = int(value)
    request = pb.SetGuidanceUsageRequest(
        user_id=user_id,
        display_name=display_name or user_id,
        version=version,
        guidance_ids=guidance_ids or [],
        skip_unknown=skip_unknown,
        pin_content=pin_content,
        content_revisions=revisions,
    )
    with connect(ctx, Service.GUIDANCE) as api:
        reply = api.unary(pb_grpc.GuidanceServiceStub(api.channel).SetGuidanceUsage, request)
    emit(
        reply,
        chosen(output, json_output),
        lambda: table(
            f"usage of {user_id}" + ("" if reply.applied else " (not applied: a newer version is recorded)"),
            ["guidance", "pinned content revision"],
            sorted(reply.content_revisions.items()),
        ),
    )


@app.command()
def play(
    ctx: typer.Context,
    guidance_id: Annotated[
        str, typer.Argument(help="Id or name of an original guidance (or of an audio file, --audio-file).")
    ],
    audio_file: Annotated[
        bool, typer.Option("--audio-file", help="It names an audio file, not a guidance.")
    ] = False,
    audio_format: Annotated[
        AudioFormat, typer.Option("--format", help="mulaw = 8 kHz μ-law (telephony), pcm16 = 16-bit PCM.")
    ] = AudioFormat.PCM16,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="WAV file to write ('-' for stdout).", dir_okay=False),
    ] = None,
    player: Annotated[
        str, typer.Option(help="Command that plays the WAV file afterwards, e.g. aplay; empty to only save.")
    ] = "",
) -> None:
    """Fetch the audio of a guidance as a WAV file, and play it with --player to check how it sounds."""
    request = pb.StreamAudioRequest(format=audio_format.proto)
    chunks = bytearray()
    with connect(ctx, Service.GUIDANCE) as api:
        if audio_file:
            request.audio_file_id = resolve.audio_file(api, guidance_id)
        elif "@" in guidance_id:  # `<guidance id>@<content revision>`: pinned content
            request.guidance_id = guidance_id
        else:
            request.guidance_id = resolve.guidance(api, guidance_id)
    with (
        connect(ctx, Service.GUIDANCE) as api,
        Progress(*Progress.get_default_columns()[:1], BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                 console=progress_console, transient=True) as progress,
    ):  # fmt: skip
        task = progress.add_task("downloading audio", total=None)
        for chunk in api.stream(pb_grpc.GuidanceServiceStub(api.channel).StreamAudio, request):
            if chunk.total_bytes:
                progress.update(task, total=chunk.total_bytes)
            chunks.extend(chunk.data)
            progress.update(task, completed=len(chunks))
    if output is not None and str(output) == "-":
        sys.stdout.buffer.write(chunks)
        return
    target = output or Path(f"{request.audio_file_id or request.guidance_id}.wav")
    target.write_bytes(chunks)
    stdout.print(f"wrote {len(chunks)} bytes of {audio_format.value} WAV to {target}")
    _play(player, target)


def _play(player: str, target: Path) -> None:
    if player:
        executable = shutil.which(player)
        if executable is None:
            raise typer.BadParameter(f"{player} is not on PATH", param_hint="--player")
        subprocess.run([executable, str(target)], check=False)
