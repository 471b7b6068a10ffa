"""The service's metrics under Ray Serve: every value also goes to Ray's own metrics pipeline.

Under Ray a scrape of ``/metrics`` reaches one ingress replica, and the model replicas serve no
HTTP at all, so the registry of :class:`~impasto.serving.metrics.Metrics` alone would show one
process. Ray exports metrics recorded through ``ray.serve.metrics`` from every replica on every
node (each node's metrics export port, which Prometheus scrapes; KubeRay's PodMonitor does it on
Kubernetes), tagged with the deployment and replica. :class:`RayMetrics` is the same families with
each value recorded twice: in the local registry (``/metrics`` keeps working) and as its Ray twin
(exported as ``ray_<name>``).
"""
from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Histogram
from prometheus_client.metrics import MetricWrapperBase
from ray.serve import metrics as serve_metrics  # type: ignore[import-not-found,unused-ignore]

from impasto.serving.metrics import Metrics


def ray_twin(family: MetricWrapperBase) -> Any:
    """A ``ray.serve.metrics`` metric of the same name, help, labels (and buckets) as ``family``."""
    name, doc, labels = family._name, family._documentation, tuple(family._labelnames)
    if isinstance(family, Histogram):
        return serve_metrics.Histogram(name, doc, boundaries=list(family._upper_bounds[:-1]), tag_keys=labels)
    if isinstance(family, Counter):
        return serve_metrics.Counter(name, doc, tag_keys=labels)
    return serve_metrics.Gauge(name, doc, tag_keys=labels)


class _TeeChild:
    def __init__(self, child: Any, twin: Any, tags: dict[str, str]):
        self.child, self.twin, self.tags = child, twin, tags

    def inc(self, amount: float = 1.0) -> None:
        self.child.inc(amount)
        self.twin.inc(amount, tags=self.tags)

    def observe(self, value: float) -> None:
        self.child.observe(value)
        self.twin.observe(value, tags=self.tags)

    def set(self, value: float) -> None:
        self.child.set(value)
        self.twin.set(value, tags=self.tags)


class _Tee:
    """Used like the prometheus_client family it wraps: ``.labels(...).inc()/observe()/set()``."""

    def __init__(self, family: MetricWrapperBase):
        self.family, self.twin, self.label_names = family, ray_twin(family), tuple(family._labelnames)

    def labels(self, *values: str) -> _TeeChild:
        return _TeeChild(self.family.labels(*values), self.twin, dict(zip(self.label_names, values)))


class RayMetrics(Metrics):
    def __init__(self) -> None:
        super().__init__()
        for attribute, family in list(vars(self).items()):
            if isinstance(family, MetricWrapperBase):
                setattr(self, attribute, _Tee(family))
