"""Connection-level behaviour of a real uvicorn as ``impasto serve`` runs it: raw sockets on loopback."""
from __future__ import annotations

import json
import logging
import socket
import time

import httpx
import pytest

from impasto.serving.app import create_app
from tests.serving.helpers import live_server, make_settings

TIMEOUT = 0.5  # header and keep-alive timeouts of the server under test, in seconds


@pytest.fixture(scope="module")
def server(model_dir):
    # log_config=None: uvicorn's loggers propagate to the root logger, where caplog sees them.
    with live_server(create_app(make_settings(model_dir, header_timeout_s=TIMEOUT, keep_alive_timeout_s=TIMEOUT)),
                     log_config=None) as base:
        yield base


def connect(base: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])), timeout=10)
    return sock


def read_until_closed(sock: socket.socket, limit: float = 5.0) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    start = time.monotonic()
    sock.settimeout(limit)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data, time.monotonic() - start


def json_body(answer: bytes) -> dict:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    return json.loads(body)


def test_a_connection_that_sends_nothing_is_closed(server):
    with connect(server) as sock:
        data, waited = read_until_closed(sock)
    assert data == b"" and TIMEOUT * 0.8 < waited < TIMEOUT + 2


def test_incomplete_headers_get_a_408_and_the_connection_closes(server):
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        data, waited = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 408") and waited < TIMEOUT + 2
    assert json_body(data)["error"] == "timeout"


def test_trickled_headers_do_not_extend_the_deadline(server):
    with connect(server) as sock:
        start = time.monotonic()
        try:
            for byte in b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100:
                sock.sendall(bytes([byte]))
                time.sleep(0.05)
        except OSError:  # the server closed the connection while we were still sending: what we want
            pass
        data, _ = read_until_closed(sock)
    assert time.monotonic() - start < TIMEOUT + 2
    assert data.startswith(b"HTTP/1.1 408")


def test_idle_keep_alive_connection_is_closed_and_requests_in_time_are_served(server):
    with connect(server) as sock:
        time.sleep(TIMEOUT / 3)  # well inside the header deadline
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        data, waited = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b'{"status":"ok"}')
    assert TIMEOUT * 0.8 < waited < TIMEOUT + 2  # closed by the keep-alive timeout after the answer


def test_malformed_http_gets_the_json_error_body(server):
    with connect(server) as sock:
        sock.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        data, _ = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 400")
    assert json_body(data) == {"error": "bad_request", "detail": "invalid HTTP request"}


@pytest.mark.parametrize("content_type, preamble", [
    ("image/png", b""),
    ("multipart/form-data; boundary=xyz", b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="a"\r\n\r\n'),
], ids=["raw", "multipart"])
def test_client_gone_mid_upload_is_499_without_tracebacks(server, caplog, content_type, preamble):
    caplog.set_level(logging.INFO)
    with connect(server) as sock:
        sock.sendall(f"POST /v1/stylize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
                     "Content-Length: 100000\r\n\r\n".encode() + preamble + b"x" * 5000)
        time.sleep(0.2)
    deadline = time.monotonic() + 5
    while "client closed the connection" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "client closed the connection" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info], caplog.text
    metrics = httpx.get(server + "/metrics").text
    assert 'route="/v1/stylize",status="499"' in metrics
    assert 'status="500"' not in metrics and "internal_error" not in metrics
