"""Opening a tracked short link: the redirect target, and a SmsLinkClicked result for each person's open."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hibiki_runtime.outbox import enqueue_all
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hibiki_sms_gateway.adapters import results
from hibiki_sms_gateway.adapters.metrics import SmsMetrics
from hibiki_sms_gateway.adapters.short_link_repository import ShortLinkRepository
from hibiki_sms_gateway.domain.short_links import ShortLink, new_token, short_link_url

_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,32}")


@dataclass(frozen=True)
class ShortLinkPolicy:
    """Where short links point (the public base URL of GET /s/{token}) and how long they live."""

    base_url: str
    lifetime: timedelta = timedelta(days=90)

    def new_link(self, request_id: str, tenant_id: str, target_url: str, now: datetime) -> ShortLink:
        token = new_token()
        return ShortLink(
            token,
            request_id,
            tenant_id,
            target_url,
            short_link_url(self.base_url, token),
            now,
            now + self.lifetime,
        )


class ShortLinkService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        metrics: SmsMetrics,
        notify: Callable[[], None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._metrics = metrics
        self._notify = notify
        self._clock = clock

    async def open(self, token: str, *, by_person: bool) -> str | None:
        """The URL to redirect to, or None for an unknown or expired link; a person's open is counted."""
        if not _TOKEN.fullmatch(token):
            self._metrics.link_opens.labels("unknown").inc()
            return None
        now = self._clock()
        async with self._sessions.begin() as session:
            links = ShortLinkRepository(session)
            link = await links.get(token)
            if link is None or not link.is_live(now):
                self._metrics.link_opens.labels("unknown").inc()
                return None
            if by_person:
                clicks = await links.count_click(token)
                await enqueue_all(session, [results.link_clicked(link, clicks, now)])
        self._metrics.link_opens.labels("click" if by_person else "preview").inc()
        if by_person:
            self._notify()
        return link.target_url
