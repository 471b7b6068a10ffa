"""Training throughput and stylisation latency, side by side in one run.

    python -m benchmarks.training [--train-steps 5] [--train-size 256] [--batch-size 4] [--repeats 5]
        [--sizes 256 512 1024] [--override KEY=VALUE ...]

Training: images/s of full training steps (network forward/backward through the VGG19 perceptual
loss, Adam update) at ``--train-size`` px, batch ``--batch-size``, for the ``impasto train`` config
with Hydra-style ``--override``s (default: none; e.g. ``--override network=realtime_cin``). Inference:
median latency of the default network on one image in eager PyTorch and in onnxruntime (CPU, through
:class:`impasto.core.model.StyleModel` as ``impasto stylize`` runs it), alternating runs on the same
inputs.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra.errors import HydraException


def training_throughput(steps: int, image_size: int = 256, batch_size: int = 4, overrides: list[str] = ()) -> float:
    """Samples (photo x style stylisations) per second of full training steps on ``batch_size``
    random photos, as the training loop runs them (``StylizationSystem.training_losses``)."""
    from impasto.training.config import compose_config
    from impasto.training.train import build_system

    system = build_system(compose_config(["paths.output_dir=unused", *overrides]))
    system.setup("fit")
    system.train()
    optimizer = system.configure_optimizers()
    photos = torch.rand(batch_size, 3, image_size, image_size)

    def step(i: int) -> None:
        loss = system.training_losses(photos, i)["total"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step(0)  # warm-up (allocations, kernel selection)
    start = time.perf_counter()
    for i in range(steps):
        step(i + 1)
    return steps * batch_size * system.hparams.styles_per_photo / (time.perf_counter() - start)


def inference_latency(sizes: list[int], repeats: int) -> list[tuple[int, float, float]]:
    from impasto.core.model import StyleModel
    from impasto.models.transformer import StylizationNetwork
    from impasto.training.export import export_onnx

    torch.manual_seed(0)
    network = StylizationNetwork().eval()  # the default (Johnson) architecture; weights don't affect speed
    with tempfile.TemporaryDirectory() as tmp:
        model = StyleModel(export_onnx(network, Path(tmp) / "johnson.onnx"), device="cpu")
        rows = []
        for size in sizes:
            x = torch.rand(1, 3, size, size)
            image = x.numpy()
            eager, onnx_times = [], []
            with torch.inference_mode():
                network(x), model.run(image)  # warm-up both
                for _ in range(repeats):  # alternate so drift affects both equally
                    t = time.perf_counter()
                    network(x)
                    eager.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    model.run(image)
                    onnx_times.append(time.perf_counter() - t)
            rows.append((size, statistics.median(eager), statistics.median(onnx_times)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.training", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-steps", type=int, default=5, help="timed training steps (default %(default)s)")
    parser.add_argument("--train-size", type=int, default=256, help="training crop side (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=4, help="training batch (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="timed stylisation runs per size (default %(default)s)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024], help="stylisation image sides")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--override", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                        help="override of the train config, as on the impasto train command line (repeatable)")
    args = parser.parse_args(argv)
    if min(args.train_steps, args.train_size, args.batch_size, args.repeats, args.threads or 1, *args.sizes) < 1:
        parser.error("steps, sizes, batch size, repeats and threads must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    try:
        ips = training_throughput(args.train_steps, args.train_size, args.batch_size, args.overrides)
    except HydraException as err:
        print(f"benchmarks.training: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    config = " ".join(args.overrides) or "default config"
    print(f"\ntraining ({config}, {args.train_size}x{args.train_size}, batch {args.batch_size}): "
          f"{ips:.2f} images/s ({args.batch_size / ips:.2f} s/step)")
    print(f"\nstylisation latency, default network, 1 image (median of {args.repeats}):")
    print(f"{'size':>6} {'eager PyTorch':>15} {'onnxruntime':>13} {'speed-up':>9}")
    for size, eager, onnx_time in inference_latency(args.sizes, args.repeats):
        print(f"{size:>5}² {eager * 1000:>12.1f} ms {onnx_time * 1000:>10.1f} ms {eager / onnx_time:>8.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
