"""Training throughput and stylisation latency, side by side in one run.

    python -m benchmarks.training [--train-steps 5] [--repeats 5] [--sizes 256 512 1024]

Training: images/s of full training steps (network forward/backward through the VGG19 perceptual
loss, Adam update) at 256 px, batch 4, for the default config. Inference: median latency of the
default network on one image in eager PyTorch and in onnxruntime (CPU), alternating runs on the same
inputs.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def training_throughput(steps: int, image_size: int = 256, batch_size: int = 4) -> float:
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from impasto.training.system import StylizationSystem

    with initialize_config_module("impasto.conf", version_base="1.3"):
        cfg = compose("train", overrides=["paths.output_dir=unused"])
    container = lambda node: OmegaConf.to_container(node, resolve=True)  # noqa: E731
    system = StylizationSystem(container(cfg.network), container(cfg.loss), container(cfg.styles),
                               container(cfg.optimizer), style_size=cfg.style_size)
    system.setup("fit")
    system.train()
    optimizer = system.configure_optimizers()
    batch = torch.rand(batch_size, 3, image_size, image_size)

    def step(i: int) -> None:
        weights = system.style_weights_for(batch_size, i)
        loss = system._losses(batch, weights)["total"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step(0)  # warm-up (allocations, kernel selection)
    start = time.perf_counter()
    for i in range(steps):
        step(i + 1)
    return steps * batch_size / (time.perf_counter() - start)


def inference_latency(sizes: list[int], repeats: int) -> list[tuple[int, float, float]]:
    import onnxruntime as ort

    from impasto.models.transformer import StylizationNetwork
    from impasto.training.export import export_onnx

    torch.manual_seed(0)
    network = StylizationNetwork().eval()  # the default (Johnson) architecture; weights don't affect speed
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(network, Path(tmp) / "johnson.onnx")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        rows = []
        for size in sizes:
            x = torch.rand(1, 3, size, size)
            feeds = {"image": x.numpy()}
            eager, onnx_times = [], []
            with torch.inference_mode():
                network(x), session.run(None, feeds)  # warm-up both
                for _ in range(repeats):  # alternate so drift affects both equally
                    t = time.perf_counter()
                    network(x)
                    eager.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    session.run(None, feeds)
                    onnx_times.append(time.perf_counter() - t)
            rows.append((size, statistics.median(eager), statistics.median(onnx_times)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    ips = training_throughput(args.train_steps)
    print(f"\ntraining (default config, 256x256, batch 4): {ips:.2f} images/s ({4 / ips:.2f} s/step)")
    print("\nstylisation latency, default network, 1 image (median of %d):" % args.repeats)
    print(f"{'size':>6} {'eager PyTorch':>15} {'onnxruntime':>13} {'speed-up':>9}")
    for size, eager, onnx_time in inference_latency(args.sizes, args.repeats):
        print(f"{size:>5}² {eager * 1000:>12.0f} ms {onnx_time * 1000:>10.0f} ms {eager / onnx_time:>8.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
