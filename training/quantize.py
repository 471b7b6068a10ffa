"""int8 static quantisation of an exported impasto model, calibrated on real photos.

    python -m impasto.training.quantize MODEL.onnx -o MODEL-int8.onnx [--photos DIR] [--count 24] [--size 256]

Convolutions get int8 weights (per output channel) and uint8 activations in QDQ format; the
normalisation layers and the output stay float. Calibration runs every photo under every style
(one-hot), so the activation ranges cover all styles of a CIN model. ``--photos`` defaults to
scikit-image's bundled photos; pass the training folder for a calibration closer to real use.
Afterwards the float and the int8 model are compared on the calibration photos (mean and max
absolute pixel difference, in [0, 1] units), and the impasto metadata is copied across.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from impasto.core.contract import INPUT_IMAGE, INPUT_STYLE_WEIGHTS, META_QUANTIZATION, write_metadata
from impasto.core.errors import ImpastoError
from impasto.core.imageio import SKIMAGE_PHOTOS, SKIMAGE_PREFIX, open_reference, resize_longer, scan_images, to_array
from impasto.core.model import StyleModel, pad_to_min_side


def calibration_photos(folder: str | None, count: int, size: int, holdout_every: int = 0) -> list[np.ndarray]:
    """``[3, H, W]`` float32 arrays in [0, 1], longer side at most ``size``; from a folder, spread
    over the training part of training's held-out split (held-out photos stay unseen)."""
    from impasto.training.data import split_holdout

    if folder:
        paths, _ = scan_images(folder)
        paths, _ = split_holdout(paths, holdout_every)
        refs = [str(p) for p in paths[:: max(1, len(paths) // count)][:count]]
    else:
        refs = [SKIMAGE_PREFIX + name for name in SKIMAGE_PHOTOS if name != "colorwheel"][:count]
    if not refs:
        raise ValueError(f"no readable photos in {folder}")
    return [to_array(resize_longer(open_reference(ref), size)) for ref in refs]


class PhotoStyleReader(CalibrationDataReader):
    """onnxruntime's calibration reader protocol: one feed dict per (photo, style), then None."""

    def __init__(self, photos: list[np.ndarray], num_styles: int | None):
        styles = range(num_styles) if num_styles else [None]
        self._feeds = iter([self._feed(photo, s, num_styles) for photo in photos for s in styles])

    @staticmethod
    def _feed(photo: np.ndarray, style: int | None, num_styles: int | None) -> dict[str, np.ndarray]:
        feed = {INPUT_IMAGE: pad_to_min_side(photo[None])}
        if style is not None:
            weights = np.zeros((1, num_styles), np.float32)
            weights[0, style] = 1
            feed[INPUT_STYLE_WEIGHTS] = weights
        return feed

    def get_next(self):
        return next(self._feeds, None)


def quantize(model_path: Path, output: Path, photos: list[np.ndarray]) -> Path:
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    model = StyleModel(model_path, device="cpu")
    num_styles = len(model.style_names) if model.blendable else None
    reader = PhotoStyleReader(photos, num_styles)
    output.parent.mkdir(parents=True, exist_ok=True)
    quantize_static(str(model_path), str(output), reader, quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                    op_types_to_quantize=["Conv"])
    quantized = onnx.load(str(output))
    write_metadata(quantized, {**model.metadata, META_QUANTIZATION: "int8 static QDQ, per-channel Conv weights"})
    onnx.save(quantized, str(output))
    return output


def compare(float_path: Path, int8_path: Path, photos: list[np.ndarray]) -> tuple[float, float]:
    """Mean and max absolute difference between the two models over photos x styles."""
    a, b = StyleModel(float_path, device="cpu"), StyleModel(int8_path, device="cpu")
    means, worst = [], 0.0
    for photo in photos:
        for name in a.style_names:
            weights = a.style_weights(name)[None]
            diff = np.abs(a.run(photo[None], weights) - b.run(photo[None], weights))
            means.append(float(diff.mean()))
            worst = max(worst, float(diff.max()))
    return float(np.mean(means)), worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m impasto.training.quantize", description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path, help="float ONNX model from `impasto export`")
    parser.add_argument("-o", "--output", type=Path, help="int8 model to write (default: MODEL-int8.onnx)")
    parser.add_argument("--photos", help="folder of calibration photos (default: scikit-image's photos)")
    parser.add_argument("--count", type=int, default=24, help="calibration photos (default %(default)s)")
    parser.add_argument("--size", type=int, default=256, help="longer side of calibration photos (default 256)")
    parser.add_argument("--holdout-every", type=int, default=10,
                        help="skip training's held-out photos of --photos (default 10, as experiment=bundled_cin)")
    args = parser.parse_args(argv)
    output = args.output or args.model.with_name(args.model.stem + "-int8.onnx")
    try:
        photos = calibration_photos(args.photos, args.count, args.size, args.holdout_every)
        quantize(args.model, output, photos)
        mean, worst = compare(args.model, output, photos)
    except (ImpastoError, ValueError) as err:
        print(f"quantize: {err}", file=sys.stderr)
        return 2
    size = lambda p: p.stat().st_size / 2**20  # noqa: E731
    print(f"wrote {output} ({size(args.model):.2f} MiB -> {size(output):.2f} MiB)")
    print(f"int8 vs float on {len(photos)} calibration photos x styles: mean abs diff {mean:.4f}, max {worst:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
