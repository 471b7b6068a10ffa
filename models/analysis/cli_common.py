"""Plumbing shared by every ``impasto explain`` method: the parser, the options all methods take,
validated numeric argument types and the report that ends in a figure plus a text summary."""
from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path

from impasto.models.analysis.errors import AnalysisError

AddArguments = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], Path]
Methods = dict[str, tuple[AddArguments, Run]]
OUTPUT_DIR = Path("outputs/explain")
MIN_SIZE = 16  # below this VGG's and EfficientNet's downsampling leaves no feature map


class Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (usage stays available through ``--help``).

    Sub-parsers inherit the class, so every method's options report the same way.
    """

    def error(self, message: str):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        self.exit(2)


def bounded(kind: type, low: float | None = None, high: float | None = None, *, above: float | None = None):
    """An argparse ``type`` for ``kind`` (int or float) values with ``low <= value <= high`` and
    ``value > above``; floats must be finite."""
    def parse(text: str):
        value = kind(text)  # a ValueError becomes argparse's "invalid int value: 'x'"
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, not {text}")
        if above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"must be above {above:g}, not {text}")
        if low is not None and value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low:g}, not {text}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high:g}, not {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


POSITIVE_INT = bounded(int, 1)
NON_NEGATIVE_INT = bounded(int, 0)
POSITIVE_FLOAT = bounded(float, above=0)
NON_NEGATIVE_FLOAT = bounded(float, 0)
IMAGE_SIDE = bounded(int, MIN_SIZE)


def common_arguments(p: argparse.ArgumentParser):
    p.add_argument("--image", nargs="+", metavar="PATH",
                   help="image files, folders or globs (default: scikit-image's bundled photos)")
    p.add_argument("-o", "--output", help="figure path (default: outputs/explain/METHOD.png)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=IMAGE_SIDE, help="image side in pixels (default: the model's input size)")


def output_path(args) -> Path:
    return Path(args.output) if args.output else OUTPUT_DIR / f"{args.method}.png"


def check_output_path(args) -> None:
    """Before any work, which can take minutes: ``-o`` must name a format matplotlib can write (it
    would append ``.png`` to a bare name, and the summary would then sit beside a file that isn't
    there), in a folder that exists or can be made."""
    from matplotlib.backend_bases import FigureCanvasBase

    path = output_path(args)
    if path.suffix.lower().lstrip(".") not in FigureCanvasBase.get_supported_filetypes():
        raise AnalysisError(f"-o {path}: the name must end in a figure format (.png, .jpg, .pdf, .svg, ...)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _write_error(err, path.parent) from None


def _write_error(err: OSError, path: Path) -> AnalysisError:
    return AnalysisError(f"cannot write {err.filename or path}: {err.strerror or err}")


class Report:
    """Lines printed to stdout and saved as a text summary next to the figure."""

    def __init__(self):
        self.lines: list[str] = []

    def __call__(self, line: str = ""):
        print(line)
        self.lines.append(line)

    def finish(self, args, fig) -> Path:
        from impasto.models.analysis.figures import save_figure

        path = output_path(args)
        summary = path.with_suffix(".txt")
        try:
            save_figure(fig, path)
            summary.write_text("\n".join(self.lines) + "\n")
        except OSError as err:  # an unwritable -o is the caller's to fix
            raise _write_error(err, path) from None
        print(f"figure: {path}\nsummary: {summary}")
        return path
