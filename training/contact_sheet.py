"""A labelled grid of images (original, each style, a blend) as one PNG-ready picture.

Pillow only, so it works with the base install (no matplotlib, no torch).
"""
from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (255, 255, 255)
TEXT = (30, 30, 30)


def contact_sheet(tiles: Sequence[tuple[str, Image.Image]], columns: int = 4, tile_size: int = 320,
                  gap: int = 8, font_size: int = 16) -> Image.Image:
    """Lay out ``(label, image)`` pairs left to right, top to bottom; each image is scaled to fit a
    ``tile_size`` square (aspect kept) with its label (one or two lines) underneath."""
    if not tiles:
        raise ValueError("a contact sheet needs at least one image")
    columns = max(1, min(columns, len(tiles)))
    rows = -(-len(tiles) // columns)
    font = ImageFont.load_default(size=font_size)
    label_height = 2 * (font_size + 4) + gap
    cell_w, cell_h = tile_size + gap, tile_size + label_height
    sheet = Image.new("RGB", (columns * cell_w + gap, rows * cell_h + gap), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for index, (label, image) in enumerate(tiles):
        x0 = gap + (index % columns) * cell_w
        y0 = gap + (index // columns) * cell_h
        thumb = image.convert("RGB")
        thumb.thumbnail((tile_size, tile_size), Image.Resampling.LANCZOS)
        sheet.paste(thumb, (x0 + (tile_size - thumb.width) // 2, y0 + (tile_size - thumb.height) // 2))
        for line_no, line in enumerate(label.splitlines()[:2]):
            draw.text((x0, y0 + tile_size + 4 + line_no * (font_size + 4)), _fit(draw, line, font, tile_size),
                      fill=TEXT, font=font)
    return sheet


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """Shorten ``text`` with an ellipsis until it fits ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"
