"""Images decoded for real (Pillow-made files), content types sniffed, file names made safe."""

from __future__ import annotations

import base64
import io
import os
import random
import struct
import zlib

import pytest
from PIL import ExifTags, Image

from parley import errors
from parley.server.images import (
    AVATAR_CONTENT_TYPE,
    AVATAR_FORMAT,
    OCTET_STREAM,
    TEXT_PLAIN,
    ImageInfo,
    content_disposition,
    detect_content_type,
    make_avatar,
    make_thumbnail_data_url,
    safe_filename,
    sniff_image,
)

MAX = 5 * 1024 * 1024
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def stripes(size: tuple[int, int], colors: list[tuple[int, int, int]]) -> Image.Image:
    """Vertical stripes, left to right."""
    image = Image.new("RGB", size)
    width = size[0] // len(colors)
    for i, color in enumerate(colors):
        image.paste(color, (i * width, 0, (i + 1) * width, size[1]))
    return image


def spy_jpeg(orientation: int = 1) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "SpyCam"
    exif[ExifTags.IFD.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N",
        ExifTags.GPS.GPSLatitude: (52.0, 31.0, 12.0),
    }
    return encode(stripes((200, 100), [RED, BLUE]), "JPEG", exif=exif, quality=95)


def png_claiming(width: int, height: int) -> bytes:
    """A tiny valid PNG whose header (CRC fixed up) claims width×height pixels."""
    data = bytearray(encode(Image.new("1", (8, 8)), "PNG"))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def close_to(pixel: object, color: tuple[int, int, int], tolerance: int = 40) -> bool:
    assert isinstance(pixel, tuple)
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], color, strict=True))


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


SAMPLES = {
    "PNG": (lambda: encode(Image.new("RGBA", (30, 20), (1, 2, 3, 128)), "PNG"), "image/png"),
    "JPEG": (spy_jpeg, "image/jpeg"),
    "GIF": (
        lambda: encode(Image.new("P", (30, 20), 3), "GIF", transparency=3),
        "image/gif",
    ),
    "WEBP": (lambda: encode(Image.new("RGB", (30, 20), GREEN), "WEBP"), "image/webp"),
}


@pytest.mark.parametrize("fmt", list(SAMPLES))
def test_sniff_supported_formats(fmt: str) -> None:
    make, content_type = SAMPLES[fmt]
    info = sniff_image(make())
    assert info is not None
    assert (info.format, info.content_type) == (fmt, content_type)
    expected = (200, 100) if fmt == "JPEG" else (30, 20)
    assert (info.width, info.height) == expected


def test_sniff_multi_picture_jpeg_as_jpeg() -> None:
    second = Image.new("RGB", (30, 20), RED)
    mpo = encode(Image.new("RGB", (30, 20)), "MPO", save_all=True, append_images=[second])
    assert sniff_image(mpo) == ImageInfo("JPEG", "image/jpeg", 30, 20)


def truncated_png() -> bytes:
    noise = Image.frombytes("RGB", (64, 64), os.urandom(64 * 64 * 3))
    data = encode(noise, "PNG")
    return data[: len(data) // 2]


def bmp() -> bytes:
    return encode(Image.new("RGB", (4, 4)), "BMP")


REFUSED = {
    "text named .png": lambda: b"definitely not a picture\n",
    "svg": lambda: SVG,
    "html": lambda: b"<html><body>hi</body></html>",
    "truncated png": truncated_png,
    "png signature only": lambda: b"\x89PNG\r\n\x1a\n",
    "bmp": bmp,
    "tiff": lambda: encode(Image.new("RGB", (4, 4)), "TIFF"),
    "empty": lambda: b"",
    "bomb 50000x50000": lambda: png_claiming(50_000, 50_000),
    "claims 48 megapixels": lambda: png_claiming(8_000, 6_000),
}


@pytest.mark.parametrize("case", list(REFUSED))
async def test_refused(case: str) -> None:
    data = REFUSED[case]()
    assert sniff_image(data) is None
    with pytest.raises(errors.UnsupportedMedia):
        await make_avatar(data, max_bytes=MAX)
    with pytest.raises(errors.UnsupportedMedia):
        await make_thumbnail_data_url(data)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_bomb_is_refused_even_when_pillow_only_warns() -> None:
    assert sniff_image(png_claiming(10_000, 10_000)) is None


def test_sniff_accepts_up_to_the_pixel_limit() -> None:
    assert sniff_image(encode(Image.new("1", (8_000, 5_000)), "PNG")) == ImageInfo(
        "PNG", "image/png", 8_000, 5_000
    )
    assert sniff_image(encode(Image.new("1", (8_000, 5_001)), "PNG")) is None


async def test_avatar_too_large() -> None:
    data = spy_jpeg()
    with pytest.raises(errors.TooLarge):
        await make_avatar(data, max_bytes=len(data) - 1)
    assert await make_avatar(data, max_bytes=len(data))


@pytest.mark.parametrize("fmt", list(SAMPLES))
async def test_avatar_is_256_square(fmt: str) -> None:
    avatar = opened(await make_avatar(SAMPLES[fmt][0](), max_bytes=MAX))
    assert avatar.format == AVATAR_FORMAT
    assert AVATAR_CONTENT_TYPE == "image/webp"
    assert avatar.size == (256, 256)


async def test_avatar_strips_metadata() -> None:
    source = spy_jpeg()
    assert opened(source).getexif().get_ifd(ExifTags.IFD.GPSInfo)
    data = await make_avatar(source, max_bytes=MAX)
    avatar = opened(data)
    assert not avatar.getexif()
    assert not {"exif", "xmp", "icc_profile", "comment"} & set(avatar.info)
    assert b"Exif" not in data
    assert b"SpyCam" not in data


async def test_avatar_applies_exif_orientation() -> None:
    # Orientation 6: shown turned 90° clockwise, so the red left half ends up on top.
    avatar = opened(await make_avatar(spy_jpeg(orientation=6), max_bytes=MAX)).convert("RGB")
    assert close_to(avatar.getpixel((128, 30)), RED)
    assert close_to(avatar.getpixel((128, 226)), BLUE)


async def test_avatar_is_centre_cropped() -> None:
    source = encode(stripes((300, 100), [RED, GREEN, BLUE]), "PNG")
    avatar = opened(await make_avatar(source, max_bytes=MAX)).convert("RGB")
    for xy in [(5, 5), (128, 128), (250, 250)]:
        assert close_to(avatar.getpixel(xy), GREEN)


async def test_avatar_keeps_transparency() -> None:
    source = encode(Image.new("RGBA", (40, 40), (0, 0, 0, 0)), "PNG")
    avatar = opened(await make_avatar(source, max_bytes=MAX))
    assert avatar.mode == "RGBA"
    assert avatar.getpixel((128, 128)) == (0, 0, 0, 0)


@pytest.mark.parametrize("size", [64, 32])
async def test_thumbnail_data_url_is_a_png(size: int) -> None:
    url = await make_thumbnail_data_url(spy_jpeg(), size)
    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    thumb = opened(base64.b64decode(url[len(prefix) :], validate=True))
    assert thumb.format == "PNG"
    assert thumb.size == (size, size)
    assert not thumb.getexif()


async def test_thumbnail_of_an_avatar() -> None:
    avatar = await make_avatar(SAMPLES["GIF"][0](), max_bytes=MAX)
    assert (await make_thumbnail_data_url(avatar)).startswith("data:image/png;base64,")


@pytest.mark.parametrize(
    ("head", "filename", "expected"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "report.html", "application/pdf"),
        (b"PK\x03\x04\x14\x00\x00\x00", "a.docx", "application/zip"),
        (b"\x1f\x8b\x08\x00", "a.tar.gz", "application/gzip"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "x.txt", "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "x", "image/jpeg"),
        (b"GIF89a\x01\x00", "x", "image/gif"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "x", "image/webp"),
        (b"RIFF\x10\x00\x00\x00WAVEfmt ", "x", OCTET_STREAM),
        (b"ID3\x04\x00\x00", "song.mp3", "audio/mpeg"),
        (b"\xff\xfb\x90\x64", "song", "audio/mpeg"),
        (b"\x00\x00\x00\x18ftypmp42", "clip", "video/mp4"),
        (b"\x00\x00\x00\x20ftypM4A ", "voice", "audio/mp4"),
        (b"hello world\n", "notes.txt", TEXT_PLAIN),
        ("héllo wörld ✓\n".encode(), "notes", TEXT_PLAIN),
        ("ab✓".encode()[:-1], "cut", TEXT_PLAIN),
        (b"a,b\n1,2\n", "table.CSV", "text/csv; charset=utf-8"),
        (b"<html><script>alert(1)</script></html>", "page.html", TEXT_PLAIN),
        (b"<html><body>x</body></html>", "page.htm", TEXT_PLAIN),
        (SVG, "pic.svg", TEXT_PLAIN),
        (b"<?xml version='1.0'?><a/>", "a.xml", TEXT_PLAIN),
        (b"alert(1)", "app.js", TEXT_PLAIN),
        (b"\x00\x01\x02\x03binary", "x.txt", OCTET_STREAM),
        (b"\xc3\x28 invalid utf-8", "x.txt", OCTET_STREAM),
        (b"", "empty.txt", OCTET_STREAM),
    ],
)
def test_detect_content_type(head: bytes, filename: str, expected: str) -> None:
    assert detect_content_type(head, filename) == expected


NOISE = random.Random(7).randbytes(64)  # the same in every process (pytest-xdist collects twice)


@pytest.mark.parametrize("filename", ["x.html", "x.svg", "x.htm", "x.xhtml", "x.js", "x"])
@pytest.mark.parametrize("head", [b"<html>", SVG, b"<!DOCTYPE html>", NOISE])
def test_detect_content_type_never_active(head: bytes, filename: str) -> None:
    detected = detect_content_type(head, filename)
    assert not any(bad in detected for bad in ("html", "svg", "xml", "javascript"))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\photo.jpg", "photo.jpg"),
        ("a\u202eb.exe", "ab.exe"),
        ('x"; y.html', "x_ y.html"),
        ("zero\u200bwidth\x00\r\n.txt", "zerowidth.txt"),
        ("  .hidden  ", "hidden"),
        ("..", "file"),
        ("", "file"),
        ("/", "file"),
        ("\u202e", "file"),
        ("résumé.pdf", "résumé.pdf"),
    ],
)
def test_safe_filename(name: str, expected: str) -> None:
    assert safe_filename(name) == expected


def test_safe_filename_is_bounded() -> None:
    name = safe_filename("é" * 300 + ".tar.gz")
    assert len(name.encode()) <= 255
    assert name.endswith("é.gz")
    assert len(safe_filename("x" * 1000).encode()) == 255


def test_content_disposition_ascii() -> None:
    header = content_disposition("attachment", 'x"; y.html')
    assert header == 'attachment; filename="x_ y.html"'


def test_content_disposition_non_ascii() -> None:
    header = content_disposition("inline", "../отчёт 2026.pdf")
    assert header == (
        "inline; filename=\"_____ 2026.pdf\"; filename*=UTF-8''"
        "%D0%BE%D1%82%D1%87%D1%91%D1%82%202026.pdf"
    )
    header.encode("ascii")


def test_content_disposition_accented_fallback() -> None:
    assert content_disposition("attachment", "résumé.pdf").startswith(
        "attachment; filename=\"resume.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"
    )


def test_content_disposition_kind_is_checked() -> None:
    with pytest.raises(ValueError):
        content_disposition("evil", "x")  # type: ignore[arg-type]
