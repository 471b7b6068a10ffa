"""Live camera streams over the WebSocket ``/api/stream``: round trips, controls, stale-frame drops,
batching across clients, malformed messages, limits, metrics; in the app and through a real uvicorn."""
from __future__ import annotations

import contextlib
import io
import json
import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from impasto.core.model import StyleModel
from impasto.serving.app import create_app
from tests.serving.helpers import GatedModel, app_client, decode, live_server, make_settings, png_bytes, wait_until

URL = "ws://localhost/api/stream"


def open_streams(client) -> float:
    return client.app.state.service.metrics.streams_open.labels("/api/stream")._value.get()


@contextlib.contextmanager
def connect(client, **kwargs):
    """A stream session left only once the server has finished with it: TestClient cancels the
    app's task right after sending its closing message, which no real server does, and a stream
    still stopping its own tasks then can end the test with a CancelledError."""
    before = open_streams(client)
    with client.websocket_connect(URL, **kwargs) as ws:
        try:
            yield ws
        finally:
            ws.close(1000)
            wait_until(lambda: open_streams(client) <= before)


def jpeg(width: int, height: int, seed: int = 0) -> bytes:
    return png_bytes(width, height, seed, fmt="JPEG")


def metric(client, name: str, **labels) -> float:
    """One sample of the app's /metrics (0 when the series does not exist yet)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in client.get("/metrics").text.splitlines():
        found = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if found and ",".join(sorted((found.group(1) or "").split(","))) == wanted:
            return float(found.group(2))
    return 0.0


def answer(ws) -> tuple[dict, bytes | None]:
    """The next answer to a frame: (stats, JPEG) or (drop notice, None)."""
    message = ws.receive_json()
    if message["type"] == "frame":
        return message, ws.receive_bytes()
    assert message["type"] == "dropped", message
    return message, None


def closed_with(ws) -> tuple[int, dict]:
    """(close code, the error message sent before it)."""
    error = ws.receive_json()
    assert error["type"] == "error", error
    close = ws.receive()
    assert close["type"] == "websocket.close", close
    assert close["code"] == error["code"] and close["reason"] and len(close["reason"].encode()) <= 123
    return close["code"], error


def test_frames_round_trip_at_their_size(client):
    before = metric(client, "impasto_stream_frames_total", model="trio")
    with connect(client) as ws:
        hello = ws.receive_json()
        assert hello["type"] == "hello" and hello["max_side"] == 640 and hello["queue_frames"] == 1
        ws.send_text(json.dumps({"model": "trio"}))
        assert ws.receive_json() == {"type": "controls", "model": "trio", "style": "wave", "strength": 1.0,
                                     "preserve_color": False}
        assert metric(client, "impasto_streams_open", route="/api/stream") == 1
        for seq, (frame, size) in enumerate([(jpeg(64, 48), (64, 48)), (png_bytes(40, 72, 1), (40, 72)),
                                             (jpeg(64, 48, 2), (64, 48))], start=1):
            ws.send_bytes(frame)
            stats, body = answer(ws)
            assert stats["seq"] == seq and (stats["width"], stats["height"]) == size and stats["batch"] >= 1
            assert stats["model"] == "trio" and stats["ms"] >= stats["inference_ms"] >= 0
            out = Image.open(io.BytesIO(body))
            assert out.format == "JPEG" and out.size == size
    assert metric(client, "impasto_stream_frames_total", model="trio") == before + 3
    assert metric(client, "impasto_streams_open", route="/api/stream") == 0
    assert metric(client, "impasto_stream_frame_duration_seconds_count", model="trio") >= 3


def test_switching_controls_mid_stream_changes_the_output(client):
    frame = jpeg(64, 48, seed=5)
    outputs = {}
    with connect(client) as ws:
        ws.receive_json()
        for controls in ({"style": "trio/wave"}, {"style": "ink"}, {"style": "wave:1,ink:1"},
                         {"preserve_color": True}, {"style": "solo/wave", "preserve_color": False}):
            ws.send_text(json.dumps(controls))
            ack = ws.receive_json()
            assert ack["type"] == "controls"
            ws.send_bytes(frame)
            stats, body = answer(ws)
            assert (stats["model"], stats["style"]) == (ack["model"], ack["style"])
            outputs[json.dumps(controls)] = decode(body)
    images = list(outputs.values())
    for i, a in enumerate(images):
        for b in images[i + 1:]:
            assert np.abs(a - b).mean() > 2, "every control change shows in the output"


@pytest.fixture
def gated(model_dir):
    """An app whose model waits behind a gate (at most 2 streams); yields (client, gated model)."""
    model = GatedModel(StyleModel(model_dir / "trio.onnx", device="cpu", threads=1))
    with app_client(create_app(make_settings(model_dir, max_streams=2), models=[model])) as client:
        model.gate.clear()
        model.entered.clear()
        yield client, model
        model.gate.set()


def test_stale_frames_are_dropped_for_the_newest_under_a_slow_model(gated):
    client, model = gated
    with connect(client) as ws:
        ws.receive_json()
        ws.send_bytes(jpeg(48, 32, 1))
        assert model.entered.wait(10)  # frame 1 is in the model; frame 2 waits, 3 and 4 replace it in turn
        for seed in (2, 3, 4):
            ws.send_bytes(jpeg(48, 32, seed))
        assert [answer(ws)[0] for _ in range(2)] == [{"type": "dropped", "seq": 2, "reason": "stale"},
                                                     {"type": "dropped", "seq": 3, "reason": "stale"}]
        model.gate.set()
        assert [answer(ws)[0]["seq"] for _ in range(2)] == [1, 4]
    assert metric(client, "impasto_stream_drops_total", reason="stale") == 2
    assert metric(client, "impasto_stream_frames_total", model="trio") == 2


def test_frames_of_streams_and_http_requests_share_a_batch_and_streams_are_limited(gated):
    client, model = gated
    batcher = client.app.state.service.batchers["trio"]
    with connect(client) as a, connect(client) as b, ThreadPoolExecutor(1) as pool:
        a.receive_json(), b.receive_json()
        with connect(client) as third:  # max_streams=2
            code, error = closed_with(third)
            assert code == 1013 and error["error"] == "unavailable" and "2 streams open" in error["detail"]
        a.send_bytes(jpeg(48, 32, 1))
        assert model.entered.wait(10)
        # Behind a's frame in the model, b's frame and an HTTP request of the same size wait together.
        b.send_bytes(jpeg(48, 32, 2))
        http = pool.submit(client.post, "/v1/stylize", content=png_bytes(48, 32), headers={"content-type": "image/png"})
        wait_until(lambda: batcher.depth == 2)
        model.gate.set()
        assert answer(a)[0]["batch"] == 1 and answer(b)[0]["batch"] == 2
        response = http.result(10)
    assert response.status_code == 200 and response.headers["x-batch-size"] == "2"
    assert metric(client, "impasto_streams_open", route="/api/stream") == 0


def _big_png() -> bytes:
    return png_bytes(700, 60)


# (what the client sends, close code, error code)
MALFORMED = {
    "not an image": (b"\x00\x01 definitely not an image" * 10, 1003, "invalid_image"),
    "format not accepted": ("GIF", 1003, "invalid_image"),
    "truncated jpeg": ("TRUNCATED", 1007, "invalid_image"),
    "bad json": ("{'style': 'ink'", 1007, "invalid_json"),
    "json not an object": ("[1, 2]", 1007, "invalid_json"),
    "unknown key": ('{"colour": true}', 1008, "invalid_controls"),
    "unknown style": ('{"style": "nope"}', 1008, "invalid_style"),
    "unknown model": ('{"model": "nope"}', 1008, "invalid_style"),
    "strength out of range": ('{"strength": 2}', 1008, "invalid_controls"),
    "strength as text": ('{"strength": "0.5"}', 1008, "invalid_controls"),
    "colour flag not a bool": ('{"preserve_color": 1}', 1008, "invalid_controls"),
    "frame over max side": ("BIG", 1009, "frame_too_large"),
    "message over max bytes": (b"\xff" * (1024 * 1024 + 1), 1009, "payload_too_large"),
    "text over limit": ('{"style": "' + "a" * 5000 + '"}', 1009, "payload_too_large"),
}


def _payload(what):
    if what == "GIF":
        buf = io.BytesIO()
        Image.new("RGB", (16, 16)).save(buf, "GIF")
        return buf.getvalue()
    if what == "TRUNCATED":
        data = jpeg(64, 48)
        return data[: len(data) * 2 // 3]
    return _big_png() if what == "BIG" else what


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_malformed_messages_close_with_their_code_and_nothing_else_breaks(client, kind):
    what, code, error = MALFORMED[kind]
    with connect(client) as bystander, connect(client) as ws:
        bystander.receive_json(), ws.receive_json()
        payload = _payload(what)
        ws.send_bytes(payload) if isinstance(payload, bytes) else ws.send_text(payload)
        got_code, got = closed_with(ws)
        assert (got_code, got["error"]) == (code, error), got
        bystander.send_bytes(jpeg(32, 32))  # another stream goes on
        assert answer(bystander)[1] is not None
    assert client.get("/v1/styles").status_code == 200
    with connect(client) as ws:  # and a new one is served
        ws.receive_json()
        ws.send_bytes(jpeg(32, 32))
        assert answer(ws)[1] is not None
    assert metric(client, "impasto_errors_total", route="/api/stream", error=error) >= 1
    assert metric(client, "impasto_streams_open", route="/api/stream") == 0


def test_browsers_on_other_origins_and_hosts_are_refused(client):
    from starlette.testclient import WebSocketDenialResponse

    with pytest.raises(WebSocketDenialResponse) as refused:
        with client.websocket_connect(URL, headers={"origin": "https://evil.example"}):
            pass
    assert refused.value.status_code == 403 and refused.value.json()["error"] == "cross_origin"
    with pytest.raises(WebSocketDenialResponse) as refused:
        with client.websocket_connect("ws://evil.example/api/stream"):
            pass
    assert refused.value.status_code == 400 and refused.value.json()["error"] == "host_not_allowed"
    with connect(client, headers={"origin": "http://localhost"}) as ws:  # the page's own origin
        assert ws.receive_json()["type"] == "hello"


def test_through_uvicorn_a_client_that_leaves_mid_frame_and_an_oversize_message(model_dir):
    import httpx
    from websockets.exceptions import ConnectionClosedError
    from websockets.sync.client import connect

    app = create_app(make_settings(model_dir, stream_max_frame_bytes=64 * 1024))
    with live_server(app) as base:
        ws_url = base.replace("http", "ws") + "/api/stream"
        with connect(ws_url) as ws:  # leaves with a frame in progress
            json.loads(ws.recv(5))
            ws.send(jpeg(64, 48))
        with connect(ws_url, max_size=None) as ws:
            json.loads(ws.recv(5))
            ws.send(b"\xff" * (64 * 1024 + 1))  # over uvicorn's ws_max_size: the protocol itself refuses it
            with pytest.raises(ConnectionClosedError) as closed:
                while True:
                    ws.recv(5)
            assert closed.value.rcvd.code == 1009
        with connect(ws_url) as ws:
            json.loads(ws.recv(5))
            ws.send(json.dumps({"style": "ink"}))
            assert json.loads(ws.recv(5))["style"] == "ink"
            ws.send(jpeg(64, 48))
            stats, body = json.loads(ws.recv(5)), ws.recv(5)
            assert stats["seq"] == 1 and Image.open(io.BytesIO(body)).size == (64, 48)
        assert httpx.get(base + "/healthz").status_code == 200
        assert app.state.service.metrics.streams_open.labels("/api/stream")._value.get() == 0
