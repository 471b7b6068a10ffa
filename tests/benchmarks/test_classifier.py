"""Smoke test of ``python -m benchmarks.classifier``: the default classifier on three scikit-image
photos saved under ImageNet-style names, plus a file without a wnid and an unreadable one."""
from __future__ import annotations

import re

import pytest

from benchmarks.classifier import main
from impasto.core.imageio import open_reference

PHOTOS = {  # file name -> scikit-image photo
    "n02123045_tabby.JPEG": "chelsea",
    "n07920052_espresso.jpg": "coffee",
    "n04266014_rocket.tif": "rocket",  # the class is "space shuttle": a reported name mismatch
    "astronaut.png": "astronaut",  # no wnid: not counted
}


@pytest.fixture()
def image_folder(tmp_path):
    for name, photo in PHOTOS.items():
        open_reference(f"skimage:{photo}").save(tmp_path / name)
    (tmp_path / "n02123045_tabby_cat.png").write_bytes(b"not an image")
    return tmp_path


@pytest.mark.timeout(120)
def test_classifier_benchmark_reports_accuracy(image_folder, capsys):
    assert main(["--images", str(image_folder), "--batch-size", "2"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"images: 3 labelled from .* \(3 classes\); 1 without an ImageNet wnid, 1 unreadable", out), out
    assert "mismatches (labels still from the wnid): 1, e.g. n04266014_rocket.tif (class 812: space shuttle)" in out
    accuracy = {}
    for k in ("1", "5"):
        match = re.search(rf"^top-{k}: ([\d.]+)% \((\d+)/(\d+)\)$", out, re.MULTILINE)
        assert match, out
        percent, hits, total = float(match[1]), int(match[2]), int(match[3])
        assert total == 3 and percent == pytest.approx(100 * hits / total, abs=0.01), out
        accuracy[k] = hits
    # A tabby cat photo is not hard for an ImageNet classifier: at least that one is in the top 5.
    assert 1 <= accuracy["5"] and accuracy["1"] <= accuracy["5"], out


def test_classifier_benchmark_clear_errors(tmp_path, capsys):
    assert main(["--images", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.strip() == f"benchmarks.classifier: {tmp_path / 'nope'}: not a folder"
    open_reference("skimage:chelsea").save(tmp_path / "cat.png")
    assert main(["--images", str(tmp_path)]) == 2
    assert "no images named <wnid>_..." in capsys.readouterr().err
