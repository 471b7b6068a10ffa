"""Smoke test of ``python -m benchmarks.training_speed``: the committed tree (HEAD, checked out in a
temporary worktree and imported as ``impasto``) against this tree, one step of the smoke preset
each, in fresh processes."""
from __future__ import annotations

import math
import re
import shutil
import subprocess

import pytest

from benchmarks.training_speed import REPO, main

pytestmark = pytest.mark.skipif(
    shutil.which("git") is None or subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"],
                                                   capture_output=True).returncode != 0,
    reason="needs git and a clone with history")


@pytest.mark.timeout(300)
def test_old_and_new_steps_side_by_side(capsys, tmp_path):
    assert main(["--baseline-ref", "HEAD", "--experiment", "smoke", "--rounds", "1", "--steps", "1", "--flop-steps", "2",
                 "--styles-dir", str(tmp_path), "--override", "style_size=32", "--override", "data.image_size=32"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"old: HEAD, 4 photos x 1 styles per step, 32x32 crops", out), out
    row = re.search(r"^\s+1\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)x$", out, re.MULTILINE)
    assert row, out
    old, new, ratio = map(float, row.groups())
    assert 0 < old < math.inf and 0 < new < math.inf and ratio == pytest.approx(new / old, abs=0.01)
    assert "median" in out
    work = re.search(r"old ([\d.]+) GFLOP, new ([\d.]+) GFLOP, old/new ([\d.]+)x", out)
    assert work, out
    old_work, new_work, work_ratio = map(float, work.groups())
    assert old_work > 0 and new_work > 0 and work_ratio == pytest.approx(old_work / new_work, rel=0.05)
    assert re.search(r"counted FLOP/s new/old: [\d.]+x", out), out
    worktrees = subprocess.run(["git", "-C", str(REPO), "worktree", "list"], capture_output=True, text=True).stdout
    assert len(worktrees.strip().splitlines()) == 1  # the temporary checkout is gone


def test_an_unknown_baseline_is_one_line(capsys, tmp_path):
    assert main(["--baseline-ref", "no-such-ref-xyz", "--styles-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("benchmarks.training_speed: cannot check out 'no-such-ref-xyz'") and len(err.splitlines()) == 1
