"""One consumed batch's transaction: claims of its event ids, its rejections and its outgoing messages.

Every consumer repeats the same reliability sequence around its own repositories: claim the event ids
(a redelivered event is claimed already and skipped), refuse some items for good, queue the messages the
state change causes in the outbox, commit all of it at once, then wake the relay. A refused item's claim
is released at commit, so that a redelivery (e.g. after a failed DLQ publish) is refused again rather than
skipped as handled.

    async with ConsumerUnitOfWork(sessions, "routing.call-events", relay.notify) as work:
        fresh = await work.claim(items)
        ...  # repositories on work.session; work.reject(item, reason, detail); work.send(messages)
    return work.rejections
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, TypeVar

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession, AsyncSessionTransaction, async_sessionmaker

from hibiki_runtime.consumer import Inbound, Rejection
from hibiki_runtime.outbox import claim_events, enqueue_all, first_claimed, release_claims

Item = TypeVar("Item", bound=Inbound[Any])


class ConsumerUnitOfWork:
    """Commits on a clean exit, rolls back when the block raises (nothing claimed, nothing sent)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        consumer: str,
        notify_outbox: Callable[[], None] = lambda: None,
    ) -> None:
        self._sessions = sessions
        self.consumer = consumer
        self._notify_outbox = notify_outbox
        self.rejections: list[Rejection] = []
        self._claimed: set[str] = set()
        self._outgoing: list[tuple[str, str, Message]] = []
        self._session: AsyncSession | None = None
        self._transaction: AsyncSessionTransaction | None = None

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("use ConsumerUnitOfWork in `async with`")
        return self._session

    async def __aenter__(self) -> ConsumerUnitOfWork:
        self._session = self._sessions()
        self._transaction = await self._session.begin()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._session is not None and self._transaction is not None
        try:
            if kind is None:
                await self._finish()
                await self._transaction.commit()
            else:
                await self._transaction.rollback()
        finally:
            await self._session.close()
        if kind is None:
            self._notify_outbox()

    async def claim(self, items: Sequence[Item]) -> list[Item]:
        """The items not handled before, in order, each event id once (a repeat is a redelivery).

        Ids are claimed in sorted order, so that batches sharing ids wait for each other, never deadlock.
        """
        claimed = await claim_events(self.session, self.consumer, sorted({item.event_id for item in items}))
        self._claimed |= claimed
        return first_claimed(items, claimed, lambda item: item.event_id)

    def reject(self, item: Inbound[Any], reason: str, detail: str) -> None:
        """Refuse an item for good: its record goes to the DLQ with `reason`."""
        self.rejections.append(Rejection(item, reason, detail))

    def send(self, messages: Iterable[tuple[str, str, Message]]) -> None:
        """Queue (topic, key, message) triples in the outbox; they are committed with the state change."""
        self._outgoing.extend(messages)

    async def _finish(self) -> None:
        rejected = {r.item.event_id for r in self.rejections} & self._claimed
        await release_claims(self.session, self.consumer, rejected)
        await enqueue_all(self.session, self._outgoing)
