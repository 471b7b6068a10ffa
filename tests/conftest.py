"""Test-wide fixtures. Tests never touch the network: any connection attempt to a non-loopback
address fails loudly (loopback stays open for the HTTP service tests)."""
from __future__ import annotations

import ipaddress
import socket

import pytest


class NetworkAccessError(RuntimeError):
    pass


def _is_loopback(address) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guard(address):
        if not _is_loopback(address):
            raise NetworkAccessError(f"test tried to reach the network: {address!r}")

    def connect(self, address):
        guard(address)
        return real_connect(self, address)

    def connect_ex(self, address):
        guard(address)
        return real_connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if host not in (None, "localhost") and not _is_loopback((host,)):
            raise NetworkAccessError(f"test tried to resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    real_getaddrinfo = socket.getaddrinfo
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield


# --- training fixtures shared by training/export/CLI tests ------------------------------------

def compose_train_config(output_dir, overrides=()):
    """The real `impasto train` config, composed and pointed at ``output_dir``."""
    from impasto.training.config import compose_config

    return compose_config([f"paths.output_dir={output_dir}", *overrides])


TINY = ["network=tiny", "data.image_size=64", "data.val_size=64", "style_size=96",
        "callbacks.progress=null", "trainer.enable_model_summary=false", "trainer.log_every_n_steps=1"]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A tiny single-style network trained for 8 steps through the real training code."""
    from impasto.training.train import train

    out = tmp_path_factory.mktemp("tiny_run")
    return train(compose_train_config(out, [*TINY, "trainer.max_steps=8", "trainer.val_check_interval=4",
                                            "callbacks.checkpoint.every_n_train_steps=4",
                                            "callbacks.samples.every_n_steps=4"]))


@pytest.fixture(scope="session")
def tiny_onnx(tiny_run, tmp_path_factory):
    from impasto.training.checkpoint import load_network
    from impasto.training.export import export_onnx

    network, info = load_network(tiny_run["last_ckpt"])
    return export_onnx(network, tmp_path_factory.mktemp("onnx") / "tiny.onnx",
                       training_config=info["config_yaml"], style_info=info["style_info"])
