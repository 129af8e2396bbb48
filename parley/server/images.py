"""Uploaded files: image decoding and avatars (Pillow), content-type sniffing, safe names.

Nothing here trusts a client's file name or content type: images are recognised by
decoding them, other files by their magic bytes. Decoding refuses images over
`MAX_PIXELS` (avatars: `AVATAR_MAX_PIXELS`), checked from the header before any pixel is
decoded, which keeps decompression bombs out without touching Pillow's process-wide
`MAX_IMAGE_PIXELS` or the (thread-unsafe) warning filters; Pillow's own, higher bomb
limits still apply first. Decoding runs in a small thread pool of its own, so a burst of
images never waits behind (nor delays) password hashing in the default pool.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import contextlib
import io
import re
import unicodedata
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, ParamSpec, TypeVar
from urllib.parse import quote

from PIL import Image, ImageOps

from parley import errors

MAX_PIXELS = 40_000_000
AVATAR_MAX_PIXELS = 16_000_000
IMAGE_WORKERS = 2  # the pool's bound: at most this many images decode at once
AVATAR_SIZE = 256
AVATAR_FORMAT = "WEBP"
AVATAR_CONTENT_TYPE = "image/webp"
OCTET_STREAM = "application/octet-stream"
TEXT_PLAIN = "text/plain; charset=utf-8"

_CONTENT_TYPES = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "GIF": "image/gif",
    "WEBP": "image/webp",
}
_FORMATS = tuple(_CONTENT_TYPES)
_NOT_AN_IMAGE = "Not a PNG, JPEG, GIF or WebP image"
_P = ParamSpec("_P")
_T = TypeVar("_T")
_pool: ThreadPoolExecutor | None = None


async def run_image_work(func: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Runs blocking Pillow work in the image pool (threads start on first use)."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(IMAGE_WORKERS, thread_name_prefix="parley-images")
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_pool, lambda: func(*args, **kwargs))


@dataclass(frozen=True)
class ImageInfo:
    format: str
    content_type: str
    width: int
    height: int


def sniff_image(data: bytes) -> ImageInfo | None:
    """Decodes `data` fully (blocking: call it in a thread for large files).

    None unless it is a whole, sane PNG, JPEG, GIF or WebP within MAX_PIXELS.
    """
    try:
        with _decoded(data) as image:
            fmt = _format(image)
            return ImageInfo(fmt, _CONTENT_TYPES[fmt], image.width, image.height)
    except errors.UnsupportedMedia:
        return None


async def sniff(data: bytes) -> ImageInfo | None:
    """sniff_image, in the image pool."""
    return await run_image_work(sniff_image, data)


async def make_avatar(data: bytes, *, max_bytes: int) -> bytes:
    """A 256×256 AVATAR_FORMAT image: orientation applied, centre-cropped, no metadata.

    Raises TooLarge past `max_bytes`, ImageTooLarge past AVATAR_MAX_PIXELS (from the
    header, before decoding), UnsupportedMedia when `data` is not an image.
    """
    if len(data) > max_bytes:
        raise errors.TooLarge(f"Avatar larger than {max_bytes} bytes")
    return await run_image_work(
        _square, data, AVATAR_SIZE, AVATAR_FORMAT, max_pixels=AVATAR_MAX_PIXELS
    )


async def make_thumbnail_data_url(data: bytes, size: int = 64) -> str:
    """A `data:image/png;base64,...` square thumbnail; UnsupportedMedia when not an image."""
    png = await run_image_work(_square, data, size, "PNG")
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


async def make_preview_image(data: bytes, *, size: int = 1024) -> bytes:
    """A link preview's image as WebP, at most `size` px on its longer side, no metadata;
    UnsupportedMedia when `data` is not an image."""
    return await run_image_work(_fitted, data, size)


def _fitted(data: bytes, size: int) -> bytes:
    with _decoded(data) as image:
        try:
            fitted = _plain_mode(ImageOps.exif_transpose(image))
            fitted.thumbnail((size, size), Image.Resampling.LANCZOS)
        except Exception as exc:  # a broken EXIF block or an odd mode
            raise errors.UnsupportedMedia(_NOT_AN_IMAGE) from exc
    clean = Image.frombytes(fitted.mode, fitted.size, fitted.tobytes())
    out = io.BytesIO()
    clean.save(out, "WEBP", quality=85, method=4)
    return out.getvalue()


@contextlib.contextmanager
def _decoded(data: bytes, max_pixels: int = MAX_PIXELS) -> Iterator[Image.Image]:
    """An allowed image, fully decoded; else UnsupportedMedia (ImageTooLarge)."""
    image = _open(data, max_pixels)
    try:
        yield image
    finally:
        image.close()


def _open(data: bytes, max_pixels: int) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data), formats=_FORMATS)
    except Image.DecompressionBombError as exc:  # Pillow's own limit, from the header
        raise errors.ImageTooLarge() from exc
    # Untrusted bytes: whatever Pillow raises (OSError, SyntaxError, ValueError,
    # DecompressionBombError, zlib or struct errors...) means "not an image we take".
    except Exception as exc:
        raise errors.UnsupportedMedia(_NOT_AN_IMAGE) from exc
    try:
        _format(image)
        if image.width * image.height > max_pixels:  # from the header: nothing decoded yet
            raise errors.ImageTooLarge(f"Image has more than {max_pixels} pixels")
        image.load()
    except errors.UnsupportedMedia:
        image.close()
        raise
    except Exception as exc:
        image.close()
        raise errors.UnsupportedMedia(_NOT_AN_IMAGE) from exc
    return image


def _format(image: Image.Image) -> str:
    # Pillow reports a JPEG carrying extra frames (MPO, from some cameras) as "MPO".
    fmt = "JPEG" if image.format == "MPO" else str(image.format)
    if fmt not in _CONTENT_TYPES:
        raise errors.UnsupportedMedia(_NOT_AN_IMAGE)
    return fmt


def _square(data: bytes, size: int, fmt: str, *, max_pixels: int = MAX_PIXELS) -> bytes:
    with _decoded(data, max_pixels) as image:
        try:
            upright = ImageOps.exif_transpose(image)
            square = ImageOps.fit(_plain_mode(upright), (size, size), Image.Resampling.LANCZOS)
        except Exception as exc:  # a broken EXIF block or an odd mode
            raise errors.UnsupportedMedia(_NOT_AN_IMAGE) from exc
    # A fresh image carries no info dict: no EXIF, GPS, XMP, ICC or comments survive.
    clean = Image.frombytes(square.mode, square.size, square.tobytes())
    out = io.BytesIO()
    if fmt == "WEBP":
        clean.save(out, "WEBP", quality=85, method=4)
    else:
        clean.save(out, "PNG", optimize=True)
    return out.getvalue()


def _plain_mode(image: Image.Image) -> Image.Image:
    has_alpha = image.mode in {"RGBA", "LA", "PA"} or "transparency" in image.info
    return image.convert("RGBA" if has_alpha else "RGB")


# Content types of other files, from magic bytes only.

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
    (b"PK\x05\x06", "application/zip"),
    (b"PK\x07\x08", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"ID3", "audio/mpeg"),
    (b"OggS", "audio/ogg"),
    (b"fLaC", "audio/flac"),
    (b"\x1aE\xdf\xa3", "video/webm"),
)
_MP3_FRAME = frozenset({0xFB, 0xFA, 0xF3, 0xF2, 0xE3, 0xE2})
_MP4_BRANDS = {b"M4A ": "audio/mp4", b"M4B ": "audio/mp4", b"qt  ": "video/quicktime"}
_TEXT_HINTS = {
    "csv": "text/csv; charset=utf-8",
    "tsv": "text/tab-separated-values; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "json": "application/json",
}
_TEXT_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f]")


def detect_content_type(head: bytes, filename: str) -> str:
    """The content type of a file from its first bytes (a few KiB), never the client's.

    `filename` only picks among safe text types for text; never HTML, SVG, XML or script.
    """
    for magic, content_type in _MAGIC:
        if head.startswith(magic):
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        return _MP4_BRANDS.get(head[8:12], "video/mp4")
    if len(head) >= 2 and head[0] == 0xFF and head[1] in _MP3_FRAME:
        return "audio/mpeg"
    if _is_text(head):
        extension = filename.rpartition(".")[2].lower() if "." in filename else ""
        return _TEXT_HINTS.get(extension, TEXT_PLAIN)
    return OCTET_STREAM


def _is_text(head: bytes) -> bool:
    if not head:
        return False
    try:
        # Not final: `head` may end in the middle of a multi-byte character.
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return not _TEXT_CONTROLS.search(text)


# File names for Content-Disposition.

_MAX_NAME_BYTES = 255
_DROP_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_REPLACE = str.maketrans({**dict.fromkeys("<>:|?*;", "_"), **dict.fromkeys("\"'`")})


def safe_filename(name: str) -> str:
    """A display name: last path part only, no control/bidi/zero-width chars or quotes."""
    base = re.split(r"[/\\]", unicodedata.normalize("NFC", name))[-1]
    kept = "".join(c for c in base if unicodedata.category(c) not in _DROP_CATEGORIES)
    cleaned = " ".join(kept.translate(_REPLACE).split()).strip(" .")
    return _truncate(cleaned) or "file"


def content_disposition(kind: Literal["inline", "attachment"], filename: str) -> str:
    """`kind; filename="ascii"` plus RFC 5987 `filename*` when the name is not ASCII."""
    if kind not in ("inline", "attachment"):
        raise ValueError(f"bad disposition: {kind!r}")
    name = safe_filename(filename)
    fallback = _ascii_name(name)
    if fallback == name:
        return f'{kind}; filename="{name}"'
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _ascii_name(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name)
    ascii_only = "".join(c if c.isascii() else "_" for c in decomposed if not _is_mark(c))
    return safe_filename(ascii_only.replace("\\", "_"))


def _is_mark(char: str) -> bool:
    return unicodedata.category(char).startswith("M")


def _truncate(name: str) -> str:
    if len(name.encode()) <= _MAX_NAME_BYTES:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or len(extension.encode()) > 16:
        stem, extension = name, ""
    budget = _MAX_NAME_BYTES - len(extension.encode()) - len(dot if extension else "")
    cut = stem.encode()[:budget].decode(errors="ignore").rstrip(" .")
    return f"{cut}.{extension}" if extension else cut
