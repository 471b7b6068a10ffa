"""The repository's folders, the installed `impasto` modules they become, and the import rules
between them. Shared by the layout tests; kept free of test code so the rules read as data."""
from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Folder -> installed package, as pyproject.toml's package-dir maps them (the more specific first).
PACKAGE_DIRS = {
    "serving/core": "impasto.core",
    "models": "impasto.models",
    "training": "impasto.training",
    "serving": "impasto.serving",
    "benchmarks": "benchmarks",
}

# What each layer may import from the project (itself is always allowed). The torch-free base is
# at the bottom; models and serving build on it side by side; training builds on models; the
# benchmarks and tests sit on top.
ALLOWED = {
    "impasto.core": {"impasto.core"},
    "impasto.models": {"impasto.core", "impasto.models"},
    "impasto.serving": {"impasto.core", "impasto.serving"},
    "impasto.training": {"impasto.core", "impasto.models", "impasto.training"},
    "benchmarks": {"impasto", "benchmarks"},
}
# Third-party packages a layer must never import, even lazily.
FORBIDDEN_THIRD_PARTY = {
    "impasto.core": {"torch", "torchvision", "lightning", "hydra", "omegaconf", "fastapi", "starlette", "uvicorn"},
    "impasto.serving": {"torch", "torchvision", "lightning", "hydra", "omegaconf"},
    "impasto.models": {"lightning", "hydra", "omegaconf", "fastapi", "starlette", "uvicorn"},
}
# Generic names that must never be imported bare: they are not installed.
BARE_NAMES = {"models", "training", "serving", "conf"}


def layer_of(module: str) -> str:
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    raise ValueError(f"{module} is in no layer")


def source_modules() -> Iterator[tuple[str, Path]]:
    """``(module name, file)`` for every Python file of the package folders and benchmarks."""
    claimed: set[Path] = set()
    for folder, package in PACKAGE_DIRS.items():
        base = ROOT / folder
        for path in sorted(base.rglob("*.py")):
            if path in claimed or "__pycache__" in path.parts:
                continue
            claimed.add(path)
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join([package, *parts]), path


def imported_names(module: str, source: str, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """Every module name that ``source`` imports, lazily or not, with its line: relative imports
    are resolved against ``module``; ``from a import b`` yields ``a.b`` (b may be a submodule)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def violations(module: str, source: str, is_package: bool = False) -> list[str]:
    """The import rules ``module`` breaks, one line each."""
    layer = layer_of(module)
    found = []
    for line, name in imported_names(module, source, is_package):
        top = name.split(".")[0]
        if top in BARE_NAMES:
            found.append(f"{module}:{line} imports {name!r}: use impasto.{name}")
        elif top in FORBIDDEN_THIRD_PARTY.get(layer, ()):
            found.append(f"{module}:{line} imports {top}, which {layer} must never import")
        elif top in ("impasto", "benchmarks") and name not in ("impasto",):
            target = name.split(".")
            target_layer = ".".join(target[:2]) if top == "impasto" else "benchmarks"
            if not any(target_layer == allowed or target_layer.startswith(allowed + ".") for allowed in ALLOWED[layer]):
                found.append(f"{module}:{line} imports {name}: {layer} may import only {', '.join(sorted(ALLOWED[layer]))}")
    return found
