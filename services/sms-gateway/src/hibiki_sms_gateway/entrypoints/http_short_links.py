"""GET /s/{token}: the redirect of a tracked short link, with a friendly page for unknown or expired links."""

from __future__ import annotations

from aiohttp import web

from hibiki_sms_gateway.domain.short_links import SHORT_LINK_PATH, is_link_preview
from hibiki_sms_gateway.service_layer.short_links import ShortLinkService

NOT_FOUND_PAGE = """<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="robots" content="noindex"><title>ページが見つかりません</title></head>
<body><h1>ページが見つかりません</h1>
<p>このリンクは有効期限が切れているか、正しくありません。</p>
<p>お手数ですが、もう一度お電話いただくか、SMSの送信元にお問い合わせください。</p></body></html>
"""


def short_link_routes(links: ShortLinkService) -> list[web.RouteDef]:
    """Public (no token): the link itself is the credential. aiohttp answers HEAD through the same handler."""

    async def open_link(request: web.Request) -> web.StreamResponse:
        by_person = not is_link_preview(request.method, request.headers.get("User-Agent", ""))
        target = await links.open(request.match_info["token"], by_person=by_person)
        if target is None:
            return web.Response(status=404, text=NOT_FOUND_PAGE, content_type="text/html", charset="utf-8")
        # Not cached: every open must reach us to be counted.
        raise web.HTTPFound(target, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})

    return [web.get(SHORT_LINK_PATH + "{token}", open_link)]
