"""The Ray Serve engine (`impasto serve --engine ray`): replicas, batching, a killed replica, autoscaling,
metrics. One local Ray instance for the module (2 CPUs, 127.0.0.1), tiny models, one onnxruntime
thread per replica; the cheap checks of options and errors need no Ray instance."""
from __future__ import annotations

import os
import signal
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from impasto.serving.settings import Settings
from tests.serving.helpers import app_client, make_settings, png_bytes, wait_until

pytestmark = pytest.mark.filterwarnings("ignore:The `metrics_interval_s`:DeprecationWarning")  # still the quickest
ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")
ray_app = pytest.importorskip("impasto.serving.ray_app")

# Autoscaling decisions from fresh figures: the handles and replicas report every half second.
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5",
           "RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5", "RAY_DEDUP_LOGS": "0"}
ROOT = Path(__file__).resolve().parents[2]
IMAGE = png_bytes(48, 40, seed=3)
STYLES = ("ink", "plain", "wave:0.5,ink:0.5", "ink:0.2,plain:0.8")  # all in model trio: one batcher


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """A local Ray instance and Serve's HTTP proxy on 127.0.0.1; yields (base URL, metrics URL)."""
    saved = {name: os.environ.get(name) for name in RAY_ENV}
    # ray.init installs process-wide SIGINT/SIGTERM handlers and keeps them after shutdown: put the
    # test process's own back, or later tests of Ctrl-C handling in this process see Ray's.
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    os.environ.update(RAY_ENV)
    metrics_port, http_port = _free_port(), _free_port()
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", _metrics_export_port=metrics_port,
             logging_level="error", log_to_driver=False, _system_config={"metrics_report_interval_ms": 1000})
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": http_port})
        yield f"http://127.0.0.1:{http_port}", f"http://127.0.0.1:{metrics_port}/metrics"
    finally:
        serve.shutdown()
        ray.shutdown()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def deploy(base: str, settings: Settings, **autoscaling) -> None:
    serve.run(ray_app.build_app(settings, autoscaling or None), name=ray_app.APP_NAME, route_prefix="/")
    wait_until(lambda: httpx.get(base + "/readyz").status_code == 200, timeout=60)


def models_deployment():
    return serve.status().applications[ray_app.APP_NAME].deployments[ray_app.MODELS_DEPLOYMENT]


def running_replicas() -> int:
    return models_deployment().replica_states.get("RUNNING", 0)


def wait_for_replicas(count: int, timeout: float = 90) -> None:
    try:
        wait_until(lambda: running_replicas() == count, timeout=timeout)
    except AssertionError:
        deployment = models_deployment()
        raise AssertionError(f"not {count} replicas running: {deployment.replica_states} {deployment.message}") from None


def replica_identities(count: int, tries: int = 40) -> dict[str, int]:
    """replica id -> pid, asking the deployment until ``count`` replicas have answered."""
    handle = serve.get_deployment_handle(ray_app.MODELS_DEPLOYMENT, app_name=ray_app.APP_NAME)
    seen: dict[str, int] = {}
    for _ in range(tries):
        replica, pid = handle.identity.remote().result(timeout_s=30)
        seen[replica] = pid
        if len(seen) >= count:
            break
    return seen


def stylize(base: str, style: str) -> httpx.Response:
    return httpx.post(base + "/v1/stylize", params={"style": style}, content=IMAGE,
                      headers={"content-type": "image/png"}, timeout=60)


@pytest.fixture(scope="module")
def two_replicas(cluster, model_dir):
    base, _ = cluster
    # A long batch wait: 16 requests crossing two processes on 2 busy cores still meet in one batch.
    deploy(base, make_settings(model_dir, engine="ray", replicas=2, max_batch_wait_ms=300))
    return base


def test_two_replicas_answer_everything_batched_and_as_the_single_process_server(two_replicas, model_dir):
    from impasto.serving.app import create_app

    with app_client(create_app(make_settings(model_dir))) as local:
        expected = {style: local.post("/v1/stylize", params={"style": style}, content=IMAGE,
                                      headers={"content-type": "image/png"}).content for style in STYLES}
    requests = [STYLES[i % len(STYLES)] for i in range(16)]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda style: stylize(two_replicas, style), requests))
    assert [r.status_code for r in answers] == [200] * 16, [r.text for r in answers if r.status_code != 200]
    assert all(r.content == expected[style] for r, style in zip(answers, requests))
    assert len({r.headers["x-replica"] for r in answers}) == 2  # both replicas served
    assert max(int(r.headers["x-batch-size"]) for r in answers) > 5  # not capped at Serve's default of 5


def test_routes_health_and_every_replicas_metrics(two_replicas, cluster):
    base, ray_metrics = cluster
    assert httpx.get(base + "/").status_code == 200 and "impasto" in httpx.get(base + "/").text
    assert {s["id"] for s in httpx.get(base + "/v1/styles").json()["styles"]} >= {"trio/wave", "solo/wave"}
    assert httpx.get(base + "/healthz").json() == {"status": "ok"}
    assert httpx.get(base + "/readyz").json()["models"] == ["solo", "trio"]
    assert 'route="/v1/stylize",status="200"' in httpx.get(base + "/metrics").text  # the ingress's registry
    replicas = set(replica_identities(2))
    # Ray exports every replica's batch histogram, tagged with the replica, for Prometheus to scrape.
    def batch_series() -> set[str]:
        text = httpx.get(ray_metrics, timeout=10).text
        return {tag for line in text.splitlines() if line.startswith("ray_impasto_batch_size_count{")
                for tag in replicas if f'replica="{tag}"' in line}

    wait_until(lambda: batch_series() == replicas, timeout=60)


def test_a_replica_killed_under_load_costs_only_503_with_retry_after_and_comes_back(two_replicas):
    before = replica_identities(2)
    victim, pid = next(iter(before.items()))
    answers: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def client(index: int) -> None:
        while not stop.is_set():
            r = stylize(two_replicas, STYLES[index % len(STYLES)])
            answers.append((r.status_code, r.headers.get("retry-after")))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(answers) >= 8, timeout=60)
        os.kill(pid, signal.SIGKILL)
        wait_for_replicas(2)

        def replaced() -> bool:  # the survivor and a new replica answer, the victim does not
            ids = replica_identities(2)
            return len(ids) == 2 and victim not in ids

        wait_until(replaced, timeout=60)
        served = len(answers)
        wait_until(lambda: len(answers) >= served + 8, timeout=60)  # and the load is still being served
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    print("answers while a replica was killed:", {s: [a[0] for a in answers].count(s) for s in {a[0] for a in answers}})
    assert {status for status, _ in answers} <= {200, 503}, sorted({a[0] for a in answers})
    assert all(retry for status, retry in answers if status == 503)
    assert httpx.get(two_replicas + "/readyz").status_code == 200


def test_autoscaling_adds_a_replica_under_load_and_drops_it_when_idle(cluster, model_dir):
    base, _ = cluster
    deploy(base, make_settings(model_dir, engine="ray", autoscale=(1, 2)),
           upscale_delay_s=0.5, downscale_delay_s=2.0, look_back_period_s=1.0, metrics_interval_s=0.5,
           target_ongoing_requests=4)
    wait_for_replicas(1)
    stop = threading.Event()
    statuses: list[int] = []

    def client() -> None:
        while not stop.is_set():
            statuses.append(stylize(base, "ink").status_code)

    threads = [threading.Thread(target=client) for _ in range(16)]
    for t in threads:
        t.start()
    try:
        wait_for_replicas(2)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert set(statuses) == {200}
    wait_for_replicas(1)


# --- no Ray instance needed ------------------------------------------------------------------------

def test_options_keep_batches_whole_and_threads_within_the_cores():
    models, ingress = ray_app.deployment_options(Settings(engine="ray", replicas=2, threads=1, max_batch_size=16))
    assert models["num_replicas"] == 2 and models["max_ongoing_requests"] >= 16
    assert models["ray_actor_options"]["num_cpus"] == 1  # Ray places a replica where its threads are free
    assert ingress["max_ongoing_requests"] >= 2 * 16 and ingress["ray_actor_options"]["num_cpus"] == 0
    auto, _ = ray_app.deployment_options(Settings(engine="ray", autoscale="1:4"), {"downscale_delay_s": 1})
    assert auto["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 8,
                                          "downscale_delay_s": 1}
    assert "num_replicas" not in auto
    cores = os.cpu_count() or 1
    assert ray_app.replica_threads(Settings(replicas=2)) * 2 <= max(cores, 2)


@pytest.mark.parametrize("path", ["serving/deploy/ray-serve.yaml", "serving/deploy/kuberay-rayservice.yaml"])
def test_the_cluster_configs_are_valid_and_build_the_application(path):
    import yaml
    from ray.serve.schema import ServeDeploySchema

    document = yaml.safe_load((ROOT / path).read_text())
    if document.get("kind") == "RayService":
        document = yaml.safe_load(document["spec"]["serveConfigV2"])
    (app,) = ServeDeploySchema.model_validate(document).applications
    module, _, name = app.import_path.partition(":")
    assert (module, name) == ("impasto.serving.ray_app", "app_builder")
    assert ray_app.app_builder(app.args) is not None  # the args are valid settings
    (models,) = app.deployments
    low, high = Settings(**app.args).autoscale
    assert models.name == ray_app.MODELS_DEPLOYMENT
    assert (models.autoscaling_config["min_replicas"], models.autoscaling_config["max_replicas"]) == (low, high)


def test_replica_failures_become_503_and_model_errors_pass_through():
    from ray.exceptions import ActorDiedError, RayTaskError

    from impasto.core.errors import ModelError
    from impasto.serving.batching import Overloaded, QueueFull

    class Remote:
        def __init__(self, error):
            self.error = error

        async def remote(self, *args):
            raise self.error

    def submit(error):
        import asyncio

        handle = type("Handle", (), {"infer": Remote(error)})()
        return asyncio.run(ray_app.Replicas(handle, "impasto").submitters(["trio"])["trio"].submit(None, None))

    with pytest.raises(Overloaded, match="replica unavailable"):
        submit(ActorDiedError())
    with pytest.raises(Overloaded, match="queued") as info:
        submit(RayTaskError("infer", "traceback", QueueFull("trio", 8)).as_instanceof_cause())
    assert info.value.model == "trio"
    with pytest.raises(ModelError, match="broken"):
        submit(RayTaskError("infer", "traceback", ModelError("broken")).as_instanceof_cause())


def test_readiness_says_when_no_replica_runs(monkeypatch):
    import asyncio
    from types import SimpleNamespace

    def status(running: int):
        deployment = SimpleNamespace(replica_states={"RUNNING": running} if running else {"STARTING": 1},
                                     status="UPDATING", message="")
        app = SimpleNamespace(deployments={ray_app.MODELS_DEPLOYMENT: deployment})
        return lambda: SimpleNamespace(applications={"impasto": app})

    replicas = ray_app.Replicas(None, "impasto")
    monkeypatch.setattr(ray_app.serve, "status", status(0))
    assert "no model replica running" in asyncio.run(replicas.unready_reason())
    monkeypatch.setattr(ray_app.serve, "status", status(1))
    assert asyncio.run(replicas.unready_reason()) is None
    monkeypatch.setattr(ray_app.serve, "status", lambda: SimpleNamespace(applications={}))  # being replaced
    assert "state unknown" in asyncio.run(replicas.unready_reason())
