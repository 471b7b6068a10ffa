"""``impasto export``: checkpoint -> ONNX with metadata, checked against eager PyTorch."""
from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from impasto.core.cli import OneLineParser
from impasto.core.contract import (
    INPUT_IMAGE,
    INPUT_NORM_STATS,
    INPUT_STYLE_WEIGHTS,
    INPUT_USE_NORM_STATS,
    OUTPUT,
    OUTPUT_NORM_STATS,
    build_metadata,
    build_tiling_metadata,
    write_metadata,
)
from impasto.core.outputs import OutputClash, OutputPlan, atomic_path
from impasto.models.norm_stats import NormStatsNetwork, instance_norms, receptive_radius
from impasto.models.transformer import StylizationNetwork

# Odd, non-square, not multiples of 4, two batch sizes: the shapes most likely to break export.
PARITY_SHAPES = ((1, 3, 67, 93), (3, 3, 130, 61))
DEFAULT_TOLERANCE = 1e-4
OPSET = 17


class ExportError(RuntimeError):
    pass


def _example_inputs(network: StylizationNetwork, shape: Sequence[int], seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(*shape, generator=g)
    if not network.conditional:
        return (image,)
    weights = torch.rand(shape[0], network.num_styles, generator=g)
    return image, weights / weights.sum(1, keepdim=True)


def export_onnx(network: StylizationNetwork, path: str | Path, *, training_config: str | None = None,
                style_info: Mapping[str, Any] | None = None, identity_style: str | None = None) -> Path:
    """Write ``network`` as ONNX with dynamic batch/height/width and impasto's metadata.

    The file is written atomically: until it is complete, ``path`` keeps what it held before.
    The caller's network is left in the mode it was given.
    Instance-norm networks also get the frozen-statistics capability of the contract (tiling).
    """
    path = Path(path)
    meta = build_metadata(network.style_names, training_config=training_config, style_info=style_info,
                          identity_style=identity_style)
    with atomic_path(path) as temp:
        _write_onnx(network, temp, meta)
    return path


def _write_onnx(network: StylizationNetwork, path: Path, meta: dict[str, str]) -> None:
    import onnx
    from onnx import numpy_helper

    was_training = network.training
    network.eval()
    tiled = bool(instance_norms(network))
    try:
        inputs = _example_inputs(network, PARITY_SHAPES[0])
        names = [INPUT_IMAGE, INPUT_STYLE_WEIGHTS][: len(inputs)]
        outputs = [OUTPUT]
        axes = {INPUT_IMAGE: {0: "batch", 2: "height", 3: "width"}, OUTPUT: {0: "batch", 2: "height", 3: "width"}}
        if network.conditional:
            axes[INPUT_STYLE_WEIGHTS] = {0: "batch"}
        module: torch.nn.Module = network
        if tiled:
            module = NormStatsNetwork(network).eval()
            radius, align = receptive_radius(network)
            meta = {**meta, **build_tiling_metadata(module.layers, radius, align)}
            defaults = {INPUT_NORM_STATS: torch.zeros(1, module.num_stats), INPUT_USE_NORM_STATS: torch.tensor(False)}
            if not network.conditional:
                inputs = (*inputs, None)
            inputs = (*inputs, *defaults.values())
            names += list(defaults)
            outputs.append(OUTPUT_NORM_STATS)
            axes[INPUT_NORM_STATS] = {0: "stats_batch"}
            axes[OUTPUT_NORM_STATS] = {0: "batch"}
        with torch.no_grad(), warnings.catch_warnings():
            # The exporter's notes on constant folding and instance-norm stats are expected here.
            warnings.simplefilter("ignore", UserWarning)
            # The TorchScript exporter handles the dynamic spatial crop and instance norm reliably.
            torch.onnx.export(module, inputs, str(path), input_names=names, output_names=outputs,
                              dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    finally:
        network.train(was_training)
    model = onnx.load(str(path))
    if tiled:
        # Defaults make the statistics inputs optional: onnxruntime lists them as overridable
        # initializers, so the graph keeps the plain contract for readers that do not tile.
        model.graph.initializer.extend(numpy_helper.from_array(value.numpy(), name)
                                       for name, value in defaults.items())
    write_metadata(model, meta)
    model.producer_name = "impasto"
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def parity_check(network: StylizationNetwork, path: str | Path,
                 shapes: Sequence[Sequence[int]] = PARITY_SHAPES) -> list[tuple[tuple[int, ...], float]]:
    """Max abs difference between onnxruntime and eager PyTorch for each input shape."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # not the note on the statistics inputs' defaults (by design)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    was_training = network.training
    network.eval()
    results = []
    try:
        for i, shape in enumerate(shapes):
            inputs = _example_inputs(network, shape, seed=i + 1)
            with torch.no_grad():
                expected = network(*inputs).numpy()
            feeds = {INPUT_IMAGE: inputs[0].numpy()}
            if network.conditional:
                feeds[INPUT_STYLE_WEIGHTS] = inputs[1].numpy()
            got = session.run([OUTPUT], feeds)[0]
            if got.shape != expected.shape:
                raise ExportError(f"ONNX output shape {got.shape} != PyTorch {expected.shape} for input {shape}")
            results.append((tuple(shape), float(np.abs(got - expected).max())))
    finally:
        network.train(was_training)
    return results


class _Untrusted(Exception):
    """The export differs from PyTorch beyond the tolerance: it is not put in place."""


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="impasto export", description=__doc__)
    parser.add_argument("checkpoint", help="a Lightning checkpoint written by `impasto train` (e.g. last.ckpt)")
    parser.add_argument("-o", "--output", help="ONNX file to write (default: next to the checkpoint)")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help="max abs difference allowed between onnxruntime and PyTorch (default %(default)g)")
    parser.add_argument("--network-ckpt", metavar="PATH",
                        help="also write a network-only checkpoint (no optimizer state) for init_from")
    args = parser.parse_args(argv)
    from impasto.training.checkpoint import (
        CheckpointError,
        load_network,
        resolve_checkpoint,
        save_network_checkpoint,
    )

    def fail(message: str) -> int:
        print(f"impasto export: {message}", file=sys.stderr)
        return 2

    # NaN compares false with everything, so `worst > nan` would pass any export: refuse it.
    if not (math.isfinite(args.tolerance) and args.tolerance >= 0):
        return fail(f"--tolerance must be a finite number >= 0, got {args.tolerance:g}")
    source = resolve_checkpoint(args.checkpoint)
    output = Path(args.output) if args.output else source.with_suffix(".onnx")
    # Never write over the checkpoint being exported, nor one output over the other.
    plan = OutputPlan([source])
    try:
        for target in (output, args.network_ckpt):
            if target is not None:
                plan.claim(target)
    except OutputClash as err:
        return fail(str(err))
    try:
        network, info = load_network(source)
    except CheckpointError as err:
        return fail(str(err))
    target = output
    try:
        with atomic_path(output) as temp:
            export_onnx(network, temp, training_config=info.get("config_yaml"), style_info=info.get("style_info"),
                        identity_style=info.get("identity_style"))
            print(f"onnx.checker: ok ({output})")
            worst = 0.0
            for shape, diff in parity_check(network, temp):
                print(f"onnxruntime vs PyTorch, input {'x'.join(map(str, shape))}: max abs diff {diff:.2e}")
                worst = max(worst, diff)
            if worst > args.tolerance:
                raise _Untrusted(f"ONNX output differs from PyTorch by {worst:.2e} (> tolerance {args.tolerance:g}); "
                                 f"the exported model is not trustworthy and was not written to {output}")
        print(f"exported {output} (styles: {', '.join(network.style_names)})")
        if args.network_ckpt:
            target = Path(args.network_ckpt)
            with atomic_path(target) as temp:
                save_network_checkpoint(source, temp)
            print(f"network-only checkpoint: {target}")
    except _Untrusted as err:
        print(f"impasto export: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        return fail(f"{target}: cannot write ({err.strerror or err})")
    return 0
