"""Use cases of flow editing: each runs in one transaction and is scoped to the caller's tenant."""

from __future__ import annotations

import uuid
from collections.abc import Sequence, Set
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from hibiki_runtime.errors import Aborted, AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
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
from hibiki_routing.domain.flows import FlowDefinition
from hibiki_routing.domain.validation import Problem, find_problems, require_e164

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


class GuidanceUsage(Protocol):
    """Where routing records the guidances a published flow plays (guidance-tts), so they stay undeletable."""

    async def record(self, flow: Flow, version: int, guidance_ids: Set[str]) -> None: ...


@dataclass(frozen=True)
class Page:
    flows: list[Flow]
    next_after_id: str


class FlowService:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], guidance_usage: GuidanceUsage | None = None
    ) -> None:
        self._sessions = sessions
        self._guidance_usage = guidance_usage

    async def create(self, flow: Flow) -> Flow:
        draft = replace(flow, id=str(uuid.uuid4()), revision=1, published_version=0)
        check_flow(draft)
        async with self._sessions() as session, session.begin():
            try:
                return await FlowRepository(session).add(draft)
            except DialedNumberTaken as error:
                raise AlreadyExists(f"dialed number {draft.dialed_number} already has a flow") from error

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
            return await self._save(repository, updated, current.revision)

    async def validate(self, tenant_id: str, flow_id: str) -> list[Problem]:
        async with self._sessions() as session:
            flow = await self._draft(FlowRepository(session), tenant_id, flow_id)
        return find_problems(flow.definition)

    async def publish(self, tenant_id: str, flow_id: str, expected_revision: int, by: str) -> Flow:
        """Freeze the draft as the next version; new calls use it, calls in progress keep theirs."""
        async with self._sessions() as session, session.begin():
            repository = FlowRepository(session)
            flow = await self._draft(repository, tenant_id, flow_id)
            if expected_revision and expected_revision != flow.revision:
                raise Aborted(f"flow {flow_id} is at revision {flow.revision}, not {expected_revision}")
            _require_runnable(flow.definition, "the draft")
            return await self._make_live(repository, flow, flow.definition, by)

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
        if caller_number:
            require_e164("caller_number", caller_number)
        withheld = caller_withheld or not caller_number
        flow = await self.get(tenant_id, flow_id, version)
        _require_runnable(flow.definition, f"version {version}" if version else "the draft")
        blocklisted = False
        if not withheld:
            async with self._sessions() as session:
                blocklisted = await BlocklistRepository(session).contains(tenant_id, caller_number)
        state = CallState(
            "dry-run", tenant_id, flow.id, version, flow.dialed_number, "" if withheld else caller_number
        )
        return dry_run(state, flow.definition, script, at, Caller(withheld, blocklisted))

    async def versions(self, tenant_id: str, flow_id: str) -> tuple[Flow, list[PublishedVersion]]:
        async with self._sessions() as session:
            repository = FlowRepository(session)
            flow = await self._draft(repository, tenant_id, flow_id)
            return flow, await repository.versions(tenant_id, flow_id)

    async def rollback(self, tenant_id: str, flow_id: str, version: int, by: str) -> Flow:
        """Publish an earlier version's definition again, as a new version; the draft is left alone."""
        if version == 0:
            raise InvalidArgument.field("version", "name the published version to go back to")
        async with self._sessions() as session, session.begin():
            repository = FlowRepository(session)
            flow = await self._draft(repository, tenant_id, flow_id)
            earlier = await self._version(repository, tenant_id, flow_id, version)
            return await self._make_live(repository, flow, earlier.definition, by)

    async def _make_live(
        self, repository: FlowRepository, flow: Flow, definition: FlowDefinition, by: str
    ) -> Flow:
        version = flow.published_version + 1
        if self._guidance_usage is not None:
            # Before the version exists: a refusal publishes nothing, a crash after it only over-protects.
            await self._guidance_usage.record(flow, version, definition.guidance_ids())
        try:
            await repository.add_version(flow, version, definition, by)
        except StaleRevision as error:
            raise Aborted(f"flow {flow.id} was published meanwhile; read it again") from error
        # The draft itself is unchanged; the compare-and-set fails if it was edited since it was read.
        return await self._save(repository, replace(flow, published_version=version), flow.revision)

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


def _require_runnable(definition: FlowDefinition, what: str) -> None:
    """Refuse to run a definition the engine cannot run safely (the checks of ValidateFlow)."""
    problems = find_problems(definition)
    if problems:
        raise FailedPrecondition(
            f"{what} has problems (see ValidateFlow): "
            + "; ".join(f"{p.node_id or 'flow'}.{p.field}: {p.description}" for p in problems[:5])
        )
