"""Delivery receipts over a receiving SMPP session (smpplib), acknowledged to the SMSC only once stored.

smpp34 acknowledges every deliver_sm in its native core before Python sees it, so a receipt in flight dies
with the process. smpplib answers a deliver_sm after its handler returns, with the handler's status: the
handler waits for `on_receipt` (which commits the receipt) on the event loop and answers ESME_ROK only then,
a temporary error otherwise, so that the SMSC keeps the receipt and sends it again. A receipt that was stored
but whose answer was lost comes back once more; storing it again is a no-op.

smpplib is blocking, so the session runs in a thread of its own. It binds as a transceiver and submits
nothing: smpp34's server (the SMSC simulator) answers a deliver_sm_resp on a receiver bind with generic_nack.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import smpplib.client
import smpplib.consts
from tenacity import RetryCallState, RetryError, Retrying, wait_exponential_jitter

from hibiki_sms_gateway.domain.receipts import Receipt, parse_receipt

log = logging.getLogger("hibiki.sms.smpp")

ReceiptSink = Callable[[Receipt], Coroutine[Any, Any, None]]
RECEIPT_FLAG = 0x04  # esm_class: SMSC delivery receipt
_STORED: int = smpplib.consts.SMPP_ESME_ROK
# "ESME received temporary application error": the SMSC keeps the receipt and retries it.
_NOT_STORED: int = smpplib.consts.SMPP_ESME_RX_T_APPN


@dataclass(frozen=True)
class SmppAccount:
    """Where and as whom both SMPP sessions (submitting and receiving) bind."""

    host: str
    port: int
    system_id: str
    password: str = field(default="", repr=False)


def receipt_of_deliver_sm(short_message: bytes, receipted_message_id: str | None) -> Receipt | None:
    """The receipt a deliver_sm carries; the receipted_message_id TLV names the part better than the text."""
    receipt = parse_receipt(short_message.decode("latin-1"))
    if receipt is not None and receipted_message_id:
        return Receipt(receipted_message_id, receipt.state, receipt.error_code)
    return receipt


class SmppReceiver:
    """Binds to one SMSC for its deliver_sm and hands each receipt to `on_receipt` before answering."""

    def __init__(
        self,
        account: SmppAccount,
        *,
        on_receipt: ReceiptSink,
        store_timeout: float = 10.0,
        idle_timeout: float = 5.0,
    ) -> None:
        self._account = account
        self._on_receipt = on_receipt
        self._store_timeout = store_timeout
        self._idle_timeout = idle_timeout  # smpplib sends enquire_link after this long without a PDU
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._bound = threading.Event()
        self._lock = threading.Lock()
        self._client: smpplib.client.Client | None = None

    @property
    def bound(self) -> bool:
        return self._bound.is_set()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._keep_bound, name="smpp-receiver", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """End the session; a receipt being stored is stored but left unanswered: the SMSC sends it again."""
        self._stopping.set()
        self._interrupt()
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join, self._store_timeout + self._idle_timeout)
            if thread.is_alive():
                log.warning("SMPP receiver thread did not end; left behind as a daemon")

    # -- the receiver thread -------------------------------------------------------------------------
    def _keep_bound(self) -> None:
        while not self._stopping.is_set():
            client = self._bind_with_retries()
            if client is None:
                return
            try:
                while not self._stopping.is_set():
                    client.read_once()  # answers deliver_sm through _answer, enquire_link when idle
            except Exception as error:
                if not self._stopping.is_set():
                    log.warning("SMPP receiving session to %s:%d ended (%r); binding again", *self._at, error)
            finally:
                self._close(client)

    def _bind_with_retries(self) -> smpplib.client.Client | None:
        retrying = Retrying(
            wait=wait_exponential_jitter(multiplier=0.2, max=10.0, jitter=0.2),
            stop=lambda _state: self._stopping.is_set(),
            sleep=self._pause,
            before_sleep=self._log_bind_failure,
        )
        try:
            return retrying(self._bind)
        except RetryError:
            return None  # stopped before a bind succeeded

    def _bind(self) -> smpplib.client.Client:
        client = smpplib.client.Client(
            self._account.host,
            self._account.port,
            timeout=self._idle_timeout,
            logger_name="hibiki.sms.smpp.smpplib",
            allow_unknown_opt_params=True,
        )
        client.set_message_received_handler(self._answer)
        with self._lock:
            self._client = client
        try:
            client.connect()
            client.bind_transceiver(system_id=self._account.system_id, password=self._account.password)
        except BaseException:
            self._close(client)
            raise
        self._bound.set()
        log.info("SMPP receiving session bound to %s:%d", *self._at)
        return client

    def _answer(self, pdu: Any, **_: Any) -> int:
        """The deliver_sm_resp status: ESME_ROK once the receipt is stored, a temporary error otherwise."""
        if not (pdu.esm_class or 0) & RECEIPT_FLAG:
            return _STORED  # a mobile-originated message: this service takes none
        tlv_id = pdu.receipted_message_id
        receipt = receipt_of_deliver_sm(
            pdu.short_message or b"", tlv_id.decode("latin-1") if isinstance(tlv_id, bytes) else tlv_id
        )
        if receipt is None:
            log.warning("unreadable delivery receipt acknowledged and ignored: %r", pdu.short_message)
            return _STORED  # sent again, it would be just as unreadable
        if self._loop is None or self._loop.is_closed():
            return _NOT_STORED
        future = asyncio.run_coroutine_threadsafe(self._on_receipt(receipt), self._loop)
        try:
            future.result(self._store_timeout)
        except Exception:
            future.cancel()
            log.warning("delivery receipt %s not stored; the SMSC will send it again", receipt, exc_info=True)
            return _NOT_STORED
        return _STORED

    def _interrupt(self) -> None:
        """Wake the thread out of a blocking read (from the event loop's thread)."""
        with self._lock:
            sock = self._client._socket if self._client is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _close(self, client: smpplib.client.Client) -> None:
        self._bound.clear()
        with self._lock:
            if self._client is client:
                self._client = None
        if self._stopping.is_set():
            # Leaving without unbind on purpose (the SMSC sends again what is unanswered): spare smpplib's
            # "disconnecting in the bound state" warning, kept for sessions that break.
            client.state = smpplib.consts.SMPP_CLIENT_STATE_OPEN
        with contextlib.suppress(Exception):
            client.disconnect()

    def _pause(self, seconds: float) -> None:
        self._stopping.wait(seconds)  # returns at once when stopping

    def _log_bind_failure(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("SMPP receiving bind to %s:%d failed (%s); retrying", *self._at, error)

    @property
    def _at(self) -> tuple[str, int]:
        return self._account.host, self._account.port
