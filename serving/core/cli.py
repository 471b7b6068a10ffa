"""The ``impasto`` command: a thin dispatcher that imports each subcommand lazily.

It lives in ``serving`` because that package never imports torch: ``impasto stylize`` and
``impasto serve`` start fast and run where only onnxruntime is installed.
"""
from __future__ import annotations

import importlib
import sys

# name -> (module:function, one-line help). Each function takes the remaining argv.
COMMANDS = {
    "train": ("impasto.training.train:main", "train a stylization network (Hydra overrides: key=value ...)"),
    "export": ("impasto.training.export:main", "export a checkpoint to ONNX and check it against PyTorch"),
    "stylize": ("impasto.serving.stylize:main", "stylize images with an ONNX model (onnxruntime)"),
    "styles": ("impasto.serving.stylize:list_styles_main", "list the styles of a model"),
    "serve": ("impasto.serving.server:main", "run the HTTP stylization service"),
    "explain": ("impasto.models.analysis.explain:main", "CNN analysis and visualisation methods"),
    "quickstart": ("impasto.training.quickstart:main", "stylise a photo with every bundled style + a contact sheet"),
}


def usage() -> str:
    lines = ["usage: impasto COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<11} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "`impasto COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"impasto: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    target, _ = COMMANDS[name]
    module_name, func_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        extra = {"train": "train", "export": "train", "explain": "analysis", "quickstart": "train",
                 "serve": "serve"}.get(name, "")
        hint = f": pip install 'impasto[{extra}]'" if extra else ""
        print(f"impasto {name}: missing dependency {err.name!r}{hint}", file=sys.stderr)
        return 2
    return int(getattr(module, func_name)(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
