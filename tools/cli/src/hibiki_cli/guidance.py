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

from hibiki_cli.connection import Service, connect
from hibiki_cli.output import JsonOption, emit, local_time, progress_console, stdout, table, working

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


@app.command("create-file")
def create_file(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="作成ファイル名: unique per tenant, 1–64 characters.")],
    text: Annotated[str | None, typer.Option(help="ガイダンス内容: the Japanese text to synthesize.")] = None,
    text_file: Annotated[
        Path | None, typer.Option(help="Read the text from a UTF-8 file ('-' for stdin).", dir_okay=False)
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Create an audio file (音声ファイル作成, ④⑤): synthesize Japanese text to telephony audio."""
    if (text is None) == (text_file is None):
        raise typer.BadParameter("give exactly one of --text or --text-file", param_hint="--text")
    if text_file is not None:
        text = sys.stdin.read() if str(text_file) == "-" else text_file.read_text(encoding="utf-8")
    with connect(ctx, Service.GUIDANCE) as api, working(f"synthesizing 「{name}」", not json_output):
        reply = api.unary(
            pb_grpc.GuidanceServiceStub(api.channel).CreateAudioFile,
            pb.CreateAudioFileRequest(name=name, text=(text or "").strip()),
        )
    emit(reply.audio_file, json_output, lambda: _audio_files_table([reply.audio_file]))


@app.command()
def register(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="オリジナルガイダンス名.")],
    audio_file: Annotated[str, typer.Option(help="Id of the audio file (from create-file or list --files).")],
    kind: Annotated[
        GuidanceKind,
        typer.Option("--type", help="pb-routing = 振り分けガイダンス【PB】 (a prompt for digits)."),
    ] = GuidanceKind.PB_ROUTING,
    json_output: JsonOption = False,
) -> None:
    """Register an original guidance (オリジナルガイダンス登録, ⑦–⑫) from a synthesized audio file."""
    request = pb.CreateOriginalGuidanceRequest(
        type=kind.proto, name=name, speech_synthesis=True, audio_file_id=audio_file
    )
    with connect(ctx, Service.GUIDANCE) as api:
        reply = api.unary(pb_grpc.GuidanceServiceStub(api.channel).CreateOriginalGuidance, request)
    emit(reply.original_guidance, json_output, lambda: _guidances_table([reply.original_guidance]))


@app.command("list")
def list_(
    ctx: typer.Context,
    files: Annotated[bool, typer.Option("--files", help="List audio files instead of guidances.")] = False,
    name_contains: Annotated[str, typer.Option(help="Only names containing this text.")] = "",
    kind: Annotated[GuidanceKind | None, typer.Option("--type", help="Only guidances of this type.")] = None,
    json_output: JsonOption = False,
) -> None:
    """List original guidances (or audio files with --files) of your tenant."""
    with connect(ctx, Service.GUIDANCE) as api:
        stub = pb_grpc.GuidanceServiceStub(api.channel)
        if files:
            audio_files = api.every_page(
                stub.ListAudioFiles, pb.ListAudioFilesRequest(name_contains=name_contains), "audio_files"
            )
            emit(audio_files, json_output, lambda: _audio_files_table(audio_files))
            return
        request = pb.ListOriginalGuidancesRequest(
            type=kind.proto if kind else pb.GUIDANCE_TYPE_UNSPECIFIED, name_contains=name_contains
        )
        guidances = api.every_page(stub.ListOriginalGuidances, request, "original_guidances")
    emit(guidances, json_output, lambda: _guidances_table(guidances))


@app.command()
def play(
    ctx: typer.Context,
    guidance_id: Annotated[
        str, typer.Argument(help="Id of an original guidance (or an audio file, --audio-file).")
    ],
    audio_file: Annotated[bool, typer.Option("--audio-file", help="The id names an audio file.")] = False,
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
    if audio_file:
        request.audio_file_id = guidance_id
    else:
        request.guidance_id = guidance_id
    chunks = bytearray()
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
    target = output or Path(f"{guidance_id}.wav")
    target.write_bytes(chunks)
    stdout.print(f"wrote {len(chunks)} bytes of {audio_format.value} WAV to {target}")
    if player:
        executable = shutil.which(player)
        if executable is None:
            raise typer.BadParameter(f"{player} is not on PATH", param_hint="--player")
        subprocess.run([executable, str(target)], check=False)
