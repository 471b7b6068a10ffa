"""The ``impasto`` command: a thin dispatcher that imports each subcommand lazily.

It lives in the torch-free base, so ``impasto stylize`` and ``impasto serve`` start fast and run
where only onnxruntime is installed. A command that needs an optional extra is checked for it
before it is imported: on a base install ``impasto train`` says which extra to install in one
line, even where the missing package would only be imported later, deep inside the command.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from typing import NoReturn

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

# The top-level modules each command needs beyond the base install, and the extra that brings them.
_TRAIN = ("torch", "lightning", "hydra", "onnx")
REQUIREMENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "train": ("train", _TRAIN),
    "export": ("train", _TRAIN),
    "quickstart": ("train", _TRAIN),
    "explain": ("analysis", (*_TRAIN, "timm", "matplotlib", "sklearn")),
    "serve": ("serve", ("fastapi", "uvicorn")),
}


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (``PROG: message``) and exit 2, like
    every other user error of the subcommands."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}\n")


def usage() -> str:
    lines = ["usage: impasto COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<11} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "`impasto COMMAND --help` for a command's options."]
    return "\n".join(lines)


def missing_extra(name: str, requirement: tuple[str, tuple[str, ...]] | None = None) -> str | None:
    """A one-line hint when command ``name`` needs modules that are not installed, else None.

    ``requirement`` (extra, modules) replaces the command's own, for an option that needs more
    (``impasto serve --engine ray``)."""
    extra, modules = requirement or REQUIREMENTS.get(name, ("", ()))
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if not missing:
        return None
    return f"impasto {name} needs the '{extra}' extra: pip install 'impasto[{extra}]' (missing: {', '.join(missing)})"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"impasto: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    if hint := missing_extra(name):
        print(hint, file=sys.stderr)
        return 2
    # Any ImportError past this point is a bug, not a missing extra: let it show its traceback.
    module_name, func_name = COMMANDS[name][0].split(":")
    return int(getattr(importlib.import_module(module_name), func_name)(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
