"""SMS boxes (蓄積BOX): number and name fixed at creation, message text and URL editable with revisions."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from hibiki_runtime.errors import Aborted, FieldViolation, InvalidArgument

from hibiki_sms_gateway.domain.message_text import DEFAULT_MAX_CHARACTERS, validate_content

IMMUTABLE_FIELDS = ("box_number", "box_name")
EDITABLE_FIELDS = ("message_text", "url")
_BOX_NUMBER = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,31}")
MAX_NAME_LENGTH = 100


@dataclass(frozen=True)
class SmsBox:
    tenant_id: str
    box_number: str
    box_name: str
    message_text: str
    url: str
    revision: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class BoxRevision:
    """One saved change: who made it, when, and the editable fields before and after."""

    tenant_id: str
    box_number: str
    revision: int
    actor: str
    changed_at: datetime
    message_text_before: str
    message_text_after: str
    url_before: str
    url_after: str


def _identity_violations(box_number: str, box_name: str) -> list[FieldViolation]:
    violations = []
    if not _BOX_NUMBER.fullmatch(box_number):
        violations.append(
            FieldViolation(
                "box_number", "must be 1-32 letters, digits, '-' or '_', starting with a letter or digit"
            )
        )
    if not box_name.strip():
        violations.append(FieldViolation("box_name", "must not be empty"))
    elif len(box_name) > MAX_NAME_LENGTH:
        violations.append(FieldViolation("box_name", f"must be at most {MAX_NAME_LENGTH} characters"))
    return violations


def create_box(
    tenant_id: str,
    box_number: str,
    box_name: str,
    message_text: str,
    url: str,
    *,
    actor: str,
    now: datetime,
    max_characters: int = DEFAULT_MAX_CHARACTERS,
    short_link_base: str = "",
) -> tuple[SmsBox, BoxRevision]:
    """A new box at revision 1, and its first revision record."""
    violations = _identity_violations(box_number, box_name)
    try:
        validate_content(message_text, url, max_characters, short_link_base)
    except InvalidArgument as error:
        violations.extend(error.violations)
    if violations:
        raise InvalidArgument(*violations)
    box = SmsBox(tenant_id, box_number, box_name, message_text, url, 1, now, now)
    return box, BoxRevision(tenant_id, box_number, 1, actor, now, "", message_text, "", url)


def edit_box(
    box: SmsBox,
    changes: Mapping[str, str],
    *,
    expected_revision: int,
    actor: str,
    now: datetime,
    max_characters: int = DEFAULT_MAX_CHARACTERS,
    short_link_base: str = "",
) -> tuple[SmsBox, BoxRevision]:
    """Apply changes to message_text/url; the number and name can never change (seed: 変更できません)."""
    # box_number names the box, so naming it among the changes is always an attempt to change it.
    if "box_number" in changes:
        raise InvalidArgument.field(
            "box_number", "box_number cannot be changed after the box is created; create a new box instead"
        )
    if "box_name" in changes and changes["box_name"] != box.box_name:
        raise InvalidArgument.field(
            "box_name", "box_name cannot be changed after the box is created; create a new box instead"
        )
    unknown = sorted(set(changes) - set(EDITABLE_FIELDS) - set(IMMUTABLE_FIELDS))
    if unknown:
        raise InvalidArgument.field(
            "update_mask", f"unknown field(s) {', '.join(unknown)}; editable: {', '.join(EDITABLE_FIELDS)}"
        )
    if expected_revision != box.revision:
        raise Aborted(
            f"box {box.box_number} is at revision {box.revision}, not {expected_revision}; reload and retry"
        )
    message_text = changes.get("message_text", box.message_text)
    url = changes.get("url", box.url)
    validate_content(message_text, url, max_characters, short_link_base)
    updated = replace(box, message_text=message_text, url=url, revision=box.revision + 1, updated_at=now)
    revision = BoxRevision(
        box.tenant_id,
        box.box_number,
        updated.revision,
        actor,
        now,
        box.message_text,
        message_text,
        box.url,
        url,
    )
    return updated, revision
