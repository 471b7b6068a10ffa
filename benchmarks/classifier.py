"""Top-1 / top-5 accuracy of an analysis classifier on a labelled image folder.

    python -m benchmarks.classifier --images /path/to/imagenet-sample

Labels come from the WordNet id that starts each file name (``n01440764_tench.JPEG``). The
standard ImageNet class index is the rank of that wnid among the 1000 sorted ImageNet-1k wnids;
that list ships with timm (``timm/data/_info/imagenet_synsets.txt``, checked to be sorted), so
the label never depends on matching free-text names. The name part after the underscore is only
cross-checked against the class's WordNet lemmas and torchvision's display name, and mismatches
are reported, not used.
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import torch

from impasto.core.errors import ImageError
from impasto.core.imageio import is_image_file, open_image
from impasto.models.analysis.classifiers import DEFAULT_CLASSIFIER, imagenet_classes, load_classifier
from impasto.models.analysis.errors import AnalysisError
from impasto.models.analysis.images import to_tensor

WNID = re.compile(r"^(n\d{8})(?:_(.*))?$")


def labelled_files(folder: Path) -> tuple[list[tuple[Path, int]], list[str], list[str]]:
    """``(path, class index)`` pairs, the files without a known wnid, and the name mismatches."""
    index = {c.wnid: c for c in imagenet_classes()}
    pairs, unlabelled, mismatched = [], [], []
    for path in sorted(folder.iterdir()):
        if not is_image_file(path):
            continue
        m = WNID.match(path.stem)
        if not m or m.group(1) not in index:
            unlabelled.append(path.name)
            continue
        cls = index[m.group(1)]
        if m.group(2):
            name = m.group(2).replace("_", " ").lower()
            if name not in {cls.name.lower(), *(s.lower() for s in cls.synonyms)}:
                mismatched.append(f"{path.name} (class {cls.index}: {cls.name})")
        pairs.append((path, cls.index))
    return pairs, unlabelled, mismatched


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.classifier", description=__doc__.split("\n")[0])
    parser.add_argument("--images", required=True, help="folder of images named <wnid>_<name>.<ext>")
    parser.add_argument("--model", default=DEFAULT_CLASSIFIER)
    parser.add_argument("--weights", help="local weights for a torchvision --model")
    parser.add_argument("--size", type=int, help="centre crop side (default: the model's input size)")
    parser.add_argument("--batch-size", type=int, default=25)
    parser.add_argument("--limit", type=int, help="only the first N images")
    args = parser.parse_args(argv)

    folder = Path(args.images).expanduser()
    if not folder.is_dir():
        print(f"benchmarks.classifier: {folder}: not a folder", file=sys.stderr)
        return 2
    try:
        model = load_classifier(args.model, args.weights)
    except AnalysisError as err:
        print(f"benchmarks.classifier: {err}", file=sys.stderr)
        return 2
    pairs, unlabelled, mismatched = labelled_files(folder)
    pairs = pairs[:args.limit] if args.limit else pairs
    if not pairs:
        print(f"benchmarks.classifier: no images named <wnid>_... in {folder}", file=sys.stderr)
        return 2
    size = args.size or model.input_size
    top1 = top5 = done = 0
    unreadable = []
    start = time.time()
    with torch.inference_mode():
        for s in range(0, len(pairs), args.batch_size):
            xs, ys = [], []
            for path, label in pairs[s:s + args.batch_size]:
                try:
                    xs.append(to_tensor(open_image(path), size))
                    ys.append(label)
                except ImageError as err:
                    unreadable.append(str(err))
            if not xs:
                continue
            pred = model(torch.stack(xs)).topk(5, dim=1).indices
            y = torch.tensor(ys)[:, None]
            top1 += int((pred[:, :1] == y).sum())
            top5 += int((pred == y).any(1).sum())
            done += len(ys)
            print(f"\r{done}/{len(pairs)} images, top-1 {top1 / done:.1%}, top-5 {top5 / done:.1%}",
                  end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    if not done:
        print(f"benchmarks.classifier: none of the {len(pairs)} labelled images could be read: {unreadable[0]}",
              file=sys.stderr)
        return 2
    print(f"model: {args.model} at {size}x{size} (shorter side resized, centre crop)")
    print(f"images: {done} labelled from {folder} ({len({label for _, label in pairs})} classes); "
          f"{len(unlabelled)} without an ImageNet wnid, {len(unreadable)} unreadable")
    if mismatched:
        print(f"file-name vs class-name mismatches (labels still from the wnid): {len(mismatched)}, e.g. "
              + "; ".join(mismatched[:3]))
    print(f"top-1: {top1 / done:.2%} ({top1}/{done})")
    print(f"top-5: {top5 / done:.2%} ({top5}/{done})")
    print(f"time: {time.time() - start:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
