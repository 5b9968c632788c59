"""Names wherever ids: an audio file, guidance, flow or SMS box given by its id or by its name.

A reference is looked up both ways (Get by id, List/Search by name): exactly one match is used; several are an
error listing them (exit 2, give the id); none is an error naming similar names if there are any (exit 4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import typer
from hibiki.guidance.v1 import guidance_service_pb2 as guidance_pb
from hibiki.guidance.v1 import guidance_service_pb2_grpc as guidance_grpc
from hibiki.routing.v1 import routing_service_pb2 as routing_pb
from hibiki.routing.v1 import routing_service_pb2_grpc as routing_grpc
from hibiki.sms.v1 import sms_box_service_pb2 as sms_pb
from hibiki.sms.v1 import sms_box_service_pb2_grpc as sms_grpc
from rich.markup import escape

from hibiki_cli.connection import Api
from hibiki_cli.errors import EXIT_NOT_FOUND, stderr

EXIT_AMBIGUOUS = 2  # wrong usage: the name needs to be an id
NAME_FILTER_MAX = 200  # the List/Search RPCs' longest name filter
SHOWN = 10  # candidates listed at most


@dataclass(frozen=True)
class Candidate:
    """Something a reference may mean: its id and how people recognise it."""

    id: str
    label: str


def pick(kind: str, reference: str, matches: Sequence[Candidate], similar: Sequence[Candidate] = ()) -> str:
    """The id of the one match; otherwise a clear error and the command's end."""
    unique = list({c.id: c for c in matches}.values())
    if len(unique) == 1:
        return unique[0].id
    if unique:
        stderr.print(
            f"[bold red]error[/]: {len(unique)} {kind}s match {escape(reference)!r}; give the id of one:"
        )
        for candidate in unique[:SHOWN]:
            stderr.print(f"  • {escape(candidate.id)}  {escape(candidate.label)}")
        raise typer.Exit(EXIT_AMBIGUOUS)
    stderr.print(f"[bold red]error[/]: no {kind} has the id or name {escape(reference)!r}")
    others = list({c.id: c for c in similar}.values())
    if others:
        stderr.print("  similar names:")
        for candidate in others[:SHOWN]:
            stderr.print(f"  • {escape(candidate.id)}  {escape(candidate.label)}")
    raise typer.Exit(EXIT_NOT_FOUND)


def _split(
    reference: str, by_id: Candidate | None, named: Sequence[tuple[str, Candidate]]
) -> tuple[list[Candidate], list[Candidate]]:
    """(the exact matches: by id or by the whole name, the rest of the name search)."""
    wanted = reference.strip()
    exact = [c for name, c in named if name.strip() == wanted]
    matches = ([by_id] if by_id else []) + exact
    return matches, [c for name, c in named if name.strip() != wanted]


def audio_file(api: Api, reference: str) -> str:
    stub = guidance_grpc.GuidanceServiceStub(api.channel)
    got = api.find(stub.GetAudioFile, guidance_pb.GetAudioFileRequest(id=reference))
    files = api.every_page(
        stub.ListAudioFiles,
        guidance_pb.ListAudioFilesRequest(name_contains=reference.strip()[:NAME_FILTER_MAX]),
        "audio_files",
    )
    by_id = Candidate(got.audio_file.id, f"「{got.audio_file.name}」") if got else None
    named = [(f.name, Candidate(f.id, f"「{f.name}」")) for f in files]
    return pick("audio file", reference, *_split(reference, by_id, named))


def guidance(api: Api, reference: str) -> str:
    stub = guidance_grpc.GuidanceServiceStub(api.channel)
    got = api.find(stub.GetOriginalGuidance, guidance_pb.GetOriginalGuidanceRequest(id=reference))
    found = api.every_page(
        stub.ListOriginalGuidances,
        guidance_pb.ListOriginalGuidancesRequest(name_contains=reference.strip()[:NAME_FILTER_MAX]),
        "original_guidances",
    )
    by_id = Candidate(got.original_guidance.id, f"「{got.original_guidance.name}」") if got else None
    named = [(g.name, Candidate(g.id, f"「{g.name}」")) for g in found]
    return pick("guidance", reference, *_split(reference, by_id, named))


def _flow_label(flow: routing_pb.Flow) -> str:
    return f"「{flow.name}」 {flow.dialed_number}"


def flow(api: Api, reference: str) -> str:
    """A flow by id, name or dialed number."""
    stub = routing_grpc.RoutingServiceStub(api.channel)
    got = api.find(stub.GetFlow, routing_pb.GetFlowRequest(id=reference))
    found = api.every_page(
        stub.SearchFlows,
        routing_pb.SearchFlowsRequest(name_contains=reference.strip()[:NAME_FILTER_MAX]),
        "flows",
    )
    by_id = Candidate(got.flow.id, _flow_label(got.flow)) if got else None
    named = [(f.name, Candidate(f.id, _flow_label(f))) for f in found]
    matches, similar = _split(reference, by_id, named)
    if not matches and reference.strip().lstrip("+").replace("-", "").isdigit():
        dialed = api.find(stub.SearchFlows, routing_pb.SearchFlowsRequest(dialed_number=reference.strip()))
        matches = [Candidate(f.id, _flow_label(f)) for f in dialed.flows] if dialed else []
    return pick("flow", reference, matches, similar)


def sms_box(api: Api, reference: str) -> str:
    """An SMS box by its number (蓄積BOX番号) or its name (蓄積BOX名); gives the number."""
    stub = sms_grpc.SmsBoxServiceStub(api.channel)
    got = api.find(stub.GetSmsBox, sms_pb.GetSmsBoxRequest(box_number=reference))
    found = api.every_page(
        stub.SearchSmsBoxes,
        sms_pb.SearchSmsBoxesRequest(query=reference.strip()[:NAME_FILTER_MAX]),
        "sms_boxes",
    )
    by_id = Candidate(got.sms_box.box_number, f"「{got.sms_box.box_name}」") if got else None
    named = [(b.box_name, Candidate(b.box_number, f"「{b.box_name}」")) for b in found]
    matches, similar = _split(reference, by_id, named)
    # A search by number finds the box itself too: not "similar" to itself.
    return pick("SMS box", reference, matches, [c for c in similar if c.id != reference])
