"""SMPP 3.4 connector: submits over a transmitter bind (smpp34), receives receipts over a second session.

smpp34 ignores `window_size`, panics on a short_message over 254 bytes and never reconnects, so this adapter
bounds the window with a semaphore, validates part sizes before calling, and binds a new Client after a drop.
The session answers enquire_link and sends its own on idle links (smpp34 runs the SMPP timers).

smpp34 acknowledges a deliver_sm before Python sees it, so receipts are not taken over its session (a
transmitter bind gets none): `SmppReceiver` binds a receiving session to the same SMSC and acknowledges each
receipt only after `on_receipts` has stored it (in group commits).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import smpp34
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from hibiki_sms_gateway.adapters.smpp_receiver import (
    RECEIPT_FLAG,
    ReceiptsSink,
    SmppAccount,
    SmppReceiver,
    receipt_of_deliver_sm,
)
from hibiki_sms_gateway.domain.concatenation import UCS2_DATA_CODING, Part
from hibiki_sms_gateway.domain.receipts import Receipt
from hibiki_sms_gateway.domain.submission import (
    OnWire,
    PermanentSubmitError,
    TemporarySubmitError,
    Throttled,
    UncertainSubmitError,
)

log = logging.getLogger("hibiki.sms.smpp")

_MAX_SHORT_MESSAGE = 254
_TON_INTERNATIONAL, _NPI_ISDN = 1, 1
_TON_ALPHANUMERIC, _NPI_UNKNOWN = 5, 0
_REGISTERED_DELIVERY_FINAL = 1
# Statuses that say "not now" rather than "never": retry after a pause.
_TEMPORARY = {smpp34.ESME_RMSGQFUL, smpp34.ESME_RSYSERR}  # type: ignore[attr-defined]
_THROTTLED = smpp34.ESME_RTHROTTLED  # type: ignore[attr-defined]


class SmppConnector:
    """Submits parts to one SMSC; feeds its delivery receipts to `on_receipts`, acknowledged once stored."""

    def __init__(
        self,
        account: SmppAccount,
        *,
        source_addr: str,
        on_receipts: ReceiptsSink,
        window: int = 10,
        submit_timeout: float = 10.0,
        bind_wait: float = 5.0,
    ) -> None:
        self._account = account
        self.name = account.connector
        self._source_addr = source_addr
        self._on_receipts = on_receipts
        self._window = asyncio.Semaphore(window)
        self._submit_timeout = submit_timeout
        self._bind_wait = bind_wait
        self._smsc: smpp34.Smsc | None = None
        self._client: smpp34.Client | None = None
        self._bound = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._receiver = SmppReceiver(account, on_receipts=on_receipts)

    @property
    def bound(self) -> bool:
        """Both sessions are bound: parts can be submitted and their receipts received."""
        return self._bound.is_set() and self._receiver.bound

    async def start(self) -> None:
        await self._receiver.start()
        self._task = asyncio.create_task(self._keep_bound(), name="smpp-connector")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._close()
        await self._receiver.stop()

    async def submit(self, destination_e164: str, part: Part, on_wire: OnWire = None) -> str:
        """Submit one part; the carrier message id, or a Temporary/Permanent/Uncertain SubmitError.

        `on_wire` is called once the part holds a place in the window, just before it is written.
        """
        if len(part.short_message) > _MAX_SHORT_MESSAGE:
            raise PermanentSubmitError(
                "part_too_long", f"{len(part.short_message)} bytes > {_MAX_SHORT_MESSAGE}"
            )
        if not self._bound.is_set():
            try:
                await asyncio.wait_for(self._bound.wait(), self._bind_wait)
            except TimeoutError as error:
                raise TemporarySubmitError(
                    "not_bound", f"no SMPP session to {self._account.host}:{self._account.port}"
                ) from error
        smsc = self._smsc
        if smsc is None:
            raise TemporarySubmitError("not_bound", "the SMPP session just ended")
        async with self._window:
            if on_wire is not None:
                on_wire()
            try:
                async with asyncio.timeout(self._submit_timeout):  # no task of its own, unlike wait_for
                    response = await smsc.submit_sm(
                        destination_e164.lstrip("+"),
                        part.short_message,
                        source_addr=self._source_addr,
                        source_addr_ton=_TON_ALPHANUMERIC,
                        source_addr_npi=_NPI_UNKNOWN,
                        dest_addr_ton=_TON_INTERNATIONAL,
                        dest_addr_npi=_NPI_ISDN,
                        esm_class=part.esm_class,
                        data_coding=UCS2_DATA_CODING,
                        registered_delivery=_REGISTERED_DELIVERY_FINAL,
                    )
            except TimeoutError as error:
                raise UncertainSubmitError(
                    "submit_timeout", f"no submit_sm_resp within {self._submit_timeout}s"
                ) from error
            except smpp34.SmppError as error:
                # The PDU may have left before the session broke: its fate is unknown.
                raise UncertainSubmitError("session_lost", str(error)) from error
        status = response.command_status
        if response.is_success and response.message_id:
            return response.message_id
        if status == _THROTTLED:
            raise Throttled("throttled", "ESME_RTHROTTLED")
        if status in _TEMPORARY:
            raise TemporarySubmitError("smsc_busy", f"command_status 0x{status:08x}")
        raise PermanentSubmitError("smsc_rejected", f"command_status 0x{status:08x}")

    async def _keep_bound(self) -> None:
        while True:
            async for attempt in AsyncRetrying(
                wait=wait_exponential_jitter(multiplier=0.2, max=10.0, jitter=0.2),
                retry=retry_if_exception_type(Exception),
                before_sleep=lambda state: log.warning(
                    "SMPP bind to %s:%d failed (%s); retrying",
                    self._account.host,
                    self._account.port,
                    state.outcome.exception() if state.outcome else "?",
                ),
            ):
                with attempt:
                    await self._bind()
            await self._read_until_disconnected()
            await self._close()
            log.warning("SMPP session to %s:%d ended; binding again", self._account.host, self._account.port)

    async def _bind(self) -> None:
        account = self._account
        client = smpp34.Client(
            account.host, account.port, account.system_id, account.password, bind_type="TX"
        )
        try:
            smsc = await client.connect()
        except BaseException:
            with contextlib.suppress(Exception):
                await client.stop()
            raise
        self._client, self._smsc = client, smsc
        self._bound.set()
        log.info("SMPP transmitter bound to %s:%d", self._account.host, self._account.port)

    async def _read_until_disconnected(self) -> None:
        smsc = self._smsc
        while smsc is not None:
            event = await smsc.next()
            if isinstance(event, smpp34.Disconnected):
                return
            # SMPP 3.4 sends no deliver_sm to a transmitter. Should an SMSC send one anyway, smpp34 has
            # acknowledged it already: store it on a best-effort basis rather than drop it.
            if not event.esm_class & RECEIPT_FLAG:
                continue
            receipt = _receipt_of(event)
            log.warning("delivery receipt %s arrived on the transmitter bind", receipt)
            if receipt is not None:
                try:
                    await self._on_receipts([receipt])
                except Exception:
                    log.exception("delivery receipt %s could not be stored", receipt.carrier_message_id)

    async def _close(self) -> None:
        self._bound.clear()
        self._smsc = None
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.stop(), 2.0)


def _receipt_of(event: smpp34.DeliverSmEvent) -> Receipt | None:
    tlvs = {tlv.tag: tlv for tlv in event.tlvs}
    receipted_id = tlvs.get(smpp34.TLV_RECEIPTED_MESSAGE_ID)  # type: ignore[attr-defined]
    return receipt_of_deliver_sm(
        event.short_message, receipted_id.as_string() if receipted_id else None, event.source_addr
    )
