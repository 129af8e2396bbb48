"""Text hygiene for names, titles and message content: trimmed, bounded, no invisible tricks."""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

# Bidi embeddings/overrides/isolates: they make text display differently from what it is.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
_CONTENT_CONTROLS_ALLOWED = frozenset("\n\t")


def check_name(value: str) -> str:
    """A display name or title: no control, format (zero-width, bidi) or unassigned characters."""
    value = value.strip()
    for char in value:
        if unicodedata.category(char) in {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}:
            raise ValueError(f"contains a forbidden character U+{ord(char):04X}")
    if not 1 <= len(value) <= 64:
        raise ValueError("must be 1-64 characters")
    return value


def check_content(value: str) -> str:
    """Message content: newlines and tabs allowed; NUL, other controls and bidi overrides not."""
    value = value.replace("\r\n", "\n").strip()
    _check_content_chars(value)
    if not 1 <= len(value) <= 4000:
        raise ValueError("must be 1-4000 characters after trimming")
    return value


def check_status_text(value: str) -> str:
    """A status's text: 0-100 characters after trimming; no control, format (zero-width,
    bidi) or unassigned characters, as in names."""
    value = value.strip()
    for char in value:
        if unicodedata.category(char) in {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}:
            raise ValueError(f"contains a forbidden character U+{ord(char):04X}")
    if len(value) > 100:
        raise ValueError("must be at most 100 characters")
    return value


def check_draft(value: str) -> str:
    """A composer's draft: as message content (newlines and tabs allowed, no other controls
    or bidi overrides) but kept as typed and possibly empty; at most 4000 characters."""
    value = value.replace("\r\n", "\n")
    if len(value) > 4000:
        raise ValueError("must be at most 4000 characters")
    _check_content_chars(value)
    return value


def _check_content_chars(value: str) -> None:
    for char in value:
        category = unicodedata.category(char)
        if (category == "Cc" and char not in _CONTENT_CONTROLS_ALLOWED) or char in _BIDI:
            raise ValueError(f"contains a forbidden character U+{ord(char):04X}")
        if category == "Cs":
            raise ValueError("contains an unpaired surrogate")


def check_description(value: str) -> str:
    value = value.strip()
    for char in value:
        category = unicodedata.category(char)
        if (category == "Cc" and char != "\n") or char in _BIDI or category == "Cs":
            raise ValueError(f"contains a forbidden character U+{ord(char):04X}")
    return value


def check_plain(value: str) -> str:
    """Search words and login names: any text, but no control characters (NUL above all,
    which PostgreSQL cannot store or compare)."""
    if any(unicodedata.category(char) in {"Cc", "Cs"} for char in value):
        raise ValueError("contains a control character")
    return value


Name = Annotated[str, AfterValidator(check_name)]
Plain = Annotated[str, AfterValidator(check_plain)]
Content = Annotated[str, AfterValidator(check_content)]
DraftText = Annotated[str, AfterValidator(check_draft)]
Description = Annotated[str, StringConstraints(max_length=500), AfterValidator(check_description)]
