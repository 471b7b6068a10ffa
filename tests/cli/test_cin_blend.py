"""A 3-style CIN network trained through `impasto train` on the embedded defaults, exported, and
run with a 50/50 blend lands between the two styles."""
import subprocess
import sys

import numpy as np
import pytest
import skimage.data
from PIL import Image

from tests.conftest import TINY


@pytest.fixture(scope="module")
def cin_model(tmp_path_factory):
    run = tmp_path_factory.mktemp("cin")
    train = subprocess.run(
        [sys.executable, "-m", "impasto.core.cli", "train", "experiment=cin_trio", *TINY, "network.norm=conditional_instance",
         "optimizer.lr=0.01", "trainer.max_steps=30", "trainer.val_check_interval=30", "callbacks.samples.every_n_steps=0",
         "callbacks.checkpoint.every_n_train_steps=30", f"hydra.run.dir={run}"],
        capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stderr[-2000:]
    assert f"run directory: {run}" in train.stdout
    model = run / "cin.onnx"
    export = subprocess.run([sys.executable, "-m", "impasto.core.cli", "export", run / "checkpoints" / "last.ckpt",
                             "-o", model], capture_output=True, text=True, timeout=300)
    assert export.returncode == 0, export.stderr[-2000:]
    return model


def test_half_half_blend_is_between_the_two_styles(cin_model, tmp_path):
    photo = tmp_path / "coffee.png"
    Image.fromarray(skimage.data.coffee()[::3, ::3]).save(photo)
    outputs = {}
    for spec in ("ihc", "hubble", "ihc:0.5,hubble:0.5"):
        out = tmp_path / f"{spec.replace(':', '_').replace(',', '-')}.png"
        result = subprocess.run([sys.executable, "-m", "impasto.core.cli", "stylize", photo, "-m", cin_model, "-s", spec,
                                 "-o", out], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        outputs[spec] = np.asarray(Image.open(out), dtype=np.float32)
    a, b, mid = outputs["ihc"], outputs["hubble"], outputs["ihc:0.5,hubble:0.5"]
    d_ab = np.abs(a - b).mean()
    print(f"mean abs difference (0-255): styles {d_ab:.2f}, blend-a {np.abs(mid - a).mean():.2f}, "
          f"blend-b {np.abs(mid - b).mean():.2f}")
    assert d_ab > 2.0  # the two styles were learned as different looks
    assert np.abs(mid - a).mean() < 0.8 * d_ab
    assert np.abs(mid - b).mean() < 0.8 * d_ab
