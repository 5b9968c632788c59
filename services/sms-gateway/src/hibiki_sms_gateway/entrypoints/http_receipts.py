"""HTTP route that receives delivery reports from the Kannel-style aggregator (its dlr-url)."""

from __future__ import annotations

import hmac

from aiohttp import web

from hibiki_sms_gateway.adapters.kannel_connector import DLR_STATES, KANNEL
from hibiki_sms_gateway.domain.receipts import Receipt
from hibiki_sms_gateway.service_layer.receipts import ReceiptBook

RECEIPT_PATH = "/sms/receipts/kannel"


def receipt_routes(receipts: ReceiptBook, token: str) -> list[web.RouteDef]:
    """GET /sms/receipts/kannel?token=…&id=…&type=…; the token is the secret shared with the aggregator."""

    async def receive(request: web.Request) -> web.Response:
        if not token or not hmac.compare_digest(request.query.get("token", ""), token):
            raise web.HTTPForbidden(text="unknown receipt token")
        message_id, kind = request.query.get("id", ""), request.query.get("type", "")
        if not message_id or not kind.isdigit():
            raise web.HTTPBadRequest(text="id and a numeric type are required")
        state = DLR_STATES.get(int(kind))
        if state is not None:  # intermediate reports (buffered, submitted) are acknowledged and ignored
            await receipts.record(KANNEL, [Receipt(message_id, state, "")])
        return web.Response(text="ok")

    return [web.get(RECEIPT_PATH, receive)]
