"""Smoke test of ``python -m benchmarks.attack``: a real server on loopback, a few attack uploads."""
from __future__ import annotations

import re

import pytest

from benchmarks.attack import main


@pytest.mark.timeout(120)
def test_attack_is_refused_quickly_and_memory_stays_bounded(capsys):
    rc = main(["--bombs", "3", "--strips", "1", "--flats", "0", "--normal", "2"])
    out = capsys.readouterr().out
    assert rc == 0, out
    statuses = {(kind, status): int(n) for kind, status, n in re.findall(r"^(bomb|strip|normal)\s+(\S+)\s+(\d+)$",
                                                                        out, re.MULTILINE)}
    assert statuses == {("bomb", "400"): 3, ("strip", "400"): 1, ("normal", "200"): 2}, out
    figures = {name.strip(): (float(value), held) for name, value, held in
               re.findall(r"^([a-zA-Z /]+?[a-zA-Z])\s+([\d.]+)\s+.*?(yes|NO)$", out, re.MULTILINE)}
    assert figures["max attack latency s"][0] < 5 and figures["normal request latency s"][0] < 1, out
    assert 0 < figures["server peak RSS MiB"][0] < 1536, out
    assert all(held == "yes" for _, held in figures.values()), out


def test_attack_clear_errors(tmp_path, capsys):
    assert main(["--models", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"benchmarks.attack: no .onnx models in {tmp_path}"
    with pytest.raises(SystemExit) as exit_info:
        main(["--normal", "0"])
    assert exit_info.value.code == 2
