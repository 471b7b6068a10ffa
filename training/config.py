"""Where the ``impasto train`` configs live, and composing them outside the command line (tests,
``impasto quickstart --train``, benchmarks) exactly as ``impasto train`` does."""
from __future__ import annotations

from collections.abc import Sequence

from omegaconf import DictConfig

CONFIG_MODULE = "impasto.conf"
CONFIG_NAME = "train"
HYDRA_VERSION_BASE = "1.3"


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """The ``train`` config with Hydra command-line style ``overrides`` (``key=value``,
    ``group=option``). Interpolations of Hydra's runtime (``${hydra:...}``) are not available
    here: set ``paths.output_dir`` when the config will be used to train."""
    from hydra import compose, initialize_config_module

    with initialize_config_module(CONFIG_MODULE, version_base=HYDRA_VERSION_BASE):
        return compose(CONFIG_NAME, overrides=list(overrides))
