"""Concurrency through a real uvicorn on loopback: batching, overload (503), timeouts (504), readiness."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from impasto.core.model import StyleModel
from impasto.serving.app import create_app
from tests.serving.helpers import GatedModel, app_client, decode, live_server, make_settings, png_bytes, wait_until

PNG = {"content-type": "image/png"}  # a raw body is taken only with an image content type


@pytest.fixture
def gated(model_dir):
    """Both test models behind gates, loaded once per test (sessions are cheap for tiny models)."""
    return {name: GatedModel(StyleModel(model_dir / f"{name}.onnx", device="cpu", threads=1))
            for name in ("solo", "trio")}


# (image size, query) pairs: several sizes, styles, blends, strengths and both models.
REQUESTS = [((48, 40), {"style": "ink"}), ((48, 40), {"style": "trio/wave"}), ((48, 40), {"style": "wave:1,ink:2"}),
            ((48, 40), {"style": "plain"}), ((48, 40), {"style": "ink", "strength": 0.5}),
            ((48, 40), {"style": "wave:1,plain:1"}), ((37, 52), {"style": "ink"}), ((37, 52), {"style": "wave:2,ink:1"}),
            ((37, 52), {"style": "ink", "preserve_color": True}), ((64, 64), {"style": "plain:1,ink:1"}),
            ((48, 40), {"model": "solo"}), ((48, 40), {"style": "solo/wave", "strength": 0.3}),
            ((37, 52), {"model": "solo"}), ((64, 64), {"style": "wave", "model": "trio"}),
            ((48, 40), {"style": "ink:1,wave:1"}), ((37, 52), {"style": "plain"})]


def _post(http: httpx.Client, index: int):
    (w, h), params = REQUESTS[index]
    return http.post("/v1/stylize", params=params, files={"image": ("x.png", png_bytes(w, h, seed=index), "image/png")})


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(model_dir, gated, client):
    # References: every request sent alone (batch of one) to the default app.
    singles = [decode(_post(client, i).content) for i in range(len(REQUESTS))]
    app = create_app(make_settings(model_dir, max_batch_size=4, max_batch_wait_ms=5), models=list(gated.values()))
    with live_server(app) as base, httpx.Client(base_url=base, timeout=30) as http, ThreadPoolExecutor(16) as pool:
        service = app.state.service
        # Hold one request inside each model so all the others queue up behind them, then let go.
        for model in gated.values():
            model.gate.clear()
            model.entered.clear()
            model.shapes.clear()
        held = [0, 10]  # trio, solo
        futures = {i: pool.submit(_post, http, i) for i in held}
        for model in gated.values():
            assert model.entered.wait(10)
        futures.update({i: pool.submit(_post, http, i) for i in range(len(REQUESTS)) if i not in held})
        wait_until(lambda: sum(b.depth for b in service.batchers.values()) == len(REQUESTS) - len(held))
        for model in gated.values():
            model.gate.set()
        responses = {i: f.result() for i, f in futures.items()}
    for i, r in sorted(responses.items()):
        assert r.status_code == 200, r.text
        got = decode(r.content)
        assert got.shape == singles[i].shape
        assert np.abs(got - singles[i]).max() <= 1, f"request {i} ({REQUESTS[i]}) got another answer"
    # trio queued 6 + 4 + 2 requests of three sizes, solo 2 of two sizes; batches hold at most 4.
    assert sorted(s[0] for s in gated["trio"].shapes) == [1, 2, 2, 4, 4]
    assert sorted(s[0] for s in gated["solo"].shapes) == [1, 1, 1]
    sizes = sorted(int(r.headers["X-Batch-Size"]) for r in responses.values())
    assert sizes == [1] * 4 + [2] * 4 + [4] * 8


def test_full_queue_answers_503_with_retry_after(model_dir, gated):
    app = create_app(make_settings(model_dir, max_queue=1, retry_after_s=3, max_batch_wait_ms=0),
                     models=list(gated.values()))
    data = png_bytes(40, 40)
    with live_server(app) as base, httpx.Client(base_url=base, timeout=30) as http, ThreadPoolExecutor(2) as pool:
        batcher = app.state.service.batchers["trio"]
        gated["trio"].gate.clear()
        gated["trio"].entered.clear()
        running = pool.submit(http.post, "/v1/stylize?style=ink", content=data, headers=PNG)
        gated["trio"].entered.wait(10)
        queued = pool.submit(http.post, "/v1/stylize?style=wave:1,ink:1", content=data, headers=PNG)
        wait_until(lambda: batcher.depth == 1)
        refused = http.post("/v1/stylize?style=ink", content=data, headers=PNG)
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "3"
        assert refused.json()["error"] == "overloaded"
        # Another model has its own queue and is not refused.
        assert http.post("/v1/stylize?model=solo", content=data, headers=PNG).status_code == 200
        gated["trio"].gate.set()
        assert running.result().status_code == 200 and queued.result().status_code == 200
        metrics = http.get("/metrics").text
    assert 'impasto_rejected_total{model="trio"} 1.0' in metrics
    assert 'impasto_http_requests_total{method="POST",route="/v1/stylize",status="503"} 1.0' in metrics


def test_request_timeout_answers_504_and_frees_the_queue(model_dir, gated):
    app = create_app(make_settings(model_dir, request_timeout_s=0.3, max_batch_wait_ms=0),
                     models=list(gated.values()))
    with app_client(app) as c:
        gated["trio"].gate.clear()
        try:
            result = {}
            blocked = threading.Thread(target=lambda: result.update(r=c.post("/v1/stylize?style=ink",
                                                                                content=png_bytes(40, 40), headers=PNG)))
            blocked.start()
            r = c.post("/v1/stylize?style=ink", content=png_bytes(40, 40, seed=1), headers=PNG)  # queued behind it
            assert r.status_code == 504 and r.json()["error"] == "timeout"
            blocked.join(10)
            assert result["r"].status_code == 504
            assert app.state.service.batchers["trio"].depth == 0
        finally:
            gated["trio"].gate.set()
        assert c.post("/v1/stylize?style=ink", content=png_bytes(40, 40), headers=PNG).status_code == 200


def test_readyz_is_503_until_warm_up_is_done(model_dir, gated):
    gated["solo"].gate.clear()
    with app_client(create_app(make_settings(model_dir), models=list(gated.values())), ready=False) as c:
        gated["solo"].entered.wait(10)
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["error"] == "not_ready"
        assert c.get("/healthz").status_code == 200  # alive while not ready
        gated["solo"].gate.set()
        wait_until(lambda: c.get("/readyz").status_code == 200)


class BrokenModel(GatedModel):
    def run(self, images, style_weights=None):
        raise RuntimeError("onnxruntime: bad allocation")


def test_a_model_that_cannot_run_keeps_readyz_red_and_answers_json_500(model_dir, gated):
    broken = BrokenModel(gated["trio"]._model)
    with app_client(create_app(make_settings(model_dir), models=[gated["solo"], broken]), ready=False) as c:
        wait_until(lambda: app_state_warmup_error(c) is not None)
        r = c.get("/readyz")
        assert r.status_code == 503 and "bad allocation" in r.json()["detail"]
        r = c.post("/v1/stylize?style=ink", content=png_bytes(32, 32), headers=PNG)
        assert r.status_code == 500
        assert r.json() == {"error": "internal_error", "detail": "internal server error"}  # no traceback
        assert c.post("/v1/stylize?model=solo", content=png_bytes(32, 32), headers=PNG).status_code == 200


def app_state_warmup_error(client):
    return client.app.state.service.warmup_error
