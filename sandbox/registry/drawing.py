from __future__ import annotations

import random
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

__all__ = ["age_scan", "font", "wrap"]

_FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/truetype/liberation"),
)
_FONT_FILES = {
    (False, False): ("DejaVuSans.ttf", "LiberationSans-Regular.ttf"),
    (True, False): ("DejaVuSans-Bold.ttf", "LiberationSans-Bold.ttf"),
    (False, True): ("DejaVuSansMono.ttf", "LiberationMono-Regular.ttf"),
    (True, True): ("DejaVuSansMono-Bold.ttf", "LiberationMono-Bold.ttf"),
}

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@lru_cache(maxsize=64)
def font(size: int, *, bold: bool = False, mono: bool = False) -> Font:
    for name in _FONT_FILES[(bold, mono)]:
        for directory in _FONT_DIRS:
            if (directory / name).exists():
                return ImageFont.truetype(str(directory / name), size)
    # Pillow's bundled font: no accents guaranteed, but it keeps the stand-in working anywhere.
    return ImageFont.load_default(size)


def wrap(text: str, face: Font, width_px: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.split("\n"):
        current = ""
        for word in paragraph.split():
            candidate = f"{current} {word}".strip()
            if current and face.getlength(candidate) > width_px:
                lines.append(current)
                current = word
            else:
                current = candidate
        lines.append(current)
    return lines


def age_scan(image: Image.Image, rng: random.Random) -> Image.Image:
    """Grey paper, speckle noise, a slight blur and a small skew, like a microfilm scan."""
    grey = image.convert("L").point(lambda v: int(38 + v * 0.8))
    noise = Image.frombytes("L", grey.size, rng.randbytes(grey.width * grey.height))
    noise = noise.point(lambda v: v // 9)
    aged = ImageChops.subtract(grey, noise).filter(ImageFilter.GaussianBlur(0.6))
    angle = rng.uniform(-0.9, 0.9)
    aged = aged.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=205)
    draw = ImageDraw.Draw(aged)
    for _ in range(rng.randrange(2, 6)):  # dust specks
        x, y = rng.randrange(aged.width), rng.randrange(aged.height)
        r = rng.randrange(1, 4)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=rng.randrange(60, 140))
    return aged
