"""Flow problems: bad shape refuses a save; dangling, unreachable or endless nodes block publishing."""

from __future__ import annotations

import re
from collections.abc import Iterator, Set
from dataclasses import dataclass
from datetime import date, timedelta

from hibiki_runtime.errors import FieldViolation, InvalidArgument
from hibiki_runtime.phone import is_e164

from .flows import (
    AnnouncementNode,
    BusinessHoursNode,
    FlowDefinition,
    GuidanceChoiceKind,
    HangupNode,
    MenuNode,
    Node,
    SendSmsNode,
    TransferNode,
)

DTMF_KEYS = re.compile(r"^[0-9*#]+$")
MAX_DIGITS = 32
MAX_NODE_ID_LENGTH = 100
# Bounds of every timer and count of a flow (documented on the fields in routing_service.proto).
MIN_TIMEOUT = timedelta(seconds=1)
MAX_TIMEOUT = timedelta(seconds=60)
MAX_ATTEMPTS = 10


@dataclass(frozen=True)
class Problem:
    """Why a flow cannot be published, pinned to a node and field."""

    node_id: str
    field: str
    description: str


def check_shape(definition: FlowDefinition, path: str = "flow") -> None:
    """Refuse a definition that cannot even be stored as a draft (ids, digits, limits, dates)."""
    violations = list(_shape_violations(definition, path))
    if violations:
        raise InvalidArgument(*violations)


def _shape_violations(definition: FlowDefinition, path: str) -> Iterator[FieldViolation]:
    seen: set[str] = set()
    for index, node in enumerate(definition.nodes):
        at = f"{path}.nodes[{index}]"
        if not 0 < len(node.id) <= MAX_NODE_ID_LENGTH:
            yield FieldViolation(f"{at}.id", f"is required, at most {MAX_NODE_ID_LENGTH} characters")
        elif node.id in seen:
            yield FieldViolation(f"{at}.id", f"duplicate node id {node.id!r}")
        seen.add(node.id)
        yield from _kind_violations(node, at)


def _kind_violations(node: Node, at: str) -> Iterator[FieldViolation]:
    kind = node.kind
    if isinstance(kind, MenuNode):
        if not 1 <= kind.max_digits <= MAX_DIGITS:
            yield FieldViolation(f"{at}.menu.max_digits", f"must be 1 to {MAX_DIGITS}")
        if kind.terminator not in ("", "#", "*"):
            yield FieldViolation(f"{at}.menu.terminator", 'must be "#", "*" or empty')
        for digits in kind.digit_targets:
            if not DTMF_KEYS.match(digits) or len(digits) > kind.max_digits:
                yield FieldViolation(
                    f"{at}.menu.digit_targets[{digits}]", "must be DTMF keys (0-9, *, #) within max_digits"
                )
        yield from _attempt_violations(f"{at}.menu", kind.max_invalid_attempts, kind.max_timeout_attempts)
        for name, timeout in (
            ("first_digit_timeout", kind.first_digit_timeout),
            ("inter_digit_timeout", kind.inter_digit_timeout),
        ):
            if not MIN_TIMEOUT <= timeout <= MAX_TIMEOUT:
                yield FieldViolation(
                    f"{at}.menu.{name}",
                    f"must be {MIN_TIMEOUT.seconds} to {MAX_TIMEOUT.seconds} seconds",
                )
        for name, choice in (
            ("invalid_input_guidance", kind.invalid_input_guidance),
            ("input_timeout_guidance", kind.input_timeout_guidance),
        ):
            if (choice.kind is GuidanceChoiceKind.ORIGINAL_GUIDANCE) != bool(choice.guidance_id):
                yield FieldViolation(
                    f"{at}.menu.{name}.guidance_id", "is required exactly with an original guidance"
                )
    elif isinstance(kind, SendSmsNode):
        if not kind.box_number:
            yield FieldViolation(f"{at}.send_sms.box_number", "is required")
        capture = kind.mobile_number_capture
        if capture is not None and not capture.prompt_guidance_id:
            yield FieldViolation(f"{at}.send_sms.mobile_number_capture.prompt_guidance_id", "is required")
        if capture is not None:
            yield from _attempt_violations(
                f"{at}.send_sms.mobile_number_capture",
                capture.max_invalid_attempts,
                capture.max_timeout_attempts,
            )
    elif isinstance(kind, TransferNode) and not is_e164(kind.destination):
        yield FieldViolation(f"{at}.transfer.destination", "must be an E.164 number")
    elif isinstance(kind, BusinessHoursNode):
        for w, window in enumerate(kind.windows):
            if not window.weekdays or not window.weekdays <= set(range(1, 8)):
                yield FieldViolation(f"{at}.business_hours.windows[{w}].weekdays", "must be 1 (Mon) … 7")
            if not 0 <= window.start_minute < window.end_minute <= 24 * 60:
                yield FieldViolation(f"{at}.business_hours.windows[{w}]", "start must precede end")
        for closed in kind.closed_dates:
            try:
                date.fromisoformat(closed)
            except ValueError:
                yield FieldViolation(f"{at}.business_hours.closed_dates", f"{closed!r} is not YYYY-MM-DD")


def _attempt_violations(at: str, max_invalid: int, max_timeout: int) -> Iterator[FieldViolation]:
    for name, limit in (("max_invalid_attempts", max_invalid), ("max_timeout_attempts", max_timeout)):
        if not 1 <= limit <= MAX_ATTEMPTS:
            yield FieldViolation(f"{at}.{name}", f"must be 1 to {MAX_ATTEMPTS}")


def find_problems(
    definition: FlowDefinition,
    known_guidance_ids: Set[str] | None = None,
    known_box_numbers: Set[str] | None = None,
) -> list[Problem]:
    """Everything that keeps a draft from being published; empty when it can run.

    The one check of ValidateFlow, PublishFlow, RollbackFlow and DryRunFlow: the shape rules of a save (a
    draft stored before a rule existed is caught here), the graph, and — when the known sets are given — that
    every guidance and SMS box the flow names exists.
    """
    problems: list[Problem] = []
    if definition.node(definition.entry_node_id) is None:
        problems.append(Problem("", "entry_node_id", f"no node {definition.entry_node_id!r}"))
    for node in definition.nodes:
        problems.extend(
            Problem(node.id, violation.field.removeprefix("."), violation.description)
            for violation in _kind_violations(node, "")
        )
        for field, target in node.kind.targets():
            if definition.node(target) is None:
                problems.append(Problem(node.id, field, f"targets missing node {target!r}"))
        if known_guidance_ids is not None:
            for field, guidance_id in node.kind.guidance_ids():
                if guidance_id not in known_guidance_ids:
                    problems.append(
                        Problem(
                            node.id, field, f"unknown guidance {guidance_id!r} (deleted, or never created)"
                        )
                    )
        if (
            known_box_numbers is not None
            and isinstance(node.kind, SendSmsNode)
            and node.kind.box_number not in known_box_numbers
        ):
            problems.append(
                Problem(node.id, "send_sms.box_number", f"unknown SMS box {node.kind.box_number!r}")
            )
        if isinstance(node.kind, MenuNode) and not node.kind.digit_targets:
            problems.append(Problem(node.id, "menu.digit_targets", "a menu needs at least one choice"))
    rejection_guidance = definition.caller_rejection.announcement_guidance_id
    if known_guidance_ids is not None and rejection_guidance and rejection_guidance not in known_guidance_ids:
        problems.append(
            Problem(
                "",
                "caller_rejection.announcement_guidance_id",
                f"unknown guidance {rejection_guidance!r} (deleted, or never created)",
            )
        )
    reachable = _reachable(definition, [definition.entry_node_id])
    problems.extend(
        Problem(node.id, "id", "unreachable from the entry node")
        for node in definition.nodes
        if node.id not in reachable
    )
    problems.extend(
        Problem(node.id, "id", "the call can never end from here (no path to a hang-up or transfer)")
        for node in definition.nodes
        if node.id in reachable and not _reachable(definition, [node.id]) & _ending_nodes(definition)
    )
    problems.extend(
        Problem(node_id, "id", "loops back to itself without waiting for the caller")
        for node_id in sorted(_instant_cycles(definition))
    )
    return problems


def _instant_cycles(definition: FlowDefinition) -> set[str]:
    """Nodes on a cycle of nodes that pass the call on at once (the engine would spin forever)."""
    instant = {node.id: node for node in definition.nodes if passes_on_at_once(node)}
    on_cycle = set()
    for node_id, node in instant.items():
        if node_id in _reachable_within(instant, _successors(node)):
            on_cycle.add(node_id)
    return on_cycle


def _reachable_within(nodes: dict[str, Node], start: list[str]) -> set[str]:
    seen: set[str] = set()
    pending = [n for n in start if n in nodes]
    while pending:
        node_id = pending.pop()
        if node_id not in seen:
            seen.add(node_id)
            pending.extend(n for n in _successors(nodes[node_id]) if n in nodes)
    return seen


def passes_on_at_once(node: Node) -> bool:
    """True for nodes that do not wait for the telephony side (branching, silent SMS)."""
    kind = node.kind
    return isinstance(kind, BusinessHoursNode) or (
        isinstance(kind, SendSmsNode) and not kind.announcement_guidance_id and bool(kind.next_node_id)
    )


def _successors(node: Node) -> list[str]:
    return [target for _, target in node.kind.targets()]


def _reachable(definition: FlowDefinition, start: list[str]) -> set[str]:
    seen: set[str] = set()
    pending = list(start)
    while pending:
        node = definition.node(pending.pop())
        if node is None or node.id in seen:
            continue
        seen.add(node.id)
        pending.extend(_successors(node))
    return seen


def _ending_nodes(definition: FlowDefinition) -> set[str]:
    """Nodes after which the IVR is done: hang-up, transfer, or the end of an announcement/SMS chain."""
    ends = set()
    for node in definition.nodes:
        kind = node.kind
        if isinstance(kind, HangupNode | TransferNode) or (
            isinstance(kind, AnnouncementNode | SendSmsNode) and not kind.next_node_id
        ):
            ends.add(node.id)
        if isinstance(kind, MenuNode) and not kind.fallback_node_id:
            ends.add(node.id)  # past a limit the call is hung up
    return ends
