"""The `impasto` dispatcher on a base install: a command whose extra is missing says which extra to
install in one line, before anything is imported; later import errors are not disguised."""
from __future__ import annotations

import sys

import pytest

from impasto.core import cli


def block(monkeypatch, *modules: str) -> None:
    """As if ``modules`` were not installed (``find_spec`` gives None, importing fails)."""
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def forbid_imports(monkeypatch) -> None:
    def refuse(name, *args):
        raise AssertionError(f"the dispatcher imported {name} although its extra is missing")

    monkeypatch.setattr(cli.importlib, "import_module", refuse)


@pytest.mark.parametrize("command", ["train", "export", "quickstart"])
def test_training_commands_without_torch_name_the_train_extra(monkeypatch, capsys, command):
    block(monkeypatch, "torch")
    forbid_imports(monkeypatch)
    assert cli.main([command, "--help"]) == 2
    assert capsys.readouterr().err == (f"impasto {command} needs the 'train' extra: pip install 'impasto[train]' "
                                       "(missing: torch)\n")


def test_explain_lists_every_missing_module_of_the_analysis_extra(monkeypatch, capsys):
    block(monkeypatch, "torch", "sklearn")
    forbid_imports(monkeypatch)
    assert cli.main(["explain"]) == 2
    assert capsys.readouterr().err == ("impasto explain needs the 'analysis' extra: pip install 'impasto[analysis]' "
                                       "(missing: torch, sklearn)\n")


def test_serve_without_fastapi_names_the_serve_extra(monkeypatch, capsys):
    block(monkeypatch, "uvicorn")
    forbid_imports(monkeypatch)
    assert cli.main(["serve"]) == 2
    assert "pip install 'impasto[serve]' (missing: uvicorn)" in capsys.readouterr().err


def test_stylize_needs_no_extra(monkeypatch, capsys):
    block(monkeypatch, "torch", "lightning", "hydra", "onnx", "fastapi", "uvicorn")
    assert cli.main(["styles"]) == 0
    assert "starry_night" in capsys.readouterr().out


def raise_missing_module(argv):
    raise ModuleNotFoundError("No module named 'somewhere'", name="somewhere")


def test_a_module_missing_inside_a_command_is_not_turned_into_a_hint(monkeypatch):
    monkeypatch.setitem(cli.COMMANDS, "stylize", (f"{__name__}:raise_missing_module", "a broken command"))
    with pytest.raises(ModuleNotFoundError, match="somewhere"):
        cli.main(["stylize"])
