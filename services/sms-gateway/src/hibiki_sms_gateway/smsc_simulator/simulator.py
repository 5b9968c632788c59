"""A real SMPP 3.4 server (smpp34) that plays carriers: accepts, throttles, rejects, stalls, drops, and sends
delivery receipts after a delay, per number range. It reassembles concatenated messages for inspection.

As a real SMSC does, it keeps each receipt until a receiving session (receiver or transceiver) of the
system_id that submitted the message acknowledges it, and sends it again after a pause while none is bound,
when the send fails, or when the answer is an error status."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections import Counter, defaultdict
from collections.abc import Coroutine
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import smpp34

from hibiki_sms_gateway.domain.concatenation import read_part
from hibiki_sms_gateway.smsc_simulator.scenario import Behaviour, Rule, Scenario

log = logging.getLogger("hibiki.smsc_simulator")
_RECEIPT_ESM_CLASS = 0x04
# Re-exported by smpp34 at import time, so type checkers cannot see them.
_INVALID_DESTINATION: int = smpp34.ESME_RINVDSTADR  # type: ignore[attr-defined]
_THROTTLED: int = smpp34.ESME_RTHROTTLED  # type: ignore[attr-defined]
_RECEIPTED_MESSAGE_ID: int = smpp34.TLV_RECEIPTED_MESSAGE_ID  # type: ignore[attr-defined]
_RECEIPT_STATE = {Behaviour.UNDELIVER: "UNDELIV", Behaviour.EXPIRE: "EXPIRED"}
_RETRY_INITIAL_SECONDS, _RETRY_MAX_SECONDS = 0.1, 1.0
_RECEIPT_WINDOW = 10  # deliver_sm awaiting an answer per session


@dataclass
class ReceivedMessage:
    """A message as the handset would show it, with the parts that made it up in arrival order."""

    destination: str
    text: str
    part_numbers: list[int]
    message_ids: list[str]


@dataclass(frozen=True)
class _Receipt:
    """A delivery receipt owed to the sessions of `system_id`."""

    system_id: str
    source: str
    destination: str
    message_id: str
    text: bytes


@dataclass
class _Assembly:
    parts: dict[int, str] = field(default_factory=dict)
    message_ids: dict[int, str] = field(default_factory=dict)
    arrival: list[int] = field(default_factory=list)


class SmscSimulator:
    def __init__(
        self, scenario: Scenario, host: str = "127.0.0.1", port: int = 2775, record: Path | None = None
    ) -> None:
        self.scenario = scenario
        self._record = record
        self.host, self.port = host, port
        self.messages: list[ReceivedMessage] = []
        self.submits: Counter[str] = Counter()  # submit_sm PDUs received per destination (throttled ones too)
        self._server = smpp34.Server(host, port, system_id="HIBIKI-SIM")
        self._sessions: dict[str, smpp34.Esme] = {}
        self._windows: dict[str, asyncio.Semaphore] = {}
        self._pending: dict[str, _Receipt] = {}  # by message id: sent receipts not yet acknowledged
        self._turns = itertools.count()  # spreads receipts over the receiving sessions
        self._assemblies: dict[tuple[str, int], _Assembly] = defaultdict(_Assembly)
        self._throttled: Counter[str] = Counter()
        self._ids = itertools.count(1)
        self._stalled: list[smpp34.SubmitSmEvent] = []  # kept so that they are never answered
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None

    @property
    def pending_receipts(self) -> int:
        """Receipts owed but not yet acknowledged by a receiving session."""
        return len(self._pending)

    async def start(self) -> None:
        await self._server.start()
        self._loop = asyncio.create_task(self._serve(), name="smsc-simulator")
        log.info("SMSC simulator listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        tasks = [*self._tasks, *([self._loop] if self._loop else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.stop()

    async def _serve(self) -> None:
        while True:
            event = await self._server.next()
            if isinstance(event, smpp34.Esme):
                self._sessions[event.session_id] = event
                self._windows[event.session_id] = asyncio.Semaphore(_RECEIPT_WINDOW)
            elif isinstance(event, smpp34.Unbound):
                self._sessions.pop(event.session_id, None)
                self._windows.pop(event.session_id, None)
            elif isinstance(event, smpp34.SubmitSmEvent):
                try:
                    await self._on_submit(event)
                except Exception:
                    # A client sending something odd (e.g. not UCS-2) must not stop the simulator.
                    log.exception("submit_sm could not be handled")

    async def _on_submit(self, event: smpp34.SubmitSmEvent) -> None:
        destination = "+" + event.destination_addr.lstrip("+")
        self.submits[destination] += 1
        rule = self.scenario.rule_for(destination)
        if rule.behaviour == Behaviour.STALL:
            self._stalled.append(event)
            return
        if rule.behaviour == Behaviour.DROP:
            session = self._sessions.pop(event.session_id, None)
            if session is not None:
                await session.unbind()
            return
        if rule.behaviour == Behaviour.REJECT:
            event.reject(_INVALID_DESTINATION)
            return
        if rule.behaviour == Behaviour.THROTTLE and self._throttled[destination] < rule.throttle:
            self._throttled[destination] += 1
            event.reject(_THROTTLED)
            return
        message_id = f"sim{next(self._ids):08d}"
        event.accept(message_id)
        self._assemble(destination, event, message_id)
        if rule.behaviour != Behaviour.ACCEPT:
            session = self._sessions.get(event.session_id)
            receipt = _Receipt(
                session.system_id if session else "",
                event.source_addr,
                destination,
                message_id,
                _receipt_text(message_id, rule),
            )
            self._pending[message_id] = receipt
            self._spawn(self._send_receipt(receipt, rule.delay))

    def _assemble(self, destination: str, event: smpp34.SubmitSmEvent, message_id: str) -> None:
        part = read_part(event.short_message, event.esm_class)
        if part.reference is None:
            self._received(ReceivedMessage(destination, part.text, [1], [message_id]))
            return
        key = (destination, part.reference)
        assembly = self._assemblies[key]
        assembly.parts[part.number] = part.text
        assembly.message_ids[part.number] = message_id
        assembly.arrival.append(part.number)
        if len(assembly.parts) == part.total:
            del self._assemblies[key]
            numbers = sorted(assembly.parts)
            text = "".join(assembly.parts[n] for n in numbers)
            ids = [assembly.message_ids[n] for n in numbers]
            self._received(ReceivedMessage(destination, text, assembly.arrival, ids))

    def _received(self, message: ReceivedMessage) -> None:
        self.messages.append(message)
        if self._record is not None:
            with self._record.open("a", encoding="utf-8") as record:
                record.write(json.dumps(asdict(message), ensure_ascii=False) + "\n")

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_receipt(self, receipt: _Receipt, delay: float) -> None:
        await asyncio.sleep(delay)
        pause = _RETRY_INITIAL_SECONDS
        while not await self._deliver(receipt):
            await asyncio.sleep(pause)
            pause = min(pause * 2, _RETRY_MAX_SECONDS)
        del self._pending[receipt.message_id]

    async def _deliver(self, receipt: _Receipt) -> bool:
        """Send the receipt to a receiving session of its system_id; True once that session acknowledged it.

        smpp34 turns a session that ended, or no answer within its 30 s, into an SmppError.
        """
        receivers = [
            session
            for session in self._sessions.values()
            if session.can_receive and session.system_id == receipt.system_id
        ]
        if not receivers:
            return False
        session = receivers[next(self._turns) % len(receivers)]
        window = self._windows.get(session.session_id)
        if window is None:
            return False  # the session ended meanwhile
        async with window:
            try:
                response = await session.deliver_sm(
                    destination_addr=receipt.source or "HIBIKI",
                    source_addr=receipt.destination.lstrip("+"),
                    esm_class=_RECEIPT_ESM_CLASS,
                    short_message=receipt.text,
                    tlvs=[smpp34.Tlv(_RECEIPTED_MESSAGE_ID, receipt.message_id.encode("ascii") + b"\0")],
                )
            except smpp34.SmppError as error:
                log.debug("receipt for %s not delivered (%s); sending it again", receipt.message_id, error)
                return False
        if not response.is_success:
            log.debug("receipt for %s refused (0x%08x)", receipt.message_id, response.command_status)
        return response.is_success


def _receipt_text(message_id: str, rule: Rule) -> bytes:
    """SMPP 3.4 appendix B receipt text for the rule's final state."""
    state = _RECEIPT_STATE.get(rule.behaviour, "DELIVRD")
    error = "000" if state == "DELIVRD" else rule.error_code
    stamp = datetime.now(UTC).strftime("%y%m%d%H%M")
    return (
        f"id:{message_id} sub:001 dlvrd:{'001' if state == 'DELIVRD' else '000'} "
        f"submit date:{stamp} done date:{stamp} stat:{state} err:{error} text:"
    ).encode("ascii")
