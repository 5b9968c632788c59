"""Editing a flow: the draft record, partial updates by field mask, and the optimistic-concurrency rule."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from hibiki_runtime.errors import Aborted, InvalidArgument
from hibiki_runtime.field_mask import update_paths
from hibiki_runtime.phone import require_phone

from .flows import FlowDefinition
from .validation import check_shape

# Field-mask paths an update may change; "nodes" replaces the whole node list.
UPDATABLE_PATHS = ("name", "dialed_number", "entry_node_id", "nodes", "caller_rejection")
MAX_NAME_LENGTH = 200


@dataclass(frozen=True)
class Flow:
    """The editable draft of a dialed number's flow, and which version of it is live."""

    id: str
    tenant_id: str
    name: str
    dialed_number: str
    definition: FlowDefinition
    revision: int = 1
    published_version: int = 0
    update_time: datetime | None = None


def check_flow(flow: Flow) -> Flow:
    """The draft as stored (dialed number in E.164), or InvalidArgument (missing name, bad number, nodes)."""
    if not flow.name.strip() or len(flow.name) > MAX_NAME_LENGTH:
        raise InvalidArgument.field("flow.name", f"is required, at most {MAX_NAME_LENGTH} characters")
    dialed_number = require_phone("flow.dialed_number", flow.dialed_number)
    if not flow.definition.entry_node_id:
        raise InvalidArgument.field("flow.entry_node_id", "is required")
    check_shape(flow.definition)
    return replace(flow, dialed_number=dialed_number)


def apply_update(current: Flow, changes: Flow, paths: Sequence[str], expected_revision: int) -> Flow:
    """The draft after copying the masked fields of `changes` onto `current`; the revision moves on."""
    if expected_revision == 0:
        raise InvalidArgument.field("expected_revision", "is required (the revision you read)")
    paths = update_paths(paths, UPDATABLE_PATHS)
    if expected_revision != current.revision:
        raise Aborted(f"flow {current.id} is at revision {current.revision}, not {expected_revision}")
    definition = current.definition
    if "entry_node_id" in paths:
        definition = replace(definition, entry_node_id=changes.definition.entry_node_id)
    if "nodes" in paths:
        definition = replace(definition, nodes=changes.definition.nodes)
    if "caller_rejection" in paths:
        definition = replace(definition, caller_rejection=changes.definition.caller_rejection)
    updated = replace(
        current,
        name=changes.name if "name" in paths else current.name,
        dialed_number=changes.dialed_number if "dialed_number" in paths else current.dialed_number,
        definition=definition,
        revision=current.revision + 1,
    )
    return check_flow(updated)
