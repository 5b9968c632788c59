"""The runtime metrics the generated rules and dashboards use are the ones hibiki_runtime registers.

A fast check without processes, for all four services; tests/integration/test_observability_metrics.py scrapes
a running service.
"""

from __future__ import annotations

import pytest
from hibiki_runtime.metrics import RuntimeMetrics
from prometheus_client import CollectorRegistry, generate_latest

from tests.observability.metric_refs import (
    RULES_DIR,
    SERVICES,
    exposed_names,
    prefix_of,
    raw_names,
    referenced_names,
    service_of,
)

RUNTIME_RULES = sorted(RULES_DIR.glob("hibiki-runtime-*.yml"))


def _exposition(service: str) -> str:
    registry = CollectorRegistry()
    RuntimeMetrics(service, registry)
    return generate_latest(registry).decode()


def test_runtime_rules_exist() -> None:
    assert [p.name for p in RUNTIME_RULES] == ["hibiki-runtime-alerts.yml", "hibiki-runtime-recording.yml"]


@pytest.mark.parametrize("service", SERVICES)
def test_every_runtime_metric_used_is_registered(service: str) -> None:
    used = {n for n in raw_names(referenced_names(RUNTIME_RULES)) if service_of(n) == service}
    assert used, f"no rule uses {service}'s metrics"
    missing = used - exposed_names(_exposition(service))
    assert missing == set(), f"{service}: used by rules/dashboards but not registered by the runtime"


def test_rules_cover_every_runtime_metric_family() -> None:
    """Nothing the runtime exports is forgotten by the rules (each family is recorded for every service)."""
    for service in SERVICES:
        used = {n for n in raw_names(referenced_names(RUNTIME_RULES)) if service_of(n) == service}
        families = {
            line.split()[2] for line in _exposition(service).splitlines() if line.startswith("# TYPE ")
        }
        # prometheus_client's creation-time companion of an unlabelled counter, not a metric of ours
        families = {f for f in families if not f.endswith("_created")}
        for family in families:
            assert any(name == family or name.startswith(family + "_") for name in used), (service, family)
        assert all(name.startswith(prefix_of(service)) for name in used)
