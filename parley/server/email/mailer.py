"""Sending e-mail: through the SMTP server of the settings (aiosmtplib), or not at all.

A message is handed over with `post`, which returns at once: the exchange with the SMTP
server runs in the background, so a route answers in the same time whether or not it sent
something (no account enumeration by timing), and a slow mail server slows nobody down.
A failed send is logged; it is never retried (the person asks again).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formataddr, make_msgid, parseaddr

import aiosmtplib

from parley import errors
from parley.config import Settings

log = logging.getLogger("parley.email")
TIMEOUT = 30.0


class EmailDisabled(
    errors.ParleyError,
    status=503,
    code="email_disabled",
    detail="E-mail is not configured on this server",
): ...


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int
    user: str | None
    password: str | None
    sender: str
    tls: str  # "starttls" | "tls" | "none"


@dataclass
class Mailer:
    """`config` None: e-mail is off (`check` raises EmailDisabled)."""

    config: SmtpConfig | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def enabled(self) -> bool:
        return self.config is not None

    def check(self) -> SmtpConfig:
        if self.config is None:
            raise EmailDisabled()
        return self.config

    def compose(
        self, *, to: str, subject: str, text: str, html: str, headers: dict[str, str] | None = None
    ) -> EmailMessage:
        """A multipart/alternative message (plain text, then HTML) from the configured sender."""
        config = self.check()
        message = EmailMessage()
        name, address = parseaddr(config.sender)
        message["From"] = formataddr((name, address)) if name else address
        message["To"] = to
        message["Subject"] = subject
        message["Message-ID"] = make_msgid(domain=address.rpartition("@")[2] or None)
        for key, value in (headers or {}).items():
            message[key] = value
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        return message

    def post(self, message: EmailMessage) -> None:
        """Sends in the background; returns at once."""
        task = asyncio.get_running_loop().create_task(self.send(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def send(self, message: EmailMessage) -> None:
        config = self.check()
        try:
            await aiosmtplib.send(
                message,
                hostname=config.host,
                port=config.port,
                username=config.user or None,
                password=config.password or None,
                use_tls=config.tls == "tls",
                start_tls=config.tls == "starttls",
                timeout=TIMEOUT,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            log.warning("e-mail to %s not sent: %s", message["To"], exc)

    async def aclose(self) -> None:
        """Waits (a little) for the messages still being sent."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)


def make_mailer(settings: Settings) -> Mailer:
    """The mailer of the SMTP_* settings: off without SMTP_HOST."""
    if not settings.smtp_host:
        return Mailer()
    tls = settings.smtp_tls
    port = settings.smtp_port or {"tls": 465, "starttls": 587}.get(tls, 25)
    user, password = settings.smtp_user, settings.smtp_password
    return Mailer(SmtpConfig(settings.smtp_host, port, user, password, settings.smtp_from, tls))
