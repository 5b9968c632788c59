"""The labels the rules group, join and match on are labels of the metrics the services define.

A fast check without processes that covers every family, also those a running service has no sample of yet
(label names only show in samples); tests/integration/test_observability_metrics.py checks the scraped
samples.
"""

from __future__ import annotations

from typing import Any

import pytest
from hibiki_guidance_tts.adapters.metrics import GuidanceMetrics
from hibiki_media_gateway.adapters.metrics import MediaMetrics
from hibiki_reporting.adapters.metrics import ReportingMetrics
from hibiki_routing.adapters.metrics import RoutingMetrics
from hibiki_runtime.metrics import RuntimeMetrics
from hibiki_sms_gateway.adapters.metrics import SmsMetrics
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from tests.observability.metric_refs import SERVICES, label_names, label_requirements, service_of

DOMAIN_METRICS: dict[str, Any] = {
    "guidance-tts": lambda registry: GuidanceMetrics(registry),
    "routing": lambda registry: RoutingMetrics(registry),
    "sms-gateway": lambda registry: SmsMetrics(registry),
    "reporting": lambda registry: ReportingMetrics(registry, lambda: 0.0),
    "media-gateway": lambda registry: MediaMetrics(registry),
}


def defined_labels(service: str) -> dict[str, set[str]]:
    """Sample name → label names, for every metric the service defines (runtime and domain)."""
    objects: list[Any] = []
    registry = CollectorRegistry()
    objects.append(RuntimeMetrics(service, registry))
    objects.append(DOMAIN_METRICS[service](registry))
    samples: dict[str, set[str]] = {}
    for holder in objects:
        for metric in vars(holder).values():
            # prometheus_client keeps a metric's label names in _labelnames (no public accessor).
            labels = set(getattr(metric, "_labelnames", ()))
            name = getattr(metric, "_name", "")
            if isinstance(metric, Histogram):
                samples[f"{name}_bucket"] = labels | {"le"}
                samples[f"{name}_count"] = samples[f"{name}_sum"] = labels
            elif isinstance(metric, Counter):
                samples[f"{name}_total"] = labels
            elif isinstance(metric, Gauge):
                samples[name] = labels
    return samples


@pytest.mark.parametrize("service", SERVICES)
def test_rule_and_dashboard_labels_are_defined_on_the_metrics(service: str) -> None:
    defined = defined_labels(service)
    checked = 0
    for metrics, labels, expr in label_requirements():
        if {service_of(m) for m in metrics} != {service} or any(m.endswith("_build_info") for m in metrics):
            continue  # build_info's labels (service, version) come from the Info call: checked by the scrape
        known = set().union(*(defined.get(m, set()) for m in metrics))
        assert labels <= known, f"{sorted(labels - known)} not defined on {sorted(metrics)}: {expr}"
        checked += 1
    assert checked, f"no rule of {service} was checked"


def test_label_extraction() -> None:
    assert label_names(
        'sum by (carrier, le) (rate(x_bucket{job="a", le="0.5", method!~"/grpc\\\\..+"}[5m]))'
    ) == {"carrier", "le", "method"}
    assert label_names("a > 1 and on (service, carrier) b") == {"service", "carrier"}
    assert label_names("sum(rate(x_total[5m]))") == set()
