"""Rebuild a trained network from a checkpoint written by ``impasto train`` (no loss network)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from impasto.core.model import BUNDLED_MODELS
from impasto.models.transformer import StylizationNetwork
from impasto.training.networks import NetworkConfigError, build_network, canonical_config

# The network-only checkpoint of the bundled model, next to its ONNX export: `init_from=bundled`.
BUNDLED_CHECKPOINT = BUNDLED_MODELS / "impasto-styles.ckpt"
NETWORK_KEYS = ("hyper_parameters", "impasto", "state_dict", "global_step")


class CheckpointError(RuntimeError):
    pass


def resolve_checkpoint(ref: str | Path) -> Path:
    """``bundled`` names the shipped model's checkpoint; anything else is a path."""
    return BUNDLED_CHECKPOINT if str(ref) == "bundled" else Path(ref).expanduser()


def save_network_checkpoint(source: str | Path, target: str | Path) -> Path:
    """Copy of a training checkpoint without optimizer or loop state: what ``load_network`` and
    ``init_from`` need, a fraction of the size (for shipping)."""
    ckpt = torch.load(Path(source), map_location="cpu", weights_only=True)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: ckpt[k] for k in NETWORK_KEYS if k in ckpt}, target)
    return target


def _read(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        # Our own checkpoints hold only tensors and plain containers; refuse anything else.
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path}: not a readable impasto checkpoint ({err})".splitlines()[0]) from None


def check_resumable(path: str | Path) -> None:
    """One-line :class:`CheckpointError` unless ``path`` is a whole training checkpoint (readable,
    with the loop and optimizer state that resuming needs); whether its weights fit the configured
    network is checked when Lightning loads it."""
    path = Path(path).expanduser()
    ckpt = _read(path)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: not an impasto training checkpoint")
    if "loops" not in ckpt or "optimizer_states" not in ckpt:
        raise CheckpointError(f"{path}: holds weights but no training state, so it cannot be resumed: "
                              "start from its weights with init_from= instead")


def load_network(path: str | Path) -> tuple[StylizationNetwork, dict[str, Any]]:
    """Returns ``(network in eval mode, info)``; info has style names/info and the config YAML."""
    path = resolve_checkpoint(path)
    ckpt = _read(path)
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    extra = ckpt.get("impasto") if isinstance(ckpt, dict) else None
    if not isinstance(hparams, dict) or "network" not in hparams or not isinstance(extra, dict):
        raise CheckpointError(f"{path}: not an impasto training checkpoint (no network config)")
    names = extra.get("style_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise CheckpointError(f"{path}: not an impasto training checkpoint (no style names)")
    try:
        # Only known architectures, built from plain data: never what the file says to call.
        network_config = canonical_config(hparams["network"])
        network = build_network(network_config, num_styles=len(names), style_names=names)
    except NetworkConfigError as err:
        raise CheckpointError(f"{path}: {err}") from None
    if not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(f"{path}: not an impasto training checkpoint (no weights)")
    prefix = "network."
    state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    try:
        network.load_state_dict(state)
    except RuntimeError as err:  # missing, unexpected or mis-shaped weights
        raise CheckpointError(f"{path}: the weights do not fit the network config "
                              f"({' '.join(str(err).split())[:300]})") from None
    network.eval()
    info = {"style_names": names, "style_info": extra.get("style_info", {}),
            "identity_style": extra.get("identity_style"),
            "config_yaml": hparams.get("config_yaml"), "global_step": ckpt.get("global_step"),
            "network_config": network_config}
    return network, info
