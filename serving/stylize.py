"""``impasto stylize``: stylise image files with an exported ONNX model (onnxruntime, no torch)."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np

from impasto.core.cli import OneLineParser
from impasto.core.errors import ImpastoError
from impasto.core.imageio import expand_inputs, format_for_path, open_image, resize_longer, to_array
from impasto.core.model import StyleModel, default_model_path
from impasto.core.outputs import OutputClash, OutputPlan, atomic_write_bytes
from impasto.core.request import OutputControls
from impasto.core.stylespec import format_style_spec, parse_style_spec


def output_path(source: Path, output: str | None, style_tag: str, many: bool) -> Path:
    """``-o`` is a file for one input, a directory for several; default: ``<stem>_<style>.png``
    next to the input."""
    name = f"{source.stem}_{style_tag}.png"
    if output is None:
        return source.with_name(name)
    out = Path(output)
    if names_a_folder(output, many):
        return out / name
    return out


def names_a_folder(output: str, many: bool) -> bool:
    return many or Path(output).is_dir() or output.endswith(("/", "\\"))


def stylize_file(model: StyleModel, source: Path, weights: np.ndarray, controls: OutputControls,
                 max_size: int | None, target: Path) -> Path:
    """Stylise ``source`` into ``target``, written atomically (a failed run leaves no partial file)."""
    original = to_array(resize_longer(open_image(source), max_size))
    run_weights, mode = controls.network_weights(model, weights)
    stylized = model.run(original[None], None if run_weights is None else run_weights[None])[0]
    data, _ = controls.encode(stylized, original, mode, format_for_path(target))
    return atomic_write_bytes(target, data)


def write_error(target: Path, err: OSError) -> str:
    return f"{target}: cannot write ({err.strerror or err})".replace("\n", " ")


def _progress(total: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("stylizing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    transient=True, disable=total < 2)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="impasto stylize", description=__doc__)
    parser.add_argument("inputs", nargs="+", help="image files, directories or globs")
    parser.add_argument("-m", "--model", help="ONNX model from `impasto export` (default: the bundled model)")
    parser.add_argument("-s", "--style", help="style name, or a blend NAME:W,NAME:W (weights are normalised)")
    parser.add_argument("--strength", type=float, default=1.0,
                        help="0 = the input, 1 = fully stylised (default 1); in-network when the model has "
                             "an identity style, else a pixel blend")
    parser.add_argument("--preserve-color", action="store_true",
                        help="keep the input's colours, restyle the luminance only")
    parser.add_argument("--max-size", type=int, help="downscale so the longer side is at most PX")
    parser.add_argument("-o", "--output", help="output file (one input) or directory")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
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
    # One run never writes over its inputs or its own earlier outputs (see impasto.core.outputs).
    plan = OutputPlan(files)
    single = args.output is not None and not names_a_folder(args.output, many)
    if single:  # one input, -o names the file: refuse a clash before doing any work
        try:
            format_for_path(args.output)
            if files:
                plan.claim(args.output)
        except (ImpastoError, OutputClash) as err:
            fail(str(err))
            return 2
    elif args.output is not None and Path(args.output).exists() and not Path(args.output).is_dir():
        fail(f"-o {args.output}: not a folder (several inputs are written into a folder)")
        return 2
    with _progress(len(files)) as progress:
        task = progress.add_task("stylize", total=len(files))
        for source in files:
            wanted = output_path(source, args.output, tag, many)
            taken = None if single else plan.clash(wanted) or ("a folder" if wanted.is_dir() else None)
            target = wanted if single else plan.claim_free(wanted)
            try:
                stylize_file(model, source, weights, controls, args.max_size, target)
                plan.written(target)
                note = f" ({wanted} is {taken})" if taken else ""
                progress.console.print(f"{source} -> {target}{note}", markup=False, highlight=False, soft_wrap=True)
            except ImpastoError as err:
                errors.append(str(err))
            except OSError as err:
                errors.append(write_error(target, err))
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
