"""Avatars over 16 megapixels are refused from the header; image work has its own pool."""

from __future__ import annotations

import io
import threading

import pytest
from PIL import Image, ImageFile

from parley import errors
from parley.security import hash_password
from parley.server import images
from tests.unit.test_images import encode, png_claiming

MAX = 5 * 1024 * 1024


@pytest.mark.parametrize("size", [(4_001, 4_000), (50_000, 50_000)])
async def test_avatar_over_16_megapixels_is_refused_before_decoding(
    size: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_decoding(_image: object) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(errors.ImageTooLarge) as refused:
        await images.make_avatar(png_claiming(*size), max_bytes=MAX)
    assert refused.value.status == 415 and refused.value.code == "image_too_large"


async def test_a_real_17_megapixel_avatar_is_refused() -> None:
    data = encode(Image.new("1", (4_200, 4_100)), "PNG")
    with pytest.raises(errors.ImageTooLarge):
        await images.make_avatar(data, max_bytes=MAX)
    # Attachments keep their own, higher limit: the same picture is still an image there.
    assert images.sniff_image(data) is not None


async def test_image_work_runs_in_its_own_bounded_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    square = images._square

    def spy(*args: object, **kwargs: object) -> bytes:
        seen.append(threading.current_thread().name)
        return square(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(images, "_square", spy)
    out = io.BytesIO()
    Image.new("RGB", (40, 40), "red").save(out, "PNG")
    await images.make_avatar(out.getvalue(), max_bytes=MAX)
    await images.make_thumbnail_data_url(out.getvalue())
    assert seen and all(name.startswith("parley-images") for name in seen), seen
    assert images._pool is not None and images._pool._max_workers == images.IMAGE_WORKERS

    # Password hashing does not share it.
    import asyncio

    hashed: list[str] = []

    def hash_spy(password: str) -> str:
        hashed.append(threading.current_thread().name)
        return hash_password(password)

    await asyncio.to_thread(hash_spy, "some password")
    assert not hashed[0].startswith("parley-images")
