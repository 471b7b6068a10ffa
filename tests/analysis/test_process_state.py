"""The analysis library leaves the process alone: importing it and drawing figures neither selects
a matplotlib backend nor imports pyplot nor touches rcParams. Runs in a fresh interpreter, since
other tests may import pyplot."""
import os
import subprocess
import sys

SCRIPT = r"""
import importlib, pkgutil, sys
import matplotlib
before = dict.copy(matplotlib.rcParams)  # raw values: reading 'backend' normally would resolve it

import impasto.models.analysis as analysis
for module in pkgutil.iter_modules(analysis.__path__):
    importlib.import_module(f"impasto.models.analysis.{module.name}")

import numpy as np
import torch
from impasto.models.analysis import figures
from impasto.models.analysis.cli_common import Report

out = sys.argv[1]
x = [torch.rand(3, 12, 12) for _ in range(4)]
figs = [
    figures.panels_figure([[figures.Panel("rgb", x[0]), figures.Panel("map", x[1][0], "map"),
                            figures.Panel("overlay", x[2][0], "overlay", under=x[0])]], "title"),
    figures.grid_figure(x, ncols=2, title="grid", row_labels=["a", "b"]),
    figures.scatter_thumbnails(np.random.default_rng(0).random((4, 2)), x, ["a", "b", "c", "d"], "tsne"),
    figures.neighbors_figure(x, list("abcd"), [0], torch.tensor([[1]]), torch.tensor([[2]]), "nn"),
    figures.sized_figure([x[0][None], torch.rand(1, 3, 24, 24)], ["small", "large"], "sizes"),
]
for i, fig in enumerate(figs):
    figures.save_figure(fig, f"{out}/{i}.png")
class Args:
    output, method = f"{out}/report.png", "test"
Report().finish(Args, figs[0])

assert "matplotlib.pyplot" not in sys.modules, "pyplot was imported"
assert dict.copy(matplotlib.rcParams) == before, "rcParams changed"
print("ok")
"""


def test_figures_leave_matplotlib_state_alone(tmp_path):
    # A backend other than Agg, as a notebook or GUI program would have: switching it would show.
    env = {**os.environ, "MPLBACKEND": "svg"}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("ok")
    assert len(list(tmp_path.glob("*.png"))) == 6 and (tmp_path / "report.txt").is_file()
