"""JSON structured logs in which phone numbers never appear in full."""

from __future__ import annotations

import logging
import re
import sys
import unicodedata
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType

from pythonjsonlogger.json import JsonFormatter

from hibiki_runtime.phone import parse_phone

# Runs that may be a written phone number (ASCII or full-width digits, "+", hyphens and spaces inside);
# whether a run is one is decided by hibiki_runtime.phone, as everywhere else.
_CANDIDATE = re.compile(r"(?<![\w+＋])([+＋]?[0-9０-９](?:[0-9０-９\- ‐－ー]{6,20})[0-9０-９])(?![\w])")


def mask_phone_numbers(text: str) -> str:
    """Replace every phone number in `text` with a mask that keeps only its last two digits."""

    def _mask(match: re.Match[str]) -> str:
        raw = match.group(1)
        digits = unicodedata.normalize("NFKC", "".join(char for char in raw if char.isdigit()))
        # Fewer than 9 digits is never a Japanese number, and keeps dates such as 2026-11-25 readable.
        if len(digits) < 9 or parse_phone(raw) is None:
            return raw
        return ("+" if raw[0] in "+＋" else "") + "*" * (len(digits) - 2) + digits[-2:]

    return _CANDIDATE.sub(_mask, text)


class PhoneMaskingFilter(logging.Filter):
    """Masks phone numbers in the message and in string extras of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_phone_numbers(record.getMessage())
        record.args = None
        for key, value in list(record.__dict__.items()):
            if isinstance(value, str) and key not in _RESERVED:
                setattr(record, key, mask_phone_numbers(value))
        return True


_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def configure_logging(service: str, level: str = "INFO", json: bool = True) -> None:
    """Route all logging to stderr, as JSON lines (or plain text), with phone numbers masked."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(LogContextFilter())
    handler.addFilter(PhoneMaskingFilter())
    formatter: logging.Formatter
    if json:
        formatter = JsonFormatter(
            "{levelname}{name}{message}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            static_fields={"service": service},
            timestamp="time",  # ISO 8601 in UTC
        )
    else:
        formatter = logging.Formatter(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "faststream", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


_context: ContextVar[Mapping[str, str]] = ContextVar("hibiki_log_context", default=MappingProxyType({}))


@contextmanager
def log_context(**fields: str) -> Iterator[None]:
    """Add fields (call_id, event_id, trace_id, rpc, …) to every log record written inside the block."""
    token = _context.set({**_context.get(), **{name: value for name, value in fields.items() if value}})
    try:
        yield
    finally:
        _context.reset(token)


class LogContextFilter(logging.Filter):
    """Copies the current log_context fields onto each record, so JSON lines carry them."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _context.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def trace_id_of(traceparent: str) -> str:
    """The trace id of a W3C traceparent header ("" when absent or malformed)."""
    match = _TRACEPARENT.match(traceparent.strip().lower())
    return match.group(1) if match and match.group(1) != "0" * 32 else ""
