"""Which URL of a message gets a preview, and what its page says (selectolax's HTML
parser: OpenGraph, then Twitter cards, then the page's own title and description)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urljoin

from selectolax.lexbor import LexborHTMLParser

MAX_TITLE = 300
MAX_DESCRIPTION = 1000
_FENCED = re.compile(r"```.*?(?:```|\Z)", re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
# A URL not written `<https://…>` (the author's "no preview"); a Markdown link's target
# ends at its closing parenthesis.
_URL = re.compile(r"(?<![<\w])https?://[^\s<>()\[\]`\"']+", re.I)
_TRAILING = ".,;:!?'\"*_~"


def first_url(content: str) -> str | None:
    """The first http(s) URL of the text outside code, or None."""
    text = _INLINE_CODE.sub(" ", _FENCED.sub(" ", content))
    for match in _URL.finditer(text):
        url = match.group().rstrip(_TRAILING)
        if len(url) > len("https://") and len(url) <= 2048:
            return url
    return None


@dataclass(frozen=True, slots=True)
class Page:
    title: str | None
    description: str | None
    site_name: str | None
    image_url: str | None

    @property
    def empty(self) -> bool:
        return not (self.title or self.description or self.image_url)


def parse_page(html: bytes, url: str) -> Page:
    """What the page says about itself; relative image URLs made absolute."""
    tree = LexborHTMLParser(html.decode("utf-8", errors="replace"))
    meta: dict[str, str] = {}
    for node in tree.css("meta"):
        key = (node.attributes.get("property") or node.attributes.get("name") or "").lower()
        value = node.attributes.get("content")
        if key and value and key not in meta:
            meta[key] = " ".join(value.split())
    title_node = tree.css_first("title")
    page_title = " ".join(title_node.text().split()) if title_node else ""
    title = meta.get("og:title") or meta.get("twitter:title") or page_title
    description = (
        meta.get("og:description") or meta.get("twitter:description") or meta.get("description")
    )
    image = meta.get("og:image") or meta.get("og:image:url") or meta.get("twitter:image")
    image_url = urljoin(url, image) if image else None
    if image_url and not image_url.lower().startswith(("http://", "https://")):
        image_url = None
    return Page(
        title=(title or "")[:MAX_TITLE] or None,
        description=(description or "")[:MAX_DESCRIPTION] or None,
        site_name=(meta.get("og:site_name") or "")[:MAX_TITLE] or None,
        image_url=image_url,
    )
