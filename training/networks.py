"""Build a stylization network from its config through an allow-list of known architectures.

Network configs also come from checkpoint files, which anyone can hand us. Passing such a config to
``hydra.utils.instantiate`` would call whatever ``_target_`` names (``os.system``, ``builtins.open``
...), so a network is only ever built by calling a known class directly with plain keyword data.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from impasto.models.transformer import StylizationNetwork

TARGET_KEY = "_target_"
# The name used in configs, first; older checkpoints store the class under the pre-namespace
# module path (`models.transformer`) and must keep loading.
NETWORKS: dict[str, type[StylizationNetwork]] = {
    "impasto.models.transformer.StylizationNetwork": StylizationNetwork,
    "models.transformer.StylizationNetwork": StylizationNetwork,
}
CANONICAL_NAMES = {cls: name for name, cls in reversed(list(NETWORKS.items()))}
PLAIN_SCALARS = (str, int, float, bool, type(None))


class NetworkConfigError(ValueError):
    """A network config that names an unknown architecture or holds more than plain data."""


def _check_plain(value: Any, where: str) -> None:
    if isinstance(value, PLAIN_SCALARS):
        return
    if isinstance(value, Mapping):
        if TARGET_KEY in value:
            raise NetworkConfigError(f"network config: nested {TARGET_KEY} at {where} is not allowed")
        for key, item in value.items():
            if not isinstance(key, str):
                raise NetworkConfigError(f"network config: non-string key {key!r} at {where}")
            _check_plain(item, f"{where}.{key}")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
        return
    raise NetworkConfigError(f"network config: {where} is a {type(value).__name__}, not plain data")


def network_class(config: Mapping[str, Any]) -> type[StylizationNetwork]:
    target = config.get(TARGET_KEY)
    if target not in NETWORKS:
        raise NetworkConfigError(f"network config: unknown architecture {target!r} "
                                 f"(known: {', '.join(NETWORKS)})")
    return NETWORKS[target]


def canonical_config(config: Mapping[str, Any] | DictConfig) -> dict[str, Any]:
    """A validated plain copy of ``config`` whose ``_target_`` is the current name of its class."""
    if isinstance(config, DictConfig):
        config = OmegaConf.to_container(config, resolve=True)
    if not isinstance(config, Mapping):
        raise NetworkConfigError(f"network config: expected a mapping, got {type(config).__name__}")
    cls = network_class(config)
    kwargs = {k: v for k, v in config.items() if k != TARGET_KEY}
    _check_plain(kwargs, "network")
    return {TARGET_KEY: CANONICAL_NAMES[cls], **kwargs}


def build_network(config: Mapping[str, Any] | DictConfig, **overrides: Any) -> StylizationNetwork:
    """The network ``config`` describes; ``overrides`` (e.g. ``num_styles``, ``style_names``) win
    over the config's own keys, as with ``instantiate(config, **overrides)``."""
    config = canonical_config(config)
    cls = network_class(config)
    kwargs = {**{k: v for k, v in config.items() if k != TARGET_KEY}, **overrides}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:  # an unknown keyword, or a value the class refuses
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise NetworkConfigError(f"network config does not fit {cls.__name__}: {reason}") from None
