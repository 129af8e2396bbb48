"""What Parley's e-mails say, in English and Russian: plain text and HTML of each."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

LANGUAGES = ("en", "ru")


@dataclass(frozen=True, slots=True)
class Written:
    subject: str
    text: str
    html: str


_TEXTS: dict[str, dict[str, tuple[str, str, str]]] = {
    # kind: language: (subject, lead, action)
    "verify": {
        "en": (
            "Confirm your e-mail address",
            "Follow this link within 24 hours to confirm that {who} owns this address:",
            "Confirm the address",
        ),
        "ru": (
            "Подтвердите адрес электронной почты",
            "Перейдите по ссылке в течение 24 часов, чтобы подтвердить, что адрес"
            " принадлежит {who}:",
            "Подтвердить адрес",
        ),
    },
    "reset": {
        "en": (
            "Reset your password",
            "Someone asked to reset the password of {who}. Follow this link within an hour to"
            " choose a new one; if it was not you, ignore this message:",
            "Choose a new password",
        ),
        "ru": (
            "Сброс пароля",
            "Поступил запрос на сброс пароля учётной записи {who}. Перейдите по ссылке в течение"
            " часа, чтобы задать новый пароль; если это были не вы, ничего делать не нужно:",
            "Задать новый пароль",
        ),
    },
    "invite": {
        "en": (
            "You are invited to Parley",
            "{who} invites you to join their Parley chat. Follow this link to create your account:",
            "Accept the invitation",
        ),
        "ru": (
            "Приглашение в Parley",
            "{who} приглашает вас в чат Parley. Перейдите по ссылке, чтобы создать учётную запись:",
            "Принять приглашение",
        ),
    },
}


def language_of(accept_language: str | None) -> str:
    """The first of the reader's languages Parley writes (else English)."""
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LANGUAGES:
            return tag
    return "en"


def write(kind: str, language: str, *, who: str, url: str) -> Written:
    subject, lead, action = _TEXTS[kind][language if language in LANGUAGES else "en"]
    text = f"{lead.format(who=who)}\n\n{url}\n"
    html = (
        "<!doctype html><html><body>"
        f"<p>{escape(lead.format(who=who))}</p>"
        f'<p><a href="{escape(url)}">{escape(action)}</a></p>'
        f"<p>{escape(url)}</p>"
        "</body></html>"
    )
    return Written(subject, text, html)
