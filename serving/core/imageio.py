"""Image decoding/encoding at the boundary: files or bytes <-> float32 RGB in [0, 1].

Handles EXIF orientation, grayscale, palette and alpha (composited on white), an optional maximum
side, and decompression bombs (the pixel count is checked from the header, before decoding).
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from impasto.core.errors import ImageError

DEFAULT_MAX_PIXELS = 64_000_000
ENCODERS = {"png": ("PNG", "image/png"), "jpeg": ("JPEG", "image/jpeg"), "jpg": ("JPEG", "image/jpeg"),
            "webp": ("WEBP", "image/webp")}


def open_image(source: str | Path | bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS,
               formats: tuple[str, ...] | None = None) -> Image.Image:
    """Open and fully decode an image as RGB, honouring EXIF orientation.

    Raises :class:`ImageError` with a one-line reason for anything unreadable, over ``max_pixels``
    or not in ``formats`` (PIL format names such as ``"PNG"``).
    """
    name = "<upload>" if isinstance(source, (bytes, bytearray)) else str(source)
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ImageError("empty image")
        stream = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"{name}: no such file")
        stream = path.open("rb")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(stream)
            if formats is not None and img.format not in formats:
                raise ImageError(f"{name}: format {img.format} not accepted (accepted: {', '.join(formats)})")
            width, height = img.size
            if width * height > max_pixels:  # checked on the header, before any pixel is decoded
                raise ImageError(f"{name}: {width}x{height} is over the limit of {max_pixels} pixels")
            img.load()
            img = ImageOps.exif_transpose(img)
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageError(f"{name}: not a readable image ({err})".replace("\n", " ")) from None
    except (OSError, SyntaxError, ValueError) as err:  # truncated or corrupt data
        raise ImageError(f"{name}: corrupt or truncated image ({err})".replace("\n", " ")) from None
    finally:
        if not isinstance(source, (bytes, bytearray)):
            stream.close()
    return to_rgb(img)


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB; transparency is composited on white rather than dropped to black."""
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grayscale: scale to 8 bits
        arr = np.asarray(img, dtype=np.float32)
        arr = arr / max(float(arr.max()), 1.0) * 255.0
        return Image.fromarray(arr.astype(np.uint8)).convert("RGB")
    return img.convert("RGB")


def limit_size(img: Image.Image, max_size: int | None) -> Image.Image:
    """Downscale so the longer side is at most ``max_size`` (never upscale)."""
    if not max_size or max(img.size) <= max_size:
        return img
    scale = max_size / max(img.size)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.Resampling.LANCZOS)


def to_array(img: Image.Image) -> np.ndarray:
    """PIL RGB -> float32 ``[3, H, W]`` in [0, 1]."""
    return np.ascontiguousarray(np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0)


def from_array(chw: np.ndarray) -> Image.Image:
    """float32 ``[3, H, W]`` in [0, 1] -> PIL RGB (clipped, rounded)."""
    hwc = np.clip(chw.transpose(1, 2, 0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(hwc, "RGB")


def encode(img: Image.Image, fmt: str = "png", quality: int = 92) -> tuple[bytes, str]:
    """Encode to ``png``/``jpeg``/``webp``; returns ``(bytes, content_type)``."""
    try:
        pil_format, content_type = ENCODERS[fmt.lower()]
    except KeyError:
        raise ImageError(f"output format {fmt!r} not supported (use png, jpeg or webp)") from None
    buf = io.BytesIO()
    options = {} if pil_format == "PNG" else {"quality": quality}
    img.save(buf, pil_format, **options)
    return buf.getvalue(), content_type


def format_for_path(path: str | Path) -> str:
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in ENCODERS:
        raise ImageError(f"{path}: unknown output extension (use .png, .jpg or .webp)")
    return suffix
