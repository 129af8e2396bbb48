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


@dataclass(frozen=True, slots=True)
class DigestChat:
    """One chat in a missed-message digest: its name, its link and the messages missed
    (sender's name, the start of the text); `total` counts them all, listed or not."""

    title: str
    url: str
    lines: list[tuple[str, str]]
    total: int


_DIGEST: dict[str, dict[str, str]] = {
    "en": {
        "subject": "You have {n} unread messages on Parley",
        "subject_one": "You have an unread message on Parley",
        "lead": "Hello {who}, these messages are waiting for you:",
        "more": "… and {n} more",
        "open": "Open the chat",
        "footer": "You get this e-mail because direct messages and mentions stayed unread."
        " Turn these e-mails off in Parley's settings, or here:",
        "unsubscribe": "Unsubscribe",
    },
    "ru": {
        "subject": "Непрочитанных сообщений в Parley: {n}",
        "subject_one": "У вас непрочитанное сообщение в Parley",
        "lead": "Здравствуйте, {who}! Вас ждут сообщения:",
        "more": "… и ещё {n}",
        "open": "Открыть чат",
        "footer": "Это письмо пришло, потому что личные сообщения и упоминания остались"
        " непрочитанными. Отключить такие письма можно в настройках Parley или здесь:",
        "unsubscribe": "Отписаться",
    },
}


def write_digest(
    language: str, *, who: str, chats: list[DigestChat], unsubscribe_url: str
) -> Written:
    """The missed-message e-mail: per chat, its messages and a link to it."""
    words = _DIGEST[language if language in LANGUAGES else "en"]
    total = sum(chat.total for chat in chats)
    subject = words["subject_one"] if total == 1 else words["subject"].format(n=total)
    text_parts = [words["lead"].format(who=who), ""]
    html_parts = [f"<p>{escape(words['lead'].format(who=who))}</p>"]
    for chat in chats:
        text_parts.append(chat.title)
        html_parts.append(f"<h3>{escape(chat.title)}</h3><ul>")
        for sender, body in chat.lines:
            text_parts.append(f"  {sender}: {body}")
            html_parts.append(f"<li><b>{escape(sender)}</b>: {escape(body)}</li>")
        if chat.total > len(chat.lines):
            more = words["more"].format(n=chat.total - len(chat.lines))
            text_parts.append(f"  {more}")
            html_parts.append(f"<li>{escape(more)}</li>")
        text_parts += [f"  {chat.url}", ""]
        html_parts.append(f'</ul><p><a href="{escape(chat.url)}">{escape(words["open"])}</a></p>')
    text_parts += ["--", words["footer"], unsubscribe_url, ""]
    html_parts.append(
        f"<hr><p><small>{escape(words['footer'])}"
        f' <a href="{escape(unsubscribe_url)}">{escape(words["unsubscribe"])}</a></small></p>'
    )
    html = "<!doctype html><html><body>" + "".join(html_parts) + "</body></html>"
    return Written(subject, "\n".join(text_parts), html)
