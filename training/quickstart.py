"""``impasto quickstart``: train on the embedded defaults, export to ONNX, stylise a photo.

Everything runs offline: scikit-image's bundled photos are the content, the embedded VGG19 is the
loss network. Extra arguments are Hydra overrides, as for ``impasto train``.
"""
from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    from hydra import compose, initialize_config_module

    from serving.model import StyleModel
    from serving.stylize import stylize_file
    from training.checkpoint import load_network
    from training.export import export_onnx, parity_check
    from training.images import load_pil
    from training.train import train

    run_dir = Path("outputs") / "quickstart" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    with initialize_config_module("conf", version_base="1.3"):
        cfg = compose("train", overrides=[f"paths.output_dir={run_dir}", *argv])
    print(f"[1/3] training {cfg.network._target_.rsplit('.', 1)[-1]} on scikit-image photos "
          f"({cfg.trainer.max_steps} steps, {cfg.data.image_size} px) -> {run_dir}")
    result = train(cfg)

    print("[2/3] exporting to ONNX")
    network, info = load_network(result["last_ckpt"])
    model_path = export_onnx(network, run_dir / "model.onnx", training_config=info["config_yaml"],
                             style_info=info["style_info"], identity_style=info["identity_style"])
    worst = max(diff for _, diff in parity_check(network, model_path))
    print(f"      {model_path} (onnxruntime vs PyTorch max abs diff {worst:.1e})")

    print("[3/3] stylising an example photo with onnxruntime")
    photo = run_dir / "example_input.png"
    load_pil("skimage:chelsea").save(photo)
    model = StyleModel(model_path, device="cpu")
    stylized = stylize_file(model, photo, model.style_weights(None), None, run_dir / "example_stylized.png")
    samples = sorted((run_dir / "samples").glob("*.png"))
    print()
    print(f"run directory:    {run_dir}")
    print(f"checkpoint:       {result['last_ckpt']}")
    print(f"ONNX model:       {model_path}")
    print(f"stylised example: {stylized}")
    if samples:
        print(f"training samples: {samples[-1]}")
    print(f"next: impasto stylize YOUR_PHOTO.jpg -m {model_path}")
    return 0
