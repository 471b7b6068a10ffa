"""The base image I/O: finding images, references, the one resize, array conversions."""
from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from impasto.core.errors import ImageError
from impasto.core.imageio import (
    IMAGE_SUFFIXES,
    SKIMAGE_PHOTOS,
    expand_inputs,
    from_array,
    is_image_file,
    open_reference,
    resize_longer,
    scan_images,
    skimage_photo,
    to_array,
)


def save(path, size=(12, 8), fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 100, 50)).save(path, fmt)
    return path


def test_a_folder_of_tiff_photos_is_found_everywhere(tmp_path):
    assert {".tif", ".tiff", ".jpg", ".png", ".webp"} <= IMAGE_SUFFIXES
    tif = save(tmp_path / "a" / "x.tif")
    tiff = save(tmp_path / "y.TIFF")
    (tmp_path / "notes.txt").write_text("no image")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG broken")
    readable, skipped = scan_images(tmp_path)
    assert readable == sorted([tif, tiff]) and skipped == [tmp_path / "broken.png"]
    files, missing = expand_inputs([str(tmp_path), str(tmp_path / "a" / "*.tif"), str(tmp_path / "none.jpg")])
    assert files == [tmp_path / "broken.png", tiff, tif] and missing == [str(tmp_path / "none.jpg")]
    assert is_image_file(tif) and not is_image_file(tmp_path / "notes.txt") and not is_image_file(tmp_path / "a")


def test_scan_images_of_a_missing_folder_is_an_image_error(tmp_path):
    with pytest.raises(ImageError, match="image folder not found"):
        scan_images(tmp_path / "nowhere")


def test_resize_longer_upscales_only_when_asked():
    img = Image.new("RGB", (40, 20))
    assert resize_longer(img, 10).size == (10, 5)
    assert resize_longer(img, 80).size == (40, 20)
    assert resize_longer(img, 80, upscale=True).size == (80, 40)
    assert resize_longer(img, None) is img and resize_longer(img, 0, upscale=True) is img
    assert resize_longer(Image.new("RGB", (300, 1)), 30).size == (30, 1)  # never below one pixel


def test_array_round_trip():
    img = Image.fromarray(np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10, "RGB")
    arr = to_array(img)
    assert arr.shape == (3, 2, 3) and arr.dtype == np.float32 and 0 <= arr.min() <= arr.max() <= 1
    assert np.array_equal(np.asarray(from_array(arr)), np.asarray(img))


def test_references_open_paths_and_skimage_photos(tmp_path):
    path = save(tmp_path / "p.png", (5, 7))
    assert open_reference(path).size == (5, 7) and open_reference(str(path)).mode == "RGB"
    coffee = open_reference("skimage:coffee")
    assert coffee.mode == "RGB" and coffee.size == (600, 400)
    assert skimage_photo("motorcycle_right").mode == "RGB"
    assert {"astronaut", "chelsea", "retina", "colorwheel", "motorcycle_left"} <= set(SKIMAGE_PHOTOS)
    with pytest.raises(ImageError, match="unknown scikit-image photo .mona_lisa.; choose one of astronaut"):
        open_reference("skimage:mona_lisa")
    with pytest.raises(ImageError, match="no such file"):
        open_reference(tmp_path / "missing.jpg")


def test_without_scikit_image_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage", None)  # as if not installed: importing it fails
    with pytest.raises(ImageError) as err:
        open_reference("skimage:astronaut")
    assert str(err.value) == "skimage:astronaut needs scikit-image: pip install 'impasto[train]'"
