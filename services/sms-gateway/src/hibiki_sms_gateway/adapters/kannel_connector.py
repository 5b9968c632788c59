"""HTTP aggregator connector speaking Kannel's sendsms interface (also offered by many SMS aggregators).

Each part goes out as one request with coding=2 (UCS-2, text in UTF-16BE) and its concatenation header in
`udh`, so the aggregator sends exactly our parts. Kannel returns no message id, so the connector makes one
and puts it into `dlr-url`; the delivery report comes back to the receipt route with that id.
"""

from __future__ import annotations

import uuid
from urllib.parse import quote, quote_from_bytes

import aiohttp
from yarl import URL

from hibiki_sms_gateway.domain.concatenation import UDHI_FLAG, Part
from hibiki_sms_gateway.domain.submission import (
    OnWire,
    PermanentSubmitError,
    TemporarySubmitError,
    Throttled,
    UncertainSubmitError,
)

# Kannel dlr-mask bits: 1 delivered, 2 undelivered, 16 rejected by the SMSC (intermediate states not asked).
DLR_MASK = 1 | 2 | 16
DLR_STATES = {1: "DELIVRD", 2: "UNDELIV", 16: "REJECTD"}


# The message ids are this service's own (uuid), unique whatever the aggregator.
KANNEL = "kannel"


class KannelConnector:
    def __init__(
        self,
        *,
        sendsms_url: str,
        username: str,
        password: str,
        source_addr: str,
        receipt_url: str,
        timeout: float = 10.0,
    ) -> None:
        self.name = KANNEL
        self._sendsms_url = sendsms_url
        self._credentials = {"username": username, "password": password}
        self._source_addr = source_addr
        self._receipt_url = receipt_url
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(timeout=self._timeout)

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()

    def _query(self, destination_e164: str, part: Part, message_id: str) -> str:
        header, payload = b"", part.short_message
        if part.esm_class & UDHI_FLAG:
            length = part.short_message[0] + 1
            header, payload = part.short_message[:length], part.short_message[length:]
        # The receipt URL carries Kannel's %d placeholder (the report type) and must reach Kannel unexpanded.
        receipt = f"{self._receipt_url}{'&' if '?' in self._receipt_url else '?'}id={message_id}&type=%d"
        fields = {
            **self._credentials,
            "from": self._source_addr,
            "to": destination_e164,
            "coding": "2",
            "charset": "UTF-16BE",
            "dlr-mask": str(DLR_MASK),
            "dlr-url": receipt,
        }
        query = "&".join(f"{name}={quote(value, safe='')}" for name, value in fields.items())
        query += f"&text={quote_from_bytes(payload, safe='')}"
        if header:
            query += f"&udh={quote_from_bytes(header, safe='')}"
        return query

    async def submit(self, destination_e164: str, part: Part, on_wire: OnWire = None) -> str:
        """Send one part; its generated message id, or a Temporary/Permanent/Uncertain SubmitError."""
        if self._http is None:
            raise TemporarySubmitError("not_started", "the HTTP connector has not been started")
        if on_wire is not None:
            on_wire()
        message_id = uuid.uuid4().hex
        url = f"{self._sendsms_url}?{self._query(destination_e164, part, message_id)}"
        try:
            async with self._http.get(URL(url, encoded=True)) as reply:
                body = (await reply.text()).strip()
                status = reply.status
        except aiohttp.ClientConnectorError as error:
            raise TemporarySubmitError("connect_failed", str(error)) from error
        except (aiohttp.ClientError, TimeoutError) as error:
            raise UncertainSubmitError("http_no_answer", type(error).__name__) from error
        if status == 202 or (status == 200 and body.startswith(("0:", "3:"))):
            return message_id
        if status == 429:
            raise Throttled("throttled", body[:200])
        if status >= 500:
            raise TemporarySubmitError("aggregator_busy", f"HTTP {status}: {body[:200]}")
        raise PermanentSubmitError("aggregator_rejected", f"HTTP {status}: {body[:200]}")
