"""Rebuild a trained network from a checkpoint written by ``impasto train`` (no loss network)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate

from impasto.core.model import BUNDLED_MODELS
from impasto.models.transformer import StylizationNetwork

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


def load_network(path: str | Path) -> tuple[StylizationNetwork, dict[str, Any]]:
    """Returns ``(network in eval mode, info)``; info has style names/info and the config YAML."""
    path = resolve_checkpoint(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        # Our own checkpoints hold only tensors and plain containers; refuse anything else.
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path}: not a readable impasto checkpoint ({err})".splitlines()[0]) from None
    hparams, extra = ckpt.get("hyper_parameters"), ckpt.get("impasto")
    if not hparams or "network" not in hparams or not extra:
        raise CheckpointError(f"{path}: not an impasto training checkpoint (no network config)")
    names = extra["style_names"]
    network = instantiate(hparams["network"], num_styles=len(names), style_names=names)
    prefix = "network."
    state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    network.load_state_dict(state)
    network.eval()
    info = {"style_names": names, "style_info": extra.get("style_info", {}),
            "identity_style": extra.get("identity_style"),
            "config_yaml": hparams.get("config_yaml"), "global_step": ckpt.get("global_step"),
            "network_config": hparams["network"]}
    return network, info
