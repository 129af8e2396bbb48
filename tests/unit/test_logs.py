"""Log redaction: secrets never reach a log line, whatever logger or handler prints it."""

from __future__ import annotations

import io
import logging

import pytest

from parley.logs import clean_record, install_redaction, redact

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMiJ9.c2lnbmF0dXJlLXBhcnQ"
REFRESH = "rt_" + "A1b2" * 11


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        (f'127.0.0.1:5 - "WebSocket /ws?token={JWT}" [accepted]', JWT),
        ('"WebSocket /service/ws?x=1&token=abc.def.ghi" 403', "abc.def.ghi"),
        (f"< Authorization: Bearer {JWT}", JWT),
        (f"< Cookie: parley_access={JWT}; parley_refresh={REFRESH}", REFRESH),
        (f"Bearer {REFRESH}", REFRESH),
        ("{'username': 'bob', 'password': 'correct horse 1'}", "correct horse"),
        ('{"current_password": "old pw 12", "new_password":"new pw 34"}', "pw"),
        (f'{{"refresh_token": "{REFRESH}"}}', REFRESH),
        ("JWT_SECRET=s3cr3t-value-here", "s3cr3t"),
        (f"HTTP Request: GET http://u/x?access_token={JWT}", JWT),
    ],
)
def test_secrets_are_redacted(line: str, secret: str) -> None:
    cleaned = redact(line)
    assert secret not in cleaned
    assert "[redacted]" in cleaned


def test_ordinary_lines_are_untouched() -> None:
    for line in ("server ready (database: sqlite)", "GET /service/api/chats?limit=5 200"):
        assert redact(line) == line


def test_every_logger_is_cleaned_arguments_and_tracebacks_too() -> None:
    install_redaction()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        logger.debug('%s - "WebSocket %s" %d', "127.0.0.1:1", f"/ws?token={JWT}", 403)
        try:
            raise ValueError(f"bad refresh {REFRESH}")
        except ValueError:
            logger.exception("failed for Bearer %s", JWT)
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert JWT not in output and REFRESH not in output
    assert '"WebSocket /ws?token=[redacted]" 403' in output
    assert "ValueError: bad refresh [redacted]" in output


def test_clean_record_keeps_numbers_for_format() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s %d", (f"t={JWT}", 5), None)
    clean_record(record)
    assert record.getMessage() == "t=[redacted] 5"
