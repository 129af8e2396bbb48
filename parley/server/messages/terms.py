"""The words of a message as search stores and matches them: Snowball stems.

Messages keep `search_text`, the stems of their words and of their attachments' file names
separated by spaces, computed here, so SQLite (FTS5 over it) and PostgreSQL (a 'simple'
tsvector over it) index the same terms, and a query's words go through the same function:
"running" and "run" are both "run", "сообщения" and "сообщение" both "сообщен". A word
with a Cyrillic letter takes the Russian stemmer, any other the English one. Words are
runs of letters and digits: Markdown, URLs' punctuation and underscores separate them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

import Stemmer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from parley.server.db.models import Attachment, Message

_WORD = re.compile(r"[^\W_]+")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_ENGLISH = Stemmer.Stemmer("english")
_RUSSIAN = Stemmer.Stemmer("russian")


def words(text: str) -> list[str]:
    """The text's words, case folded (Cyrillic ё as е; Latin without diacritics)."""
    return [_fold(w) for w in _WORD.findall(text)]


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A folded word's stem."""
    stemmed: str = (_RUSSIAN if _CYRILLIC.search(word) else _ENGLISH).stemWord(word)
    return stemmed


def stems(text: str) -> list[str]:
    return [stem(w) for w in words(text)]


def search_text(content: str, filenames: Iterable[str] = ()) -> str:
    """What a message stores for search: its words' stems, then its file names'."""
    return " ".join([*stems(content), *(s for name in filenames for s in stems(name))])


def _fold(word: str) -> str:
    word = word.casefold()
    if _CYRILLIC.search(word):
        return word.replace("ё", "е")
    if word.isascii():
        return word
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))


async def search_text_of(session: AsyncSession, message: Message) -> str:
    """The stems a stored message is searched by: its content's and its files' names'."""
    names = await session.execute(
        select(Attachment.filename)
        .where(Attachment.message_id == message.id)
        .order_by(Attachment.id)
    )
    return search_text(message.content, names.scalars())
