"""``impasto stylize``: stylise image and video files with an exported ONNX model (onnxruntime, no torch)."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from impasto.core.cli import OneLineParser
from impasto.core.errors import ImpastoError
from impasto.core.imageio import encode, expand_inputs, format_for_path, open_image, resize_longer
from impasto.core.model import StyleModel, default_model_path
from impasto.core.outputs import OutputClash, OutputPlan, atomic_write_bytes
from impasto.core.request import OutputControls
from impasto.core.stylespec import format_style_spec, parse_style_spec
from impasto.core.tiling import THUMBNAIL_SIZE, check_stroke_scale, check_tile_size, stylize_image
from impasto.serving import video


def output_path(source: Path, output: str | None, style_tag: str, many: bool, suffix: str = ".png") -> Path:
    """``-o`` is a file for one input, a directory for several; default: ``<stem>_<style>.png``
    (videos: ``.mp4``) next to the input."""
    name = f"{source.stem}_{style_tag}{suffix}"
    if output is None:
        return source.with_name(name)
    out = Path(output)
    if names_a_folder(output, many):
        return out / name
    return out


def names_a_folder(output: str, many: bool) -> bool:
    return many or Path(output).is_dir() or output.endswith(("/", "\\"))


def stylize_file(model: StyleModel, source: Path, weights: np.ndarray, controls: OutputControls,
                 max_size: int | None, target: Path, *, tile_size: int | None = None,
                 stroke_scale: float = 1.0) -> Path:
    """Stylise ``source`` into ``target``, written atomically (a failed run leaves no partial file).

    The image stays ``uint8``; large ones are tiled (policy: :func:`impasto.core.tiling.tile_size_for`).
    """
    img = resize_longer(open_image(source), max_size)
    rgb = np.asarray(img)
    del img  # only the uint8 array from here on: a 8K photo is 100 MB, not 400 as float
    run_weights, mode = controls.network_weights(model, weights)
    out = stylize_image(model, rgb, run_weights, finish=lambda styled, original: controls.finish(styled, original, mode),
                        tile_size=tile_size, stroke_scale=stroke_scale)
    del rgb
    data, _ = encode(Image.fromarray(out, "RGB"), format_for_path(target))
    del out
    return atomic_write_bytes(target, data)


def write_error(target: Path, err: OSError) -> str:
    return f"{target}: cannot write ({err.strerror or err})".replace("\n", " ")


def _progress(total: int, videos: bool = False):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    # Off in pipes and logs, where a transient bar would only leave a blank line behind.
    console = Console()
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), video.RateColumn(),
                    TimeRemainingColumn(), console=console, transient=True,
                    disable=(total < 2 and not videos) or not console.is_terminal)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="impasto stylize", description=__doc__)
    parser.add_argument("inputs", nargs="+", help="image or video files, directories or globs")
    parser.add_argument("-m", "--model", help="ONNX model from `impasto export` (default: the bundled model)")
    parser.add_argument("-s", "--style", help="style name, or a blend NAME:W,NAME:W (weights are normalised)")
    parser.add_argument("--strength", type=float, default=1.0,
                        help="0 = the input, 1 = fully stylised (default 1); in-network when the model has "
                             "an identity style, else a pixel blend")
    parser.add_argument("--preserve-color", action="store_true",
                        help="keep the input's colours, restyle the luminance only")
    parser.add_argument("--max-size", type=int, help="downscale so the longer side is at most PX")
    parser.add_argument("-o", "--output", help="output file (one input) or directory; a video's suffix picks "
                                               "its container: .mp4 (default), .mov, .mkv, .webm, .gif")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--tile-size", type=int, metavar="PX",
                        help=f"run images in PX tiles with statistics from a {THUMBNAIL_SIZE}-px thumbnail (seam-free); "
                             f"default: tile images over {THUMBNAIL_SIZE} px; 0: never tile")
    parser.add_argument("--stroke-scale", type=float, default=1.0, metavar="K",
                        help="strokes K times larger at the same output size (images, 1-8, default 1)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="impasto: %(message)s")

    def fail(message: str) -> None:
        print(f"impasto stylize: {message}", file=sys.stderr)

    if args.max_size is not None and args.max_size < 8:
        fail("--max-size must be at least 8")
        return 2
    model_path = args.model or default_model_path()
    if model_path is None:
        fail("no model given and none bundled: pass -m MODEL.onnx (see `impasto export`)")
        return 2
    try:
        controls = OutputControls(args.strength, args.preserve_color)
        check_tile_size(args.tile_size)
        check_stroke_scale(args.stroke_scale)
        items = parse_style_spec(args.style)
        model = StyleModel(model_path, device=args.device)
        weights = model.style_weights(items)
    except ImpastoError as err:
        fail(str(err))
        return 2
    files, missing = expand_inputs(args.inputs)
    errors = [f"{m}: no such file or matching image" for m in missing]
    tag = (format_style_spec(items) if items else model.style_names[0]).replace(":", "-").replace(",", "_")
    many = len(files) > 1
    single = args.output is not None and not names_a_folder(args.output, many)
    videos = {f for f in files if video.is_video(f, args.output if single else None)}
    if videos and not video.available():
        fail(f"{sorted(videos)[0]}: video input needs PyAV: {video.INSTALL_HINT}")
        return 2
    # One run never writes over its inputs or its own earlier outputs (see impasto.core.outputs).
    plan = OutputPlan(files)
    if single:  # one input, -o names the file: refuse a clash before doing any work
        try:
            (video.check_output if videos else format_for_path)(args.output)
            if files:
                plan.claim(args.output)
        except (ImpastoError, OutputClash) as err:
            fail(str(err))
            return 2
    elif args.output is not None and Path(args.output).exists() and not Path(args.output).is_dir():
        fail(f"-o {args.output}: not a folder (several inputs are written into a folder)")
        return 2
    with _progress(len(files), bool(videos)) as progress:
        task = progress.add_task("stylizing", total=len(files))
        for source in files:
            wanted = output_path(source, args.output, tag, many, video.DEFAULT_SUFFIX if source in videos else ".png")
            taken = None if single else plan.clash(wanted) or ("a folder" if wanted.is_dir() else None)
            target = wanted if single else plan.claim_free(wanted)
            notes = [f"{wanted} is {taken}"] if taken else []
            try:
                if source in videos:
                    notes += video.stylize_video(model, source, weights, controls, args.max_size, target,
                                                 progress=progress).notes
                else:
                    stylize_file(model, source, weights, controls, args.max_size, target,
                                 tile_size=args.tile_size, stroke_scale=args.stroke_scale)
                plan.written(target)
                note = f" ({'; '.join(notes)})" if notes else ""
                progress.console.print(f"{source} -> {target}{note}", markup=False, highlight=False, soft_wrap=True)
            except ImpastoError as err:
                errors.append(str(err))
            except OSError as err:
                errors.append(write_error(target, err))
            except KeyboardInterrupt:  # Ctrl-C: the file in progress is never left at its name (atomic)
                for message in errors:
                    fail(message)
                fail(f"interrupted; {source} not written, the files listed above are complete")
                return 130
            progress.advance(task)
    for message in errors:
        fail(message)
    return 1 if errors else 0


def list_styles_main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="impasto styles", description="List the styles of a model.")
    parser.add_argument("-m", "--model", help="ONNX model (default: the bundled model)")
    args = parser.parse_args(argv)
    model_path = args.model or default_model_path()
    if model_path is None:
        print("impasto styles: no model given and none bundled: pass -m MODEL.onnx", file=sys.stderr)
        return 2
    try:
        model = StyleModel(model_path, device="cpu")
    except ImpastoError as err:
        print(f"impasto styles: {err}", file=sys.stderr)
        return 2
    print(f"{model.path} ({'blendable' if model.blendable else 'single style'})")
    for name in model.style_names:
        info = model.style_info.get(name, {})
        details = ", ".join(str(info[k]) for k in ("title", "artist", "year") if info.get(k))
        print(f"  {name}" + (f"  — {details}" if details else ""))
    return 0
