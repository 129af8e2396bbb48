"""Draws the app icons of the web manifest (parley/web/icons/*.png) with Pillow.

The same picture as parley/web/favicon.svg: a speech bubble with three dots on the accent
colour. Run `.venv/bin/python scripts/make_icons.py` after changing it; commit the PNGs.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

ICONS = Path(__file__).resolve().parent.parent / "parley" / "web" / "icons"
ACCENT = (79, 91, 213, 255)
WHITE = (255, 255, 255, 255)
SUPERSAMPLE = 4


def draw(size: int, *, maskable: bool) -> Image.Image:
    big = size * SUPERSAMPLE
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    pen = ImageDraw.Draw(image)
    unit = big / 64
    if maskable:  # full bleed; the drawing stays inside the 80 % safe zone
        pen.rectangle((0, 0, big, big), fill=ACCENT)
        unit *= 0.8
        offset = big * 0.1
    else:
        pen.rounded_rectangle((0, 0, big - 1, big - 1), radius=14 * unit, fill=ACCENT)
        offset = 0.0

    def at(x: float, y: float) -> tuple[float, float]:
        return (offset + x * unit, offset + y * unit)

    pen.rounded_rectangle((*at(10, 18), *at(54, 44)), radius=6 * unit, fill=WHITE)
    pen.polygon([at(20, 40), at(30, 44), at(20, 52)], fill=WHITE)
    for cx in (24, 32, 40):
        pen.ellipse((*at(cx - 3, 28), *at(cx + 3, 34)), fill=ACCENT)
    return image.resize((size, size), Image.Resampling.LANCZOS)


def main() -> None:
    ICONS.mkdir(exist_ok=True)
    for size in (192, 512):
        draw(size, maskable=False).save(ICONS / f"icon-{size}.png", optimize=True)
    draw(512, maskable=True).save(ICONS / "icon-maskable-512.png", optimize=True)


if __name__ == "__main__":
    main()
