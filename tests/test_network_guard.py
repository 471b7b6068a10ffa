import socket
import urllib.request

import pytest

from tests.conftest import NetworkAccessError


def test_download_attempt_fails_loudly():
    with pytest.raises(NetworkAccessError):
        urllib.request.urlopen("https://download.pytorch.org/models/vgg19-dcbb9e9d.pth", timeout=2)


def test_loopback_is_allowed():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    try:
        client = socket.create_connection(server.getsockname(), timeout=2)
        client.close()
    finally:
        server.close()
