"""Flow problems: bad shape refuses a save; dangling, unreachable or endless nodes block publishing."""

from __future__ import annotations

import re
from collections.abc import Iterator, Set
from dataclasses import dataclass
from datetime import date

from hibiki_runtime.errors import FieldViolation, InvalidArgument

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

E164 = re.compile(r"\+[1-9][0-9]{6,14}")  # use fullmatch: "$" would accept a trailing newline
DTMF_KEYS = re.compile(r"^[0-9*#]+$")
MAX_DIGITS = 32
MAX_NODE_ID_LENGTH = 100


@dataclass(frozen=True)
class Problem:
    """Why a flow cannot be published, pinned to a node and field."""

    node_id: str
    field: str
    description: str


def require_e164(field: str, number: str) -> None:
    """Raise InvalidArgument unless `number` is an E.164 number such as +81312345678."""
    if not E164.fullmatch(number):
        raise InvalidArgument.field(field, "must be an E.164 number such as +81312345678")


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
            yield FieldViolation(f"{at}.menu.max_digits", f"must be between 1 and {MAX_DIGITS}")
        if kind.terminator not in ("", "#", "*"):
            yield FieldViolation(f"{at}.menu.terminator", 'must be "#", "*" or empty')
        for digits in kind.digit_targets:
            if not DTMF_KEYS.match(digits) or len(digits) > kind.max_digits:
                yield FieldViolation(
                    f"{at}.menu.digit_targets[{digits}]", "must be DTMF keys (0-9, *, #) within max_digits"
                )
        if kind.max_invalid_attempts < 1 or kind.max_timeout_attempts < 1:
            yield FieldViolation(f"{at}.menu", "attempt limits must be at least 1")
        if kind.first_digit_timeout.total_seconds() <= 0 or kind.inter_digit_timeout.total_seconds() <= 0:
            yield FieldViolation(f"{at}.menu", "timeouts must be positive")
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
        if capture is not None and (capture.max_invalid_attempts < 1 or capture.max_timeout_attempts < 1):
            yield FieldViolation(f"{at}.send_sms.mobile_number_capture", "attempt limits must be at least 1")
    elif isinstance(kind, TransferNode) and not E164.fullmatch(kind.destination):
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


def find_problems(definition: FlowDefinition, known_guidance_ids: Set[str] | None = None) -> list[Problem]:
    """Everything that keeps a draft from being published; empty when it can run."""
    problems: list[Problem] = []
    if definition.node(definition.entry_node_id) is None:
        problems.append(Problem("", "entry_node_id", f"no node {definition.entry_node_id!r}"))
    for node in definition.nodes:
        for field, target in node.kind.targets():
            if definition.node(target) is None:
                problems.append(Problem(node.id, field, f"targets missing node {target!r}"))
        if known_guidance_ids is not None:
            for field, guidance_id in node.kind.guidance_ids():
                if guidance_id not in known_guidance_ids:
                    problems.append(Problem(node.id, field, f"unknown guidance {guidance_id!r}"))
        if isinstance(node.kind, MenuNode) and not node.kind.digit_targets:
            problems.append(Problem(node.id, "menu.digit_targets", "a menu needs at least one choice"))
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
