"""Image input and output at the boundary: finding image files, decoding files, bytes or
``skimage:NAME`` references, resizing, and float32 RGB ``[3, H, W]`` arrays in [0, 1].

Handles EXIF orientation, grayscale, palette and alpha (composited on white), 16-bit grayscale,
and decompression bombs: the pixel count, the aspect ratio and whether the file is large enough to
hold what it declares are checked from the header, before decoding (:func:`open_header`), and
large JPEGs can decode at a reduced scale (:func:`draft_for`). Every failure is an
:class:`ImageError` with a one-line message.
"""
from __future__ import annotations

import glob
import io
import math
import struct
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

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
    if isinstance(source, (bytes, bytearray)):
        return load_rgb(open_header(source, max_pixels=max_pixels, formats=formats))
    path, name = Path(source), str(source)
    if not path.is_file():
        raise ImageError(f"{name}: no such file")
    # Read whole: the file is closed at once, and decoding from memory is what uploads do too.
    return load_rgb(open_header(path.read_bytes(), max_pixels=max_pixels, formats=formats, name=name), name)


def open_header(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, formats: tuple[str, ...] | None = None,
                max_aspect_ratio: float | None = None, name: str = "<upload>") -> Image.Image:
    """Read only the header of an encoded image and check every limit that needs no decoding.

    The result is not decoded yet (see :func:`draft_for` and :func:`load_rgb`): its ``size`` says
    what decoding will cost. Refused with an :class:`ImageError`: unreadable headers, formats not in
    ``formats``, more than ``max_pixels``, a longer/shorter side ratio over ``max_aspect_ratio``,
    and files too small to hold the pixels they declare (truncated, or crafted to decode to a large
    blank image).
    """
    if not data:
        raise ImageError("empty image")
    with _decoding_errors(name):
        img: Image.Image = Image.open(io.BytesIO(data))
        if formats is not None and img.format not in formats:
            raise ImageError(f"{name}: format {img.format} not accepted (accepted: {', '.join(formats)})")
        width, height = img.size
        if width * height > max_pixels:
            raise ImageError(f"{name}: {width}x{height} is over the limit of {max_pixels} pixels")
        if max_aspect_ratio is not None and max(img.size) > max_aspect_ratio * max(1, min(img.size)):
            raise ImageError(f"{name}: {width}x{height} is too thin (the longer side may be at most "
                             f"{max_aspect_ratio:g} times the shorter)")
        _check_complete(img, len(data), name)
    return img


def _check_complete(img: Image.Image, size: int, name: str) -> None:
    """Refuse a file too small to encode the pixels it declares.

    libjpeg fills whatever a JPEG lacks with grey and reports success, so a few hundred bytes
    declaring 7000x7000 would decode to 49 megapixels of nothing. A complete file has a floor:
    Huffman-coded JPEG spends at least one bit on every 8x8 block of every component, and a
    component is subsampled at most 4x per direction; deflate (PNG) compresses at most 1032:1,
    and every row holds a filter byte plus at least one bit per pixel.
    """
    width, height = img.size
    if img.format == "JPEG":
        if _jpeg_frame_marker(img) in ARITHMETIC_JPEG_FRAMES:
            # Arithmetic coding has no such floor (and browsers do not decode it either).
            raise ImageError(f"{name}: arithmetic-coded JPEG not accepted")
        least = width * height // (64 * 16 * 8)
    elif img.format == "PNG":
        least = height * (1 + (width + 7) // 8) // 1032
    else:  # WebP decoding fails outright on missing data
        return
    if size < least:
        raise ImageError(f"{name}: corrupt or truncated image ({size} bytes cannot hold {width}x{height} pixels)")


# Start-of-frame markers of arithmetic-coded JPEG (sequential, progressive, lossless, differential).
ARITHMETIC_JPEG_FRAMES = frozenset({0xFFC9, 0xFFCA, 0xFFCB, 0xFFCD, 0xFFCE, 0xFFCF})


def _jpeg_frame_marker(img: Image.Image) -> int | None:
    """The SOFn marker of an opened JPEG (walks the marker segments of its header)."""
    fp = getattr(img, "fp", None)  # an ImageFile's, open until it is decoded
    if fp is None:
        return None
    position = fp.tell()
    try:
        fp.seek(2)
        while True:
            head = fp.read(4)
            if len(head) < 4 or head[0] != 0xFF:
                return None
            marker, length = (head[0] << 8) | head[1], (head[2] << 8) | head[3]
            if 0xFFC0 <= marker <= 0xFFCF and marker not in (0xFFC4, 0xFFC8, 0xFFCC):
                return marker
            if marker == 0xFFDA:  # start of scan: no frame header before it
                return None
            fp.seek(length - 2, io.SEEK_CUR)
    finally:
        fp.seek(position)


def draft_for(img: Image.Image, longer: int | None) -> tuple[int, int]:
    """Let a JPEG decode straight at a reduced scale (1/2, 1/4 or 1/8) when it is at least twice
    the size it will be resized to, so the longer side stays at least ``longer``; returns the size
    decoding will produce. Other formats (and ``None``) decode at full size."""
    width, height = img.size
    if img.format == "JPEG" and longer and max(width, height) >= 2 * longer:
        scale = longer / max(width, height)
        img.draft(None, (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))))
    return img.size


def load_rgb(img: Image.Image, name: str = "<upload>") -> Image.Image:
    """Decode an image from :func:`open_header` as RGB, honouring EXIF orientation."""
    with _decoding_errors(name):
        img.load()
        img = ImageOps.exif_transpose(img)
    return to_rgb(img)


@contextmanager
def _decoding_errors(name: str) -> Iterator[None]:
    """Pillow's many exception types for bad data -> one-line :class:`ImageError`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageError(f"{name}: not a readable image ({err})".replace("\n", " ")) from None
    except (OSError, SyntaxError, ValueError, struct.error) as err:  # truncated or corrupt data
        raise ImageError(f"{name}: corrupt or truncated image ({err})".replace("\n", " ")) from None


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB; transparency is composited on white rather than dropped to black."""
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img if img.mode == "RGBA" else img.convert("RGBA")
        # Pasting through the alpha band gives what alpha-compositing on opaque white gives, with
        # one RGB copy instead of four full-size intermediates (this runs on the largest uploads).
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba)
        return background
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


def longer_side_size(width: int, height: int, size: int | None, *, upscale: bool = False) -> tuple[int, int]:
    """``(width, height)`` scaled so the longer side is ``size`` (aspect kept, see :func:`resize_longer`),
    without touching any pixels: for deciding before decoding or resizing."""
    longer = max(width, height)
    if not size or longer == size or (longer < size and not upscale):
        return width, height
    scale = size / longer
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize_longer(img: Image.Image, size: int | None, *, upscale: bool = False) -> Image.Image:
    """Scale (Lanczos, aspect kept) so the longer side is ``size``; smaller images are left as they
    are unless ``upscale``. ``None`` or 0 leaves the image unchanged."""
    target = longer_side_size(img.width, img.height, size, upscale=upscale)
    return img if target == img.size else img.resize(target, Image.Resampling.LANCZOS)


def to_array(img: Image.Image | np.ndarray) -> np.ndarray:
    """PIL RGB (or ``uint8 [H, W, 3]``) -> float32 ``[3, H, W]`` in [0, 1]."""
    return np.ascontiguousarray(np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0)


def to_uint8(chw: np.ndarray) -> np.ndarray:
    """float ``[3, H, W]`` in [0, 1] -> ``uint8 [H, W, 3]`` (clipped, rounded)."""
    return np.clip(chw.transpose(1, 2, 0) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def from_array(chw: np.ndarray) -> Image.Image:
    """float32 ``[3, H, W]`` in [0, 1] -> PIL RGB (clipped, rounded)."""
    return Image.fromarray(to_uint8(chw), "RGB")


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
