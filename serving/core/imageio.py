"""Image input and output at the boundary: finding image files, decoding files, bytes or
``skimage:NAME`` references, resizing, and float32 RGB ``[3, H, W]`` arrays in [0, 1].

Handles EXIF orientation, grayscale, palette and alpha (composited on white), 16-bit grayscale,
and decompression bombs (the pixel count is checked from the header, before decoding). Every
failure is an :class:`ImageError` with a one-line message.
"""
from __future__ import annotations

import glob
import io
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from impasto.core.errors import ImageError

DEFAULT_MAX_PIXELS = 64_000_000
# What a folder of images may hold: every format Pillow decodes that photos commonly come in.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
SKIMAGE_PREFIX = "skimage:"
# Colour images that scikit-image ships inside its wheel (no download); the last is synthetic.
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "motorcycle_right",
                  "hubble_deep_field", "immunohistochemistry", "retina", "colorwheel")
ENCODERS = {"png": ("PNG", "image/png"), "jpeg": ("JPEG", "image/jpeg"), "jpg": ("JPEG", "image/jpeg"),
            "webp": ("WEBP", "image/webp")}


def open_image(source: str | Path | bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS,
               formats: tuple[str, ...] | None = None) -> Image.Image:
    """Open and fully decode an image as RGB, honouring EXIF orientation.

    Raises :class:`ImageError` with a one-line reason for anything unreadable, over ``max_pixels``
    or not in ``formats`` (PIL format names such as ``"PNG"``).
    """
    name = "<upload>" if isinstance(source, (bytes, bytearray)) else str(source)
    stream: IO[bytes]
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
            img: Image.Image = Image.open(stream)
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


def is_image_file(path: str | Path) -> bool:
    """A file whose suffix is one of :data:`IMAGE_SUFFIXES` (the content is not checked)."""
    path = Path(path)
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def expand_inputs(patterns: Iterable[str]) -> tuple[list[Path], list[str]]:
    """Files, directories (their images, sorted, not recursive) and globs -> ``(files, patterns
    matching nothing)``; each file once, in the order given."""
    files: list[Path] = []
    missing: list[str] = []
    for pattern in patterns:
        path = Path(pattern).expanduser()
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if is_image_file(p))
        elif path.exists():
            files.append(path)
        elif matches := sorted(glob.glob(str(path), recursive=True)):
            files += [Path(m) for m in matches if Path(m).is_file()]
        else:
            missing.append(pattern)
    return list(dict.fromkeys(files)), missing


def scan_images(root: str | Path) -> tuple[list[Path], list[Path]]:
    """Every image file under ``root`` (recursive, sorted): ``(readable, skipped)``.

    Only headers are checked (fast); a file that fails to decode later is the reader's to skip.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ImageError(f"image folder not found: {root}")
    good, bad = [], []
    for path in sorted(p for p in root.rglob("*") if is_image_file(p)):
        try:
            with Image.open(path) as img:
                img.verify()
            good.append(path)
        except Exception:  # Pillow raises many types for broken files
            bad.append(path)
    return good, bad


def skimage_photo(name: str) -> Image.Image:
    """One of :data:`SKIMAGE_PHOTOS` as an RGB image (scikit-image comes with the ``train`` extra)."""
    if name not in SKIMAGE_PHOTOS:
        raise ImageError(f"unknown scikit-image photo {name!r}; choose one of {', '.join(SKIMAGE_PHOTOS)}")
    try:
        from skimage import data
    except ImportError:
        raise ImageError(f"{SKIMAGE_PREFIX}{name} needs scikit-image: pip install 'impasto[train]'") from None
    if name.startswith("motorcycle_"):
        arr = np.asarray(data.stereo_motorcycle()[0 if name == "motorcycle_left" else 1])
    else:
        arr = np.asarray(getattr(data, name)())
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, -1)
    return Image.fromarray(arr[..., :3].astype(np.uint8), "RGB")


def open_reference(ref: str | Path) -> Image.Image:
    """An image path or ``skimage:NAME`` -> RGB image (see :func:`open_image`)."""
    text = str(ref)
    if text.startswith(SKIMAGE_PREFIX):
        return skimage_photo(text[len(SKIMAGE_PREFIX):])
    return open_image(Path(text).expanduser())


def resize_longer(img: Image.Image, size: int | None, *, upscale: bool = False) -> Image.Image:
    """Scale (Lanczos, aspect kept) so the longer side is ``size``; smaller images are left as they
    are unless ``upscale``. ``None`` or 0 leaves the image unchanged."""
    longer = max(img.size)
    if not size or longer == size or (longer < size and not upscale):
        return img
    scale = size / longer
    return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                      Image.Resampling.LANCZOS)


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
