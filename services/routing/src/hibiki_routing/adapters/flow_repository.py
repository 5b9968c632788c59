"""Flow drafts and published versions in SQL; every query is scoped by tenant."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from hibiki_runtime.db import among
from sqlalchemy import select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hibiki_routing.adapters.flow_codec import definition_from_json, definition_to_json
from hibiki_routing.adapters.tables import flow_versions, flows
from hibiki_routing.domain.editing import Flow
from hibiki_routing.domain.flows import FlowDefinition


class DialedNumberTaken(Exception):
    """Another flow (of any tenant) already answers the dialed number."""


class StaleRevision(Exception):
    """The draft changed since it was read."""


@dataclass(frozen=True)
class PublishedVersion:
    flow_id: str
    version: int
    definition: FlowDefinition
    publish_time: datetime
    published_by: str
    # Guidance id → pinned content revision (see domain.pinning); None when nothing was pinned.
    content_revisions: Mapping[str, int] | None = None


@dataclass(frozen=True)
class LiveFlow:
    """The published version a new call to a dialed number runs on."""

    tenant_id: str
    flow_id: str
    version: int


@dataclass(frozen=True)
class SearchFilter:
    name_contains: str = ""
    dialed_number: str = ""
    guidance_id: str = ""


def _guidance_column(definition: FlowDefinition) -> str:
    return " " + " ".join(sorted(definition.guidance_ids())) + " "


def _published(row: Any) -> PublishedVersion:
    pins = row.content_revisions
    return PublishedVersion(
        row.flow_id,
        row.version,
        definition_from_json(row.definition),
        row.publish_time,
        row.published_by,
        None if pins is None else {str(k): int(v) for k, v in pins.items()},
    )


def _flow(row: Any) -> Flow:
    return Flow(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        dialed_number=row.dialed_number,
        definition=definition_from_json(row.definition),
        revision=row.revision,
        published_version=row.published_version,
        update_time=row.update_time,
    )


class FlowRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, flow: Flow) -> Flow:
        stored = replace(flow, update_time=datetime.now(UTC))
        # A failed statement spoils the transaction; the caller's unit of work rolls it back.
        try:
            await self._session.execute(
                flows.insert().values(
                    id=stored.id,
                    tenant_id=stored.tenant_id,
                    name=stored.name,
                    dialed_number=stored.dialed_number,
                    definition=definition_to_json(stored.definition),
                    guidance_ids=_guidance_column(stored.definition),
                    revision=stored.revision,
                    published_version=stored.published_version,
                    update_time=stored.update_time,
                )
            )
        except IntegrityError as error:
            raise DialedNumberTaken(stored.dialed_number) from error
        return stored

    async def get(self, tenant_id: str, flow_id: str) -> Flow | None:
        row = (
            await self._session.execute(
                select(flows).where(flows.c.tenant_id == tenant_id, flows.c.id == flow_id)
            )
        ).one_or_none()
        return _flow(row) if row is not None else None

    async def save(self, flow: Flow, read_revision: int) -> Flow:
        """Store `flow` if the stored draft is still at `read_revision` (compare-and-set)."""
        stored = replace(flow, update_time=datetime.now(UTC))
        try:
            result = await self._session.execute(
                update(flows)
                .where(
                    flows.c.tenant_id == flow.tenant_id,
                    flows.c.id == flow.id,
                    flows.c.revision == read_revision,
                )
                .values(
                    name=stored.name,
                    dialed_number=stored.dialed_number,
                    definition=definition_to_json(stored.definition),
                    guidance_ids=_guidance_column(stored.definition),
                    revision=stored.revision,
                    published_version=stored.published_version,
                    update_time=stored.update_time,
                )
            )
        except IntegrityError as error:
            raise DialedNumberTaken(stored.dialed_number) from error
        if getattr(result, "rowcount", 0) != 1:
            raise StaleRevision(flow.id)
        return stored

    async def search(self, tenant_id: str, where: SearchFilter, after_id: str, limit: int) -> list[Flow]:
        query = select(flows).where(flows.c.tenant_id == tenant_id, flows.c.id > after_id)
        if where.name_contains:
            query = query.where(flows.c.name.contains(where.name_contains, autoescape=True))
        if where.dialed_number:
            query = query.where(flows.c.dialed_number == where.dialed_number)
        if where.guidance_id:
            query = query.where(flows.c.guidance_ids.contains(f" {where.guidance_id} ", autoescape=True))
        rows = (await self._session.execute(query.order_by(flows.c.id).limit(limit))).all()
        return [_flow(row) for row in rows]

    async def add_version(
        self,
        flow: Flow,
        version: int,
        definition: FlowDefinition,
        by: str,
        content_revisions: Mapping[str, int] | None = None,
    ) -> None:
        try:
            await self._session.execute(
                flow_versions.insert().values(
                    flow_id=flow.id,
                    version=version,
                    tenant_id=flow.tenant_id,
                    definition=definition_to_json(definition),
                    publish_time=datetime.now(UTC),
                    published_by=by,
                    content_revisions=None if content_revisions is None else dict(content_revisions),
                )
            )
        except IntegrityError as error:  # a concurrent publish took this version number
            raise StaleRevision(flow.id) from error

    async def version(self, tenant_id: str, flow_id: str, version: int) -> PublishedVersion | None:
        row = (
            await self._session.execute(
                select(flow_versions).where(
                    flow_versions.c.tenant_id == tenant_id,
                    flow_versions.c.flow_id == flow_id,
                    flow_versions.c.version == version,
                )
            )
        ).one_or_none()
        if row is None:
            return None
        return _published(row)

    async def versions(self, tenant_id: str, flow_id: str) -> list[PublishedVersion]:
        rows = (
            await self._session.execute(
                select(flow_versions)
                .where(flow_versions.c.tenant_id == tenant_id, flow_versions.c.flow_id == flow_id)
                .order_by(flow_versions.c.version)
            )
        ).all()
        return [_published(r) for r in rows]

    async def pin_contents(self, flow_id: str, version: int, content_revisions: Mapping[str, int]) -> None:
        """Record what a version published before pinning existed plays from now on (its definition stays)."""
        await self._session.execute(
            update(flow_versions)
            .where(flow_versions.c.flow_id == flow_id, flow_versions.c.version == version)
            .values(content_revisions=dict(content_revisions))
        )

    async def content_revisions(
        self, versions: Collection[tuple[str, int]]
    ) -> dict[tuple[str, int], Mapping[str, int]]:
        """The pinned content revisions of published versions by (flow id, version), in one query."""
        if not versions:
            return {}
        rows = await self._session.execute(
            select(flow_versions.c.flow_id, flow_versions.c.version, flow_versions.c.content_revisions).where(
                tuple_(flow_versions.c.flow_id, flow_versions.c.version).in_(list(versions))
            )
        )
        return {(row.flow_id, row.version): dict(row.content_revisions or {}) for row in rows}

    async def live_flows_for(self, dialed_numbers: Collection[str]) -> dict[str, LiveFlow]:
        """The live version answering each of `dialed_numbers` that has one, whichever tenant owns it (checked
        by the caller), in one query."""
        if not dialed_numbers:
            return {}
        rows = await self._session.execute(
            select(flows.c.dialed_number, flows.c.tenant_id, flows.c.id, flows.c.published_version).where(
                among(self._session, flows.c.dialed_number, dialed_numbers), flows.c.published_version > 0
            )
        )
        return {row.dialed_number: LiveFlow(row.tenant_id, row.id, row.published_version) for row in rows}

    async def definitions(
        self, versions: Collection[tuple[str, int]]
    ) -> dict[tuple[str, int], FlowDefinition]:
        """Published versions by (flow id, version) for the call engine, in one query (the call's tenant was
        checked when it started); a version not stored is left out."""
        if not versions:
            return {}
        rows = await self._session.execute(
            select(flow_versions.c.flow_id, flow_versions.c.version, flow_versions.c.definition).where(
                tuple_(flow_versions.c.flow_id, flow_versions.c.version).in_(list(versions))
            )
        )
        return {(row.flow_id, row.version): definition_from_json(row.definition) for row in rows}
