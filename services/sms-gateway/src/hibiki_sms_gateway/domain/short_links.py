"""Tracked short links: a per-message token that redirects to the box URL and counts the recipient's opens."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime

# secrets.token_urlsafe(8) is 11 characters: 64 random bits, too many to guess a live link.
TOKEN_BYTES = 8
TOKEN_LENGTH = 11
SHORT_LINK_PATH = "/s/"
# Messenger and social link-preview fetchers, crawlers and HTTP libraries: they open a link without a person.
_PREVIEW_AGENTS = re.compile(
    r"bot|crawl|spider|preview|facebookexternalhit|embedly|slack|discord|whatsapp|telegram|skypeuri|"
    r"line-poker|bitlybot|vkshare|pinterest|quora link|outbrain|google-inspectiontool|headless|"
    r"python-requests|aiohttp|curl|wget|go-http-client|okhttp|java/|libwww|httpclient",
    re.IGNORECASE,
)


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def short_link_url(base_url: str, token: str) -> str:
    """The link as the recipient sees it, e.g. https://s.example.jp/s/AbCdEfGhIjK."""
    return base_url.rstrip("/") + SHORT_LINK_PATH + token


def sample_short_link(base_url: str) -> str:
    """A link of the exact length every real one has, for previews and length checks."""
    return short_link_url(base_url, "X" * TOKEN_LENGTH)


def is_link_preview(method: str, user_agent: str) -> bool:
    """True when no person is opening the link: a HEAD request, no user agent, or a known fetcher."""
    return method.upper() == "HEAD" or not user_agent.strip() or bool(_PREVIEW_AGENTS.search(user_agent))


@dataclass(frozen=True)
class ShortLink:
    token: str
    request_id: str
    tenant_id: str
    target_url: str
    short_url: str
    created_at: datetime
    expires_at: datetime
    clicks: int = 0

    def is_live(self, now: datetime) -> bool:
        return now < self.expires_at
