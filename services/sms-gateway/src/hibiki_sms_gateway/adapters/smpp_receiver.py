"""Delivery receipts over a receiving SMPP session, stored in group commits and acknowledged only once stored.

An asyncio session of its own (PDUs read with smpp34's codec and written with smpplib's; the SMSC's window
of deliver_sm in flight at once):
the reader answers enquire_link and unbind at once and queues each receipt; the committer takes every
receipt queued so far (up to `group_max`), hands them to `on_receipts` (one transaction) and only then
answers their deliver_sm with ESME_ROK — or with a temporary error, so that the SMSC keeps them and sends
them again. A receipt that was stored but whose answer was lost comes back once more; storing it again is a
no-op. The session sends enquire_link when idle and treats a link that does not answer as dead: it binds
again.

smpp34, which submits, acknowledges a deliver_sm before Python sees it, so receipts never ride its session.
The session binds as a transceiver and submits nothing: smpp34's server (the SMSC simulator) answers a
deliver_sm_resp on a receiver bind with generic_nack.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import smpp34
import smpplib.consts
import smpplib.smpp
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from hibiki_sms_gateway.domain.receipts import Receipt, parse_receipt

log = logging.getLogger("hibiki.sms.smpp")

ReceiptsSink = Callable[[Sequence[Receipt]], Coroutine[Any, Any, None]]
RECEIPT_FLAG = 0x04  # esm_class: SMSC delivery receipt
_STORED: int = smpplib.consts.SMPP_ESME_ROK
# "ESME received temporary application error": the SMSC keeps the receipt and retries it.
_NOT_STORED: int = smpplib.consts.SMPP_ESME_RX_T_APPN
_INVALID_COMMAND: int = smpplib.consts.SMPP_ESME_RINVCMDID
_RECEIPTED_MESSAGE_ID: int = smpp34.TLV_RECEIPTED_MESSAGE_ID  # type: ignore[attr-defined]
# SMPP 3.4 command ids (section 5.1.2.1) of the PDUs this session reads.
_BIND_TRANSCEIVER_RESP = 0x80000009
_ENQUIRE_LINK = 0x00000015
_UNBIND = 0x00000006
_GENERIC_NACK = 0x80000000
_HEADER = struct.Struct(">LLLL")
_MAX_PDU = 64 * 1024


@dataclass(frozen=True)
class SmppAccount:
    """Where and as whom both SMPP sessions (submitting and receiving) bind."""

    host: str
    port: int
    system_id: str
    password: str = field(default="", repr=False)

    @property
    def connector(self) -> str:
        """The name receipts and parts of this account are kept under (SMSCs number messages per account)."""
        return f"smpp:{self.system_id}@{self.host}:{self.port}"


def receipt_of_deliver_sm(
    short_message: bytes, receipted_message_id: str | None, source_addr: str = ""
) -> Receipt | None:
    """The receipt a deliver_sm carries; the receipted_message_id TLV names the part better than the text.

    The deliver_sm comes from the handset's number (source_addr): the recipient of the message it reports.
    """
    receipt = parse_receipt(short_message.decode("latin-1"), recipient=source_addr)
    if receipt is not None and receipted_message_id:
        return Receipt(
            receipted_message_id.rstrip("\0"),
            receipt.state,
            receipt.error_code,
            receipt.recipient,
            receipt.submit_date,
        )
    return receipt


class DeadLink(Exception):
    """The SMSC stopped answering (no enquire_link_resp within the timeout)."""


class _Sequence:
    """Sequence numbers for smpplib's PDU codec (its `client` argument)."""

    def __init__(self) -> None:
        self.sequence = 0

    def next_sequence(self) -> int:
        self.sequence = self.sequence % 0x7FFFFFFF + 1
        return self.sequence


class SmppReceiver:
    """Binds to one SMSC for its deliver_sm; stores receipts in groups and answers each once stored."""

    def __init__(
        self,
        account: SmppAccount,
        *,
        on_receipts: ReceiptsSink,
        group_max: int = 500,
        enquire_interval: float = 10.0,
        response_timeout: float = 10.0,
        store_timeout: float = 10.0,
    ) -> None:
        self._account = account
        self._on_receipts = on_receipts
        self._group_max = group_max
        self._enquire_interval = enquire_interval
        self._response_timeout = response_timeout
        self._store_timeout = store_timeout
        self._task: asyncio.Task[None] | None = None
        self._bound = asyncio.Event()
        self._sequence = _Sequence()

    @property
    def bound(self) -> bool:
        return self._bound.is_set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._keep_bound(), name="smpp-receiver")

    async def stop(self) -> None:
        """End the session; receipts not yet stored stay unanswered: the SMSC sends them again."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _keep_bound(self) -> None:
        while True:
            async for attempt in AsyncRetrying(
                wait=wait_exponential_jitter(multiplier=0.2, max=10.0, jitter=0.2),
                retry=retry_if_exception_type(Exception),
                before_sleep=self._log_bind_failure,
            ):
                with attempt:
                    reader, writer = await self._bind()
            try:
                await _Session(self, reader, writer).run()
            except (OSError, EOFError, DeadLink, asyncio.IncompleteReadError) as error:
                log.warning("SMPP receiving session to %s:%d ended (%r); binding again", *self._at, error)
            finally:
                self._bound.clear()
                writer.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.wait_closed(), 2.0)

    async def _bind(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self._account.host, self._account.port), self._response_timeout
        )
        try:
            bind = smpplib.smpp.make_pdu(
                "bind_transceiver",
                client=self._sequence,
                system_id=self._account.system_id,
                password=self._account.password,
            )
            writer.write(bind.generate())
            await writer.drain()
            _, command, response = await asyncio.wait_for(_read_pdu(reader), self._response_timeout)
            if command != _BIND_TRANSCEIVER_RESP or response is None or response.command_status != _STORED:
                status = "unreadable" if response is None else f"status {response.command_status}"
                raise ConnectionRefusedError(f"bind refused: command 0x{command:08x}, {status}")
        except BaseException:
            writer.close()
            raise
        self._bound.set()
        log.info("SMPP receiving session bound to %s:%d", *self._at)
        return reader, writer

    def _log_bind_failure(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("SMPP receiving bind to %s:%d failed (%s); retrying", *self._at, error)

    @property
    def _at(self) -> tuple[str, int]:
        return self._account.host, self._account.port


class _Session:
    """One bound session: reader, committer and link keeper, ended together by the first that stops."""

    def __init__(self, receiver: SmppReceiver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self._receiver = receiver
        self._reader = reader
        self._writer = writer
        self._queue: asyncio.Queue[tuple[Receipt, int]] = asyncio.Queue()
        self._answered = asyncio.Event()  # any PDU from the SMSC since the last enquire_link

    async def run(self) -> None:
        tasks = [
            asyncio.create_task(self._read(), name="smpp-receiver-read"),
            asyncio.create_task(self._commit(), name="smpp-receiver-commit"),
            asyncio.create_task(self._keep_alive(), name="smpp-receiver-enquire"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # raises what ended the session
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _read(self) -> None:
        while True:
            number, command, pdu = await _read_pdu(self._reader)
            self._answered.set()
            if pdu is None:
                self._send_response("generic_nack", number, _INVALID_COMMAND)
            elif isinstance(pdu, smpp34.DeliverSm):
                receipt = self._receipt_of(pdu)
                if receipt is None:  # a mobile-originated message or an unreadable receipt: nothing to keep
                    self._send_response("deliver_sm_resp", number, _STORED)
                else:
                    self._queue.put_nowait((receipt, number))
            elif command == _ENQUIRE_LINK:
                self._send_response("enquire_link_resp", number, _STORED)
            elif command == _UNBIND:
                self._send_response("unbind_resp", number, _STORED)
                await self._writer.drain()
                raise EOFError("the SMSC unbound")
            elif command == _GENERIC_NACK:
                log.warning("SMSC answered generic_nack (status 0x%08x)", pdu.command_status)

    def _receipt_of(self, pdu: smpp34.DeliverSm) -> Receipt | None:
        if not pdu.esm_class & RECEIPT_FLAG:
            return None
        receipted = next((t for t in pdu.tlvs if t.tag == _RECEIPTED_MESSAGE_ID), None)
        receipt = receipt_of_deliver_sm(
            pdu.short_message, receipted.as_string() if receipted else None, pdu.source_addr
        )
        if receipt is None:
            log.warning("unreadable delivery receipt acknowledged and ignored: %r", pdu.short_message)
        return receipt

    async def _commit(self) -> None:
        """Group commit: every receipt queued meanwhile goes into one transaction, then all are answered."""
        receiver = self._receiver
        while True:
            group = [await self._queue.get()]
            await asyncio.sleep(0)  # let the reader queue what already arrived
            while len(group) < receiver._group_max and not self._queue.empty():
                group.append(self._queue.get_nowait())
            try:
                await asyncio.wait_for(receiver._on_receipts([r for r, _ in group]), receiver._store_timeout)
            except Exception:
                log.warning(
                    "%d delivery receipts not stored; the SMSC will send them again",
                    len(group),
                    exc_info=True,
                )
                status = _NOT_STORED
            else:
                status = _STORED
            for _, sequence in group:
                self._send_response("deliver_sm_resp", sequence, status)
            await self._writer.drain()

    async def _keep_alive(self) -> None:
        receiver = self._receiver
        while True:
            self._answered.clear()
            try:
                await asyncio.wait_for(self._answered.wait(), receiver._enquire_interval)
                continue  # traffic: the link is alive
            except TimeoutError:
                pass
            enquire = smpplib.smpp.make_pdu("enquire_link", client=receiver._sequence)
            self._writer.write(enquire.generate())
            await self._writer.drain()
            try:
                await asyncio.wait_for(self._answered.wait(), receiver._response_timeout)
            except TimeoutError as error:
                raise DeadLink(f"no answer to enquire_link within {receiver._response_timeout}s") from error

    def _send_response(self, command: str, sequence: int, status: int) -> None:
        response = smpplib.smpp.make_pdu(command, client=self._receiver._sequence, status=status)
        response.sequence = sequence
        self._writer.write(response.generate())


async def _read_pdu(reader: asyncio.StreamReader) -> tuple[int, int, Any]:
    """(sequence number, command id, PDU) of the next PDU, decoded by smpp34 (a DeliverSm, or a RawPdu for
    the others); the PDU is None when it cannot be read (answer generic_nack)."""
    header = await reader.readexactly(_HEADER.size)
    length, command, _status, number = _HEADER.unpack(header)
    if not _HEADER.size <= length <= _MAX_PDU:
        raise EOFError(f"PDU length {length} is not SMPP")  # the stream cannot be followed any further
    data = header + await reader.readexactly(length - _HEADER.size)
    try:
        return number, command, smpp34.decode(data)
    except smpp34.SmppError:
        log.warning("unreadable SMPP PDU (%d bytes) answered with generic_nack", length, exc_info=True)
        return number, command, None
