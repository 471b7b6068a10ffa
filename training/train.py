"""``impasto train``: a thin Hydra entry point around :func:`train`, which tests call directly."""
from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from hydra.errors import HydraException, InstantiationException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from impasto.training.config import CONFIG_MODULE, CONFIG_NAME, HYDRA_VERSION_BASE

log = logging.getLogger(__name__)


def instantiate_group(group: DictConfig | None) -> list[Any]:
    from hydra.utils import instantiate

    objects = []
    for name, spec in (group or {}).items():
        if spec is None:
            continue
        if name == "tensorboard":
            try:
                import tensorboard  # noqa: F401  (optional dependency)
            except ImportError:
                log.info("tensorboard not installed: logging to CSV only")
                continue
        objects.append(instantiate(spec))
    return objects


def kept_styles(info: dict[str, Any], new_styles: list[dict]) -> list[dict]:
    """The styles of an ``init_from`` checkpoint, kept as trained (``keep: true``) unless the new
    config retrains one of the same name."""
    retrained = {s["name"] for s in new_styles}
    return [kept_spec(info, n) for n in info["style_names"] if n not in retrained]


def kept_spec(info: dict[str, Any], name: str) -> dict:
    """The style config of the checkpoint's style ``name``, kept as trained, its role and info included."""
    return {"name": name, "keep": True, "identity": name == info.get("identity_style"),
            "info": info.get("style_info", {}).get(name, {})}


def as_kept(info: dict[str, Any], spec: dict, source: str) -> dict:
    """A style the config lists with ``keep: true`` (e.g. to re-tune the others at new weights) is
    the ``init_from`` checkpoint's as trained, role included: whether it is the identity style comes
    from the checkpoint, so that re-tuning other styles cannot drop the identity from the model."""
    name = spec.get("name")
    if name not in info["style_names"]:
        raise ValueError(f"style {name!r} is `keep: true`, but {source} has no style of that name "
                         f"(it has {', '.join(info['style_names'])})")
    kept = kept_spec(info, name)
    return {**spec, "identity": kept["identity"], "info": spec.get("info") or kept["info"]}


def _keep_csv_history(loggers: list[Any]) -> None:
    """Lightning's CSV logger rewrites ``metrics.csv`` from what it logged in this process, so a
    resumed run would erase the log from before the resume: set it aside as
    ``metrics.until-<time>.csv`` (``python -m impasto.training.plot_metrics`` merges them)."""
    from datetime import datetime

    from lightning.pytorch.loggers import CSVLogger

    for logger in loggers:
        metrics = Path(logger.log_dir) / "metrics.csv" if isinstance(logger, CSVLogger) else None
        if metrics is not None and metrics.is_file():
            kept = metrics.with_name(f"metrics.until-{datetime.now():%Y%m%d-%H%M%S}.csv")
            metrics.rename(kept)
            log.info("resuming: the metrics logged so far are kept in %s", kept)


def missing_keys(cfg: DictConfig) -> list[str]:
    """Dotted keys whose value is still ``???`` (mandatory, e.g. ``data.root`` of ``data=folder``)."""
    def walk(node: Any, prefix: str) -> list[str]:
        if isinstance(node, dict):
            return [k for key, value in node.items() for k in walk(value, f"{prefix}{key}.")]
        if isinstance(node, list):
            return [k for i, value in enumerate(node) for k in walk(value, f"{prefix}{i}.")]
        return [prefix[:-1]] if node == "???" else []

    return walk(OmegaConf.to_container(cfg, resolve=False, throw_on_missing=False), "")


@dataclass
class Run:
    """What :func:`train` fits, built from a config: nothing has run yet (tests build every preset)."""
    datamodule: Any
    system: Any
    trainer: Any


def build_system(cfg: DictConfig) -> Any:
    """The LightningModule of ``cfg``; with ``init_from``, the checkpoint's architecture and styles
    (kept as trained) come first and its weights are copied in."""
    from impasto.training.checkpoint import load_network
    from impasto.training.system import StylizationSystem

    styles = OmegaConf.to_container(cfg.styles, resolve=True)
    source = None
    if cfg.get("init_from"):
        source, info = load_network(cfg.init_from)
        styles = kept_styles(info, styles) + [as_kept(info, s, cfg.init_from) if s.get("keep") else s for s in styles]
        # The weights only fit the architecture they were trained with, whatever `network=` says
        # (also in the config saved with the run).
        with open_dict(cfg):
            cfg.network = {k: v for k, v in info["network_config"].items() if k not in ("num_styles", "style_names")}
    system = StylizationSystem(
        network=OmegaConf.to_container(cfg.network, resolve=True),
        loss=OmegaConf.to_container(cfg.loss, resolve=True),
        styles=styles,
        optimizer=OmegaConf.to_container(cfg.optimizer, resolve=True),
        style_size=cfg.style_size,
        config_yaml=OmegaConf.to_yaml(cfg, resolve=True),
        trainable=cfg.trainable,
        styles_per_photo=cfg.styles_per_photo,
        channels_last=cfg.channels_last,
        stability=OmegaConf.to_container(cfg.stability, resolve=True) if cfg.get("stability") else None,
    )
    if source is not None:
        from impasto.models.transformer import transfer_weights

        new = transfer_weights(system.network, source)
        log.info("initialised network from %s; new styles: %s", cfg.init_from, ", ".join(new) or "none")
    return system


def build_run(cfg: DictConfig) -> Run:
    from hydra.utils import instantiate

    missing = missing_keys(cfg)
    if missing:
        raise ValueError(f"missing config value(s): {', '.join(missing)} (set on the command line: {missing[0]}=...)")
    datamodule = instantiate(cfg.data)
    system = build_system(cfg)
    loggers = instantiate_group(cfg.get("logger"))
    trainer = instantiate(cfg.trainer, callbacks=instantiate_group(cfg.get("callbacks")), logger=loggers or False)
    return Run(datamodule, system, trainer)


def _stopped_by(trainer: Any) -> str | None:
    """The signal (``SIGINT``, ``SIGTERM``) that stopped training early, if one did."""
    from impasto.training.callbacks import SaveOnInterrupt

    signals = [cb.stopped_by for cb in trainer.callbacks if isinstance(cb, SaveOnInterrupt) and cb.stopped_by]
    return signals[0].name if signals else None


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train from a composed config; returns the run directory and checkpoint paths, and
    ``interrupted``: the signal's name when one stopped the run early (see ``SaveOnInterrupt``)."""
    import lightning as L
    import torch

    from impasto.training.checkpoint import check_resumable

    if cfg.get("ckpt_path"):
        check_resumable(cfg.ckpt_path)  # before minutes of set-up, and one line rather than a traceback
    L.seed_everything(cfg.seed, workers=True)
    run = build_run(cfg)
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.get("ckpt_path"):
        _keep_csv_history(run.trainer.loggers)
    with warnings.catch_warnings():
        # The training data loader does resume mid-epoch (ResumableSampler), unknown to Lightning.
        warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch")
        run.trainer.fit(run.system, datamodule=run.datamodule, ckpt_path=cfg.get("ckpt_path"))
    # Files that only fail when decoded are warned about one by one as they happen, inside the
    # DataLoader workers, whose counts the main process cannot see; only the scan's count is summed.
    skipped = getattr(run.datamodule, "skipped", []) or []
    if skipped:
        log.warning("content images skipped: %d unreadable at scan", len(skipped))
    last = run_dir / "checkpoints" / "last.ckpt"
    step = run.trainer.global_step
    if not step and last.is_file():  # ddp_spawn trains in child processes: ask the checkpoint
        step = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
    return {"run_dir": run_dir, "last_ckpt": last, "global_step": step, "interrupted": _stopped_by(run.trainer),
            "metrics": {k: float(v) for k, v in run.trainer.callback_metrics.items()}}


@hydra.main(version_base=HYDRA_VERSION_BASE, config_path=f"pkg://{CONFIG_MODULE}", config_name=CONFIG_NAME)
def _hydra_entry(cfg: DictConfig) -> None:
    import lightning
    import torch

    from impasto.core.errors import ImageError
    from impasto.models.features import WeightsUnavailableError
    from impasto.training.checkpoint import CheckpointError

    # Process-wide, so set here by the command and not by `train()`, which tests and tools call.
    torch.set_float32_matmul_precision(cfg.float32_matmul_precision)
    # `import lightning` gives its logger a stderr handler of its own; Hydra's logging already shows
    # those records (console and run log), so stderr keeps only warnings and errors.
    logging.getLogger(lightning.__name__).handlers.clear()
    try:
        result = train(cfg)
    except (ImageError, CheckpointError, WeightsUnavailableError, FileNotFoundError, ValueError,
            InstantiationException) as err:
        # Configuration and input problems: one clear line, no traceback. Hydra wraps errors raised
        # while building a config object; the cause is what the user needs to read.
        cause = err.__cause__ if isinstance(err, InstantiationException) and err.__cause__ else err
        print(f"impasto train: {cause}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"run directory: {result['run_dir']}")
    print(f"checkpoint: {result['last_ckpt']} (step {result['global_step']})")
    if result["interrupted"]:
        import signal

        print(f"impasto train: stopped by {result['interrupted']} at step {result['global_step']}; resume with "
              f"ckpt_path={result['last_ckpt']}", file=sys.stderr)
        raise SystemExit(128 + signal.Signals[result["interrupted"]])


def override_error(args: Sequence[str]) -> str | None:
    """Why Hydra would refuse these command-line arguments (a malformed override, an unknown key or
    group option), as one line; None when they compose. Hydra reports these itself in several lines
    and exits 1; multirun sweeps and other config sources are left to it."""
    from hydra._internal.utils import get_args_parser

    from impasto.training.config import compose_config

    parsed, _ = get_args_parser().parse_known_args(list(args))
    if parsed.multirun or parsed.config_path or parsed.config_dir or parsed.config_name:
        return None
    try:
        compose_config(parsed.overrides)
    except (HydraException, OmegaConfBaseException) as err:
        return one_line(str(err)) or type(err).__name__
    return None


def one_line(message: str) -> str:
    """Hydra's multi-line error as one line: a line ending in ``:`` takes the lines under it as a
    list; the search path and the links to the docs are left out."""
    parts: list[str] = []
    listing = False
    for line in (raw.strip() for raw in message.splitlines()):
        if line.startswith("Config search path"):
            break
        if not line or line.startswith(("See https://", "full_key:", "object_type=")):
            continue
        if listing:
            parts[-1] += (" " if parts[-1].endswith(":") else ", ") + line
        else:
            parts.append(line)
            listing = line.endswith(":")
    return " ".join(p if p.endswith((".", ":")) or i == len(parts) - 1 else p + ";" for i, p in enumerate(parts))


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if problem := override_error(args):
        print(f"impasto train: {problem}", file=sys.stderr)
        return 2
    # Hydra reads its overrides from sys.argv only; put the caller's back afterwards.
    saved = sys.argv
    sys.argv = ["impasto train", *args]
    try:
        _hydra_entry()
    finally:
        sys.argv = saved
    return 0
