"""No log line carries a secret: tokens, refresh tokens, passwords, cookies are redacted.

`install_redaction()` wraps the log record factory, so every record of every logger
(uvicorn's WebSocket handshake line with its `?token=`, the `websockets` debug dump of
request headers, httpx's request URLs, a traceback) is cleaned when it is created,
whatever handler or formatter prints it later. Called once at the start of each process.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Callable, Mapping
from typing import Any

REDACTED = "[redacted]"

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_REFRESH = re.compile(r"\brt_[A-Za-z0-9_-]{16,}")
_BEARER = re.compile(r"(?i)\b(bearer)(\s+)[^\s,;'\"\\]+")
_HEADER = re.compile(
    r"(?im)\b(authorization|proxy-authorization|cookie|set-cookie)(\\?['\"]?\s*[:=]\s*)[^\r\n]+"
)
# key=value, key: value, "key": "value" (JSON, reprs, query strings) for secret-ish keys.
_PAIR = re.compile(
    r"""(?ix)
    \b([\w-]*(?:token|password|passwd|secret|parley_access|parley_refresh)[\w-]*)
    (\\?["']?\s*[:=]\s*)
    (?!\[redacted\])
    (\\"(?:[^"\\]|\\[^"])*\\"|"[^"]*"|'[^']*'|[^\s&;,'"\\)\]}]+)
    """
)


def redact(text: str) -> str:
    """`text` with every secret it carries replaced by [redacted]."""
    if not text:
        return text
    text = _HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _PAIR.sub(_pair, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _JWT.sub(REDACTED, text)
    return _REFRESH.sub(REDACTED, text)


def _pair(match: re.Match[str]) -> str:
    value = match.group(3)
    quote = value[:2] if value.startswith('\\"') else value[:1] if value[:1] in "\"'" else ""
    return f"{match.group(1)}{match.group(2)}{quote}{REDACTED}{quote}"


def _clean(value: object) -> object:
    """A log argument without secrets; numbers and None are kept as they are (for %d)."""
    if value is None or isinstance(value, int | float):
        return value
    text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    cleaned = redact(text)
    return value if cleaned == text else cleaned


def clean_record(record: logging.LogRecord) -> None:
    """Arguments are cleaned one by one (formatters that read `args` keep working); if the
    formatted message still shows a secret, it replaces the template and its arguments."""
    if isinstance(record.args, tuple):
        record.args = tuple(_clean(arg) for arg in record.args)
    elif isinstance(record.args, Mapping):
        record.args = {key: _clean(arg) for key, arg in record.args.items()}
    try:
        message = record.getMessage()
    except Exception:  # a template that does not match its arguments: keep neither
        message = f"{record.msg!s} {record.args!r}"
    cleaned = redact(message)
    if cleaned != message:
        record.msg, record.args = cleaned, None
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip())
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


_installed: Callable[..., logging.LogRecord] | None = None


def install_redaction() -> None:
    """Cleans every log record from now on (idempotent)."""
    global _installed
    current = logging.getLogRecordFactory()
    if _installed is not None and current is _installed:
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        clean_record(record)
        return record

    _installed = factory
    logging.setLogRecordFactory(factory)
