"""The gallery's icon, drawn by code: a dark tile with three bars in the band colours (low,
medium, high), served as ``/favicon.ico`` (16, 32 and 48 px in one ICO file)."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw

#: The colours of style.css: page header, then the Low, Medium and High bands.
TILE = (17, 24, 39)
BARS = ((185, 28, 28), (180, 83, 9), (21, 128, 61))
SIZES = ((16, 16), (32, 32), (48, 48))
#: Drawn this large, then shrunk, so the small sizes are antialiased.
CANVAS = 192


def favicon_ico() -> bytes:
    """The icon as an ICO file (about 3 KB; a millisecond to draw, so drawn per request)."""
    tile = Image.new("RGBA", (CANVAS, CANVAS), (0, 0, 0, 0))
    draw = ImageDraw.Draw(tile)
    draw.rounded_rectangle((0, 0, CANVAS - 1, CANVAS - 1), radius=CANVAS // 5, fill=TILE)
    width, gap, bottom = CANVAS * 0.2, CANVAS * 0.08, CANVAS * 0.8
    left = (CANVAS - 3 * width - 2 * gap) / 2
    for index, (colour, height) in enumerate(zip(BARS, (0.3, 0.45, 0.6), strict=True)):
        x = left + index * (width + gap)
        draw.rounded_rectangle((x, bottom - CANVAS * height, x + width, bottom),
                               radius=CANVAS // 24, fill=colour)
    out = io.BytesIO()
    tile.save(out, "ICO", sizes=list(SIZES))
    return out.getvalue()
