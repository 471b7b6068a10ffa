"""Training throughput of a preset, this tree against an earlier commit, side by side in one run.

    python -m benchmarks.training_speed [--baseline-ref 6a17a00] [--experiment bundled_cin]
        [--rounds 3] [--steps 3] [--flop-steps 6] [--styles-dir ../shared/data/styles]
        [--override KEY=VALUE ...]

"Old": the ``--baseline-ref`` commit (default: the tree before the training speed-ups) checked out
in a temporary git worktree, its own ``benchmarks.training.training_throughput`` on its own
``experiment=...`` preset. "New": the same function of this tree on this tree's preset. Each round
runs one old and one new process in turn (a fresh process each, alternating so that drift on a
shared machine hits both); each times ``--steps`` full training steps (network forward and
backward through the loss network, optimizer update) after one warm-up step, on random photos at the
preset's crop size. Printed: samples (photo x style stylisations) per second per round, their
medians and the ratio new / old.

``--flop-steps K`` also counts each tree's work: the floating-point operations of K training steps
(convolutions and matrix products, forward and backward, as ``torch.utils.flop_counter`` counts
them; element-wise work is not counted) per sample, so the speed-up can be split into less work
and faster work. K steps after the first two; a multiple of the style cycle (6 steps cover the
bundled presets' cycles) makes the count the preset's average step.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_BASELINE = "6a17a00"  # the last commit before the training speed-ups
# Where each installed subpackage lives in a source tree (pyproject.toml's package-dir).
PACKAGE_DIRS = {"core": "serving/core", "models": "models", "training": "training", "serving": "serving",
                "conf": "conf"}
# Run in each tree: its own config decides the batch and crop size; its own training_throughput
# returns samples (photo x style stylisations) per second.
PROBE = """
import json, sys
from impasto.training.config import compose_config
from benchmarks.training import training_throughput
steps, flop_steps, overrides = json.loads(sys.argv[1])
cfg = compose_config(["paths.output_dir=unused", *overrides])
args = (cfg.data.image_size, cfg.data.batch_size, overrides)
result = {"photos": cfg.data.batch_size, "styles_per_photo": cfg.get("styles_per_photo", 1),
          "size": cfg.data.image_size}
if flop_steps:
    from torch.utils.flop_counter import FlopCounterMode

    def counted(n):  # set-up (style targets) + a warm-up step + n steps
        with FlopCounterMode(display=False) as counter:
            training_throughput(n, *args)
        return counter.get_total_flops()

    # The difference leaves only flop_steps training steps, whatever the set-up costs.
    result["flops_per_sample"] = (counted(1 + flop_steps) - counted(1)) / (
        flop_steps * result["photos"] * result["styles_per_photo"])
else:
    result["samples_per_s"] = training_throughput(steps, *args)
print("RESULT " + json.dumps(result))
"""


class BenchmarkError(Exception):
    """A one-line reason the benchmark cannot run."""


def import_shim(tree: Path, root: Path) -> Path:
    """A folder that makes ``import impasto`` load ``tree``'s sources (as the editable install
    maps them), placed first on ``PYTHONPATH`` of the process that runs the old tree."""
    package = root / "impasto"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for name, folder in PACKAGE_DIRS.items():
        (package / name).symlink_to(tree / folder, target_is_directory=True)
    return root


def checkout(ref: str, where: Path) -> Path:
    result = subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(where), ref],
                            capture_output=True, text=True)
    if result.returncode:
        reason = (result.stderr.strip().splitlines() or ["git worktree failed"])[-1]
        raise BenchmarkError(f"cannot check out {ref!r}: {reason}")
    return where


def measure(tree: Path, pythonpath: list[Path], steps: int, overrides: list[str], flop_steps: int = 0) -> dict:
    """One fresh process timing ``tree``'s training steps (or, with ``flop_steps``, counting the
    work of that many); its result dict."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(p) for p in pythonpath))
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps([steps, flop_steps, overrides])], cwd=tree, env=env,
                            capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if result.returncode or not lines:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchmarkError(f"training step in {tree} failed: {tail}")
    return json.loads(lines[-1][len("RESULT "):])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.training_speed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-ref", default=DEFAULT_BASELINE, help="the old tree (default %(default)s)")
    parser.add_argument("--experiment", default="bundled_cin", help="preset of both trees (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="old/new process pairs (default %(default)s)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per process (default %(default)s)")
    parser.add_argument("--flop-steps", type=int, default=0, metavar="K",
                        help="also count each tree's GFLOP per sample over K steps (default: off)")
    parser.add_argument("--styles-dir", type=Path, default=Path("../shared/data/styles"),
                        help="the preset's style images (default %(default)s)")
    parser.add_argument("--override", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                        help="extra override for both trees, e.g. style_size=64 (repeatable)")
    args = parser.parse_args(argv)
    if min(args.rounds, args.steps) < 1 or args.flop_steps < 0:
        parser.error("--rounds and --steps must be >= 1, --flop-steps >= 0")
    try:
        return run(args)
    except BenchmarkError as err:
        print(f"benchmarks.training_speed: {err}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    styles_dir = args.styles_dir.expanduser().resolve()
    if not styles_dir.is_dir():
        raise BenchmarkError(f"no style images at {styles_dir} (--styles-dir)")
    # ++: set whether or not the preset reads styles_dir (the smoke preset does not).
    overrides = [f"experiment={args.experiment}", f"++styles_dir={styles_dir}", *args.overrides]
    with tempfile.TemporaryDirectory() as tmp:
        old_tree = checkout(args.baseline_ref, Path(tmp) / "baseline")
        try:
            shim = import_shim(old_tree, Path(tmp) / "shim")
            trees = ((old_tree, [shim, old_tree]), (REPO, [REPO]))
            rounds = [tuple(measure(tree, path, args.steps, overrides) for tree, path in trees)
                      for _ in range(args.rounds)]
            work = [measure(tree, path, 1, overrides, args.flop_steps)["flops_per_sample"]
                    for tree, path in trees] if args.flop_steps else None
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old_tree)],
                           capture_output=True)
    old, new = rounds[0]
    print(f"training throughput, experiment={args.experiment}, {args.steps} timed steps per process")
    for name, what, r in (("old", args.baseline_ref, old), ("new", "this tree", new)):
        print(f"  {name}: {what}, {r['photos']} photos x {r['styles_per_photo']} styles per step, "
              f"{r['size']}x{r['size']} crops")
    rows = [(o["samples_per_s"], n["samples_per_s"]) for o, n in rounds]
    print(f"{'round':>5}  {'old samples/s':>13}  {'new samples/s':>13}  {'new/old':>7}")
    for i, (before, after) in enumerate(rows, 1):
        print(f"{i:>5}  {before:>13.3f}  {after:>13.3f}  {after / before:>6.2f}x")
    old_median, new_median = (statistics.median(column) for column in zip(*rows))
    print(f"{'median':>6} {old_median:>13.3f}  {new_median:>13.3f}  {new_median / old_median:>6.2f}x")
    if work:
        old_work, new_work = work
        print(f"work per sample ({args.flop_steps} steps, convolutions and matrix products, forward and backward): "
              f"old {old_work / 1e9:.1f} GFLOP, new {new_work / 1e9:.1f} GFLOP, old/new {old_work / new_work:.2f}x")
        speed = new_median / old_median * new_work / old_work
        print(f"counted FLOP/s new/old: {speed:.2f}x (the rest of the speed-up is less work)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
