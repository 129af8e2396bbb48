"""What counts as a reaction: one short Unicode emoji sequence, not arbitrary text."""

from __future__ import annotations

import unicodedata

from parley import errors

_JOINERS = {"\u200d", "\ufe0f", "\ufe0e", "\u20e3"}
_KEYCAP_BASES = set("0123456789#*")
MAX_CODEPOINTS = 10


def _is_emoji_char(char: str) -> bool:
    code = ord(char)
    if char in _JOINERS or 0xE0020 <= code <= 0xE007F:  # joiners, selectors, flag tags
        return True
    if 0x1F3FB <= code <= 0x1F3FF:  # skin tones
        return True
    return unicodedata.category(char) == "So" and code >= 0x2000


def check_emoji(value: str) -> str:
    """Returns the emoji, or raises ValidationFailed for text that is not one emoji."""
    value = value.strip()
    if not value or len(value) > MAX_CODEPOINTS:
        raise errors.ValidationFailed("emoji must be a single emoji")
    chars = list(value)
    if chars[0] in _KEYCAP_BASES:  # a keycap: digit, # or *, an optional FE0F, then 20E3
        if chars[1:] in (["\u20e3"], ["\ufe0f", "\u20e3"]):
            return value
        raise errors.ValidationFailed("emoji must be a single emoji")
    if not chars or not all(_is_emoji_char(c) for c in chars) or chars[0] in _JOINERS:
        raise errors.ValidationFailed("emoji must be a single emoji")
    return value
