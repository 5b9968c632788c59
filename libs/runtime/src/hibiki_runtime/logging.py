"""JSON structured logs in which phone numbers never appear in full."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

from pythonjsonlogger.json import JsonFormatter

# Japanese numbers (0X0-XXXX-XXXX, 03-1234-5678, …) and E.164 (+81…): 9 to 15 digits, separators allowed.
_PHONE = re.compile(r"(?<![\w])(\+?\d[\d\- ]{7,16}\d)(?![\w])")


def mask_phone_numbers(text: str) -> str:
    """Replace every phone-number-like run with a mask that keeps only its last two digits."""

    def _mask(match: re.Match[str]) -> str:
        raw = match.group(1)
        digits = re.sub(r"\D", "", raw)
        if not 9 <= len(digits) <= 15:
            return raw
        return ("+" if raw.startswith("+") else "") + "*" * (len(digits) - 2) + digits[-2:]

    return _PHONE.sub(_mask, text)


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


def log_extra(**fields: Any) -> dict[str, Any]:
    """Structured fields for a log call: `log.info("sent", extra=log_extra(call_id=...))`."""
    return fields
