"""Output files: a run never writes over its inputs or its own outputs, and writes are atomic."""
from __future__ import annotations

import os

import pytest

from impasto.core.outputs import OutputClash, OutputPlan, atomic_path, atomic_write_bytes


def test_an_input_is_never_claimed_however_it_is_named(tmp_path, monkeypatch):
    (tmp_path / "a.png").write_bytes(b"photo")
    os.link(tmp_path / "a.png", tmp_path / "hard.png")
    monkeypatch.chdir(tmp_path)
    plan = OutputPlan(["a.png"])
    for name in ("a.png", tmp_path / "a.png", "./sub/../a.png", "hard.png"):
        with pytest.raises(OutputClash, match="is one of the inputs; it is never overwritten"):
            plan.claim(name)
    assert plan.claim("b.png").name == "b.png"
    with pytest.raises(OutputClash, match="is an earlier output of this run"):
        plan.claim(tmp_path / "b.png")


def test_a_free_name_skips_inputs_outputs_and_folders(tmp_path):
    (tmp_path / "x_wave.png").write_bytes(b"the user's file")
    (tmp_path / "x_wave-3.png").mkdir()
    (tmp_path / "x_wave-4.png").write_bytes(b"an earlier run's output")
    plan = OutputPlan([tmp_path / "x_wave.png"])
    assert plan.claim_free(tmp_path / "x_wave.png").name == "x_wave-2.png"
    assert plan.claim_free(tmp_path / "x_wave.png").name == "x_wave-4.png"  # replaced, as the plain name would be
    assert plan.claim_free(tmp_path / "y.png").name == "y.png"


def test_a_written_output_clashes_under_another_name(tmp_path):
    plan = OutputPlan([])
    atomic_write_bytes(plan.claim(tmp_path / "out.png"), b"1")
    plan.written(tmp_path / "out.png")
    os.link(tmp_path / "out.png", tmp_path / "OUT.png")  # as a case-insensitive file system would see it
    assert plan.claim_free(tmp_path / "OUT.png").name == "OUT-2.png"


def test_an_interrupted_write_leaves_the_target_as_it_was(tmp_path):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"old model")
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as temp:
        temp.write_bytes(b"half a mod")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"old model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no temporary file left behind
    atomic_write_bytes(target, b"new model")
    assert target.read_bytes() == b"new model" and sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_unwritable_targets_fail_before_any_work_as_os_errors(tmp_path):
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "file").write_bytes(b"")
    for target in (tmp_path / "folder.png", tmp_path / "file" / "x.png"):
        with pytest.raises(OSError), atomic_path(target):
            raise AssertionError("the block must not run")
