"""Use cases of flow editing: each runs in one transaction and is scoped to the caller's tenant."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from hibiki_runtime.errors import Aborted, AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from hibiki_runtime.phone import optional_phone
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hibiki_routing.adapters.blocklist_repository import BlocklistRepository
from hibiki_routing.adapters.flow_repository import (
    DialedNumberTaken,
    FlowRepository,
    PublishedVersion,
    SearchFilter,
    StaleRevision,
)
from hibiki_routing.domain.calls import Caller, CallState
from hibiki_routing.domain.dry_run import DryRun, ScriptedInput, check_script, dry_run
from hibiki_routing.domain.editing import Flow, apply_update, check_flow
from hibiki_routing.domain.flows import FlowDefinition, SendSmsNode
from hibiki_routing.domain.pinning import pin_steps
from hibiki_routing.domain.validation import Problem, find_problems

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
log = logging.getLogger("hibiki.routing.flows")


class Directory(Protocol):
    """Which of some ids a tenant has: guidances (guidance-tts) or SMS box numbers (sms-gateway)."""

    async def existing(self, tenant_id: str, ids: Set[str]) -> set[str]: ...


@dataclass(frozen=True)
class FlowCheck:
    """What ValidateFlow answers: problems block publishing; warnings say what could not be checked."""

    problems: list[Problem]
    warnings: list[Problem]


class GuidanceUsage(Protocol):
    """Where routing records the guidances a flow's draft and each published version play (guidance-tts), so
    that none of them can be deleted, and what each version heard (pinned content)."""

    async def record_draft(self, flow: Flow, guidance_ids: Set[str], *, settled: bool) -> None: ...

    async def record_version(
        self,
        flow: Flow,
        version: int,
        guidance_ids: Set[str],
        content_revisions: Mapping[str, int] | None = None,
        *,
        skip_unknown: bool = False,
    ) -> dict[str, int]: ...


@dataclass(frozen=True)
class Page:
    flows: list[Flow]
    next_after_id: str


class FlowService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        guidance_usage: GuidanceUsage | None = None,
        *,
        guidances: Directory | None = None,
        sms_boxes: Directory | None = None,
    ) -> None:
        self._sessions = sessions
        self._guidance_usage = guidance_usage
        # None: not configured (no address); references are then not checked and ValidateFlow warns.
        self._guidances = guidances
        self._sms_boxes = sms_boxes

    async def create(self, flow: Flow) -> Flow:
        draft = check_flow(replace(flow, id=str(uuid.uuid4()), revision=1, published_version=0))
        async with self._sessions() as session, session.begin():
            try:
                created = await FlowRepository(session).add(draft)
            except DialedNumberTaken as error:
                raise AlreadyExists(f"dialed number {draft.dialed_number} already has a flow") from error
        await self._settle_draft(created)
        return created

    async def get(self, tenant_id: str, flow_id: str, version: int = 0) -> Flow:
        async with self._sessions() as session:
            repository = FlowRepository(session)
            flow = await self._draft(repository, tenant_id, flow_id)
            if version == 0:
                return flow
            published = await self._version(repository, tenant_id, flow_id, version)
            return replace(flow, definition=published.definition, update_time=published.publish_time)

    async def search(self, tenant_id: str, where: SearchFilter, after_id: str, page_size: int) -> Page:
        if page_size < 0 or page_size > MAX_PAGE_SIZE:
            raise InvalidArgument.field(
                "page_size", f"must be 0 (default {DEFAULT_PAGE_SIZE}) to {MAX_PAGE_SIZE}"
            )
        limit = page_size or DEFAULT_PAGE_SIZE
        where = replace(where, dialed_number=optional_phone("dialed_number", where.dialed_number))
        async with self._sessions() as session:
            found = await FlowRepository(session).search(tenant_id, where, after_id, limit + 1)
        more = len(found) > limit
        return Page(found[:limit], found[limit - 1].id if more else "")

    async def update(
        self, tenant_id: str, changes: Flow, paths: Sequence[str], expected_revision: int
    ) -> Flow:
        async with self._sessions() as session, session.begin():
            repository = FlowRepository(session)
            current = await self._draft(repository, tenant_id, changes.id)
            updated = apply_update(current, changes, paths, expected_revision)
            await self._guard_draft(current, updated)
            saved = await self._save(repository, updated, current.revision)
        await self._settle_draft(saved)
        return saved

    async def validate(self, tenant_id: str, flow_id: str) -> list[Problem]:
        return (await self.check(tenant_id, flow_id)).problems

    async def check(self, tenant_id: str, flow_id: str) -> FlowCheck:
        """The draft's problems (exactly what PublishFlow refuses) and the checks that could not be made."""
        async with self._sessions() as session:
            flow = await self._draft(FlowRepository(session), tenant_id, flow_id)
        return await self._check(tenant_id, flow.definition)

    async def _check(self, tenant_id: str, definition: FlowDefinition) -> FlowCheck:
        """The one check of a definition: shape bounds, graph, and that its guidances and SMS boxes exist."""
        warnings: list[Problem] = []
        known_guidances: set[str] | None = None
        if self._guidances is None:
            warnings.append(
                Problem(
                    "",
                    "guidances",
                    "not checked: routing has no guidance-tts address (HIBIKI_GUIDANCE_ADDRESS)",
                )
            )
        else:
            guidance_ids = definition.guidance_ids()
            known_guidances = (
                await self._guidances.existing(tenant_id, guidance_ids) if guidance_ids else set()
            )
        known_boxes: set[str] | None = None
        if self._sms_boxes is None:
            warnings.append(
                Problem(
                    "", "sms_boxes", "not checked: routing has no sms-gateway address (HIBIKI_SMS_ADDRESS)"
                )
            )
        else:
            boxes = {node.kind.box_number for node in definition.nodes if isinstance(node.kind, SendSmsNode)}
            known_boxes = await self._sms_boxes.existing(tenant_id, boxes) if boxes else set()
        return FlowCheck(find_problems(definition, known_guidances, known_boxes), warnings)

    async def _require_runnable(self, tenant_id: str, definition: FlowDefinition, what: str) -> None:
        """Refuse to run a definition that ValidateFlow would report problems for."""
        problems = (await self._check(tenant_id, definition)).problems
        if problems:
            raise FailedPrecondition(
                f"{what} has problems (see ValidateFlow): "
                + "; ".join(f"{p.node_id or 'flow'}.{p.field}: {p.description}" for p in problems[:5])
            )

    async def publish(self, tenant_id: str, flow_id: str, expected_revision: int, by: str) -> Flow:
        """Freeze the draft as the next version; new calls use it, calls in progress keep theirs."""
        async with self._sessions() as session, session.begin():
            repository = FlowRepository(session)
            flow = await self._draft(repository, tenant_id, flow_id)
            if expected_revision and expected_revision != flow.revision:
                raise Aborted(f"flow {flow_id} is at revision {flow.revision}, not {expected_revision}")
            await self._require_runnable(tenant_id, flow.definition, "the draft")
            published = await self._make_live(repository, flow, flow.definition, by)
        await self._settle_draft(published)
        return published

    async def dry_run(
        self,
        tenant_id: str,
        flow_id: str,
        version: int,
        script: Sequence[ScriptedInput],
        caller_number: str,
        caller_withheld: bool,
        at: datetime,
    ) -> DryRun:
        """What a call to a flow version would get from the engine; read-only, so live calls are untouched."""
        check_script(script)
        caller_number = optional_phone("caller_number", caller_number)
        withheld = caller_withheld or not caller_number
        flow = await self.get(tenant_id, flow_id, version)
        await self._require_runnable(
            tenant_id, flow.definition, f"version {version}" if version else "the draft"
        )
        pins: Mapping[str, int] | None = None
        if version:
            async with self._sessions() as session:
                pins = (
                    await self._version(FlowRepository(session), tenant_id, flow_id, version)
                ).content_revisions
        blocklisted = False
        if not withheld:
            async with self._sessions() as session:
                blocklisted = await BlocklistRepository(session).contains(tenant_id, caller_number)
        state = CallState(
            "dry-run", tenant_id, flow.id, version, flow.dialed_number, "" if withheld else caller_number
        )
        run = dry_run(state, flow.definition, script, at, Caller(withheld, blocklisted))
        # A published version plays the content it pinned, as a live call of it would.
        steps = pin_steps((s.step for s in run.steps), pins)
        return replace(run, steps=tuple(replace(s, step=p) for s, p in zip(run.steps, steps, strict=True)))

    async def versions(self, tenant_id: str, flow_id: str) -> tuple[Flow, list[PublishedVersion]]:
        async with self._sessions() as session:
            repository = FlowRepository(session)
            flow = await self._draft(repository, tenant_id, flow_id)
            return flow, await repository.versions(tenant_id, flow_id)

    async def rollback(
        self, tenant_id: str, flow_id: str, version: int, by: str, discard_draft: bool = False
    ) -> Flow:
        """Publish an earlier version's definition again, as a new version, and make it the draft too.

        The draft then equals what is live, so the next publish cannot bring the rolled-back change back.
        A draft with unpublished changes is only replaced when the caller says so (`discard_draft`).
        """
        if version == 0:
            raise InvalidArgument.field("version", "name the published version to go back to")
        async with self._sessions() as session, session.begin():
            repository = FlowRepository(session)
            flow = await self._draft(repository, tenant_id, flow_id)
            earlier = await self._version(repository, tenant_id, flow_id, version)
            await self._require_runnable(tenant_id, earlier.definition, f"version {version}")
            if not discard_draft and flow.published_version:
                live = await self._version(repository, tenant_id, flow_id, flow.published_version)
                if live.definition != flow.definition:
                    raise FailedPrecondition(
                        f"the draft of flow {flow_id} (revision {flow.revision}) has changes that were never "
                        f"published; publish them first, or roll back with discard_draft to drop them"
                    )
            made_live = await self._make_live(
                repository, flow, earlier.definition, by, as_draft=True, pins=earlier.content_revisions
            )
        await self._settle_draft(made_live)
        return made_live

    async def _make_live(
        self,
        repository: FlowRepository,
        flow: Flow,
        definition: FlowDefinition,
        by: str,
        as_draft: bool = False,
        pins: Mapping[str, int] | None = None,
    ) -> Flow:
        """Add the next version; `pins` are the content revisions to keep (a rollback plays what the version
        it goes back to played), other guidances are pinned to their current content."""
        version = flow.published_version + 1
        # The compare-and-set fails if the draft was edited since it was read. A publish leaves the draft as
        # it is; a rollback makes the version made live the draft (a new revision).
        made_live = replace(flow, published_version=version)
        if as_draft and definition != flow.definition:
            made_live = replace(made_live, definition=definition, revision=flow.revision + 1)
        content_revisions: dict[str, int] | None = None
        if self._guidance_usage is not None:
            # Before the version exists: a refusal publishes nothing, a crash after it only over-protects.
            await self._record_unpinned_versions(repository, flow)
            content_revisions = await self._guidance_usage.record_version(
                flow, version, definition.guidance_ids(), pins
            )
            await self._guard_draft(flow, made_live)
        try:
            await repository.add_version(flow, version, definition, by, content_revisions)
        except StaleRevision as error:
            raise Aborted(f"flow {flow.id} was published meanwhile; read it again") from error
        return await self._save(repository, made_live, flow.revision)

    async def _record_unpinned_versions(self, repository: FlowRepository, flow: Flow) -> None:
        """Record the versions published before usage covered every version (or without guidance-tts), once:
        they keep their guidances from now on, and play the content they play now."""
        assert self._guidance_usage is not None
        for earlier in await repository.versions(flow.tenant_id, flow.id):
            if earlier.content_revisions is None:
                pins = await self._guidance_usage.record_version(
                    flow, earlier.version, earlier.definition.guidance_ids(), skip_unknown=True
                )
                await repository.pin_contents(flow.id, earlier.version, pins)

    async def _guard_draft(self, before: Flow, after: Flow) -> None:
        """Before a draft changes: protect the guidances of both drafts (a failed save only over-protects)."""
        if self._guidance_usage is not None:
            both = before.definition.guidance_ids() | after.definition.guidance_ids()
            await self._guidance_usage.record_draft(after, both, settled=False)

    async def _settle_draft(self, saved: Flow) -> None:
        """After a draft was saved: exactly its guidances. Best effort: until it is recorded, the guard made
        before the save keeps (more than) them."""
        if self._guidance_usage is None:
            return
        try:
            await self._guidance_usage.record_draft(saved, saved.definition.guidance_ids(), settled=True)
        except Exception:
            log.warning("could not record the guidances of the draft of flow %s", saved.id, exc_info=True)

    @staticmethod
    async def _save(repository: FlowRepository, flow: Flow, read_revision: int) -> Flow:
        try:
            return await repository.save(flow, read_revision)
        except StaleRevision as error:
            raise Aborted(f"flow {flow.id} changed meanwhile; read it again") from error
        except DialedNumberTaken as error:
            raise AlreadyExists(f"dialed number {flow.dialed_number} already has a flow") from error

    @staticmethod
    async def _draft(repository: FlowRepository, tenant_id: str, flow_id: str) -> Flow:
        if not flow_id:
            raise InvalidArgument.field("id", "is required")
        flow = await repository.get(tenant_id, flow_id)
        if flow is None:
            raise NotFound(f"no flow {flow_id}")
        return flow

    @staticmethod
    async def _version(
        repository: FlowRepository, tenant_id: str, flow_id: str, version: int
    ) -> PublishedVersion:
        published = await repository.version(tenant_id, flow_id, version)
        if published is None:
            raise NotFound(f"flow {flow_id} has no published version {version}")
        return published
