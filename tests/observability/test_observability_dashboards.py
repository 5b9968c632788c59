"""Grafana dashboards: valid JSON for Grafana 10+, data source as a variable, only defined series."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.observability.metric_refs import (
    OBSERVABILITY,
    SERVICES,
    dashboard_exprs,
    dashboards,
    metric_names,
    panels,
    prefix_of,
    raw_names,
    recorded_names,
)

DASHBOARDS = dashboards()


def test_one_overview_and_one_dashboard_per_service() -> None:
    expected = {"hibiki-overview.json", *(f"hibiki-{s}.json" for s in SERVICES)}
    assert expected <= {p.name for p in DASHBOARDS}
    uids = [d["uid"] for d in DASHBOARDS.values()]
    assert len(set(uids)) == len(uids)


@pytest.mark.parametrize("path", list(DASHBOARDS), ids=lambda p: p.stem)
def test_dashboard_is_valid_grafana_json(path: Path) -> None:
    dashboard = DASHBOARDS[path]
    assert dashboard["schemaVersion"] >= 39
    assert dashboard["id"] is None  # importable into any Grafana
    assert dashboard["uid"] and len(dashboard["uid"]) <= 40
    assert dashboard["title"].startswith("Hibiki / ")
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"

    ids = [p["id"] for p in panels(dashboard)]
    assert len(set(ids)) == len(ids), "panel ids must be unique"
    occupied: set[tuple[int, int]] = set()
    for panel in panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & occupied, f"panel {panel['title']!r} overlaps another"
        occupied |= cells
        if panel["type"] in ("row", "text"):
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}"
            assert target["expr"].strip()


@pytest.mark.parametrize("path", list(DASHBOARDS), ids=lambda p: p.stem)
def test_dashboard_queries_use_recorded_series_or_service_metrics(path: Path) -> None:
    recorded = recorded_names()
    for expr in dashboard_exprs(DASHBOARDS[path]):
        names = metric_names(expr)
        assert names, expr
        for name in names:
            if ":" in name:
                assert name in recorded, f"{name} is not recorded by any rule ({expr})"
        for name in raw_names(names):
            assert name.startswith("hibiki_"), f"{name}: not a Hibiki metric ({expr})"


@pytest.mark.parametrize("service", SERVICES)
def test_service_dashboard_is_filtered_by_its_service(service: str) -> None:
    dashboard = next(d for p, d in DASHBOARDS.items() if p.name == f"hibiki-{service}.json")
    variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "service")
    assert variable["type"] == "constant" and variable["query"] == service
    prefix = prefix_of(service)
    for expr in dashboard_exprs(dashboard):
        names = raw_names(metric_names(expr))
        # recorded series filtered by the service label, or the service's own raw metrics
        assert 'service="$service"' in expr or (names and all(n.startswith(prefix) for n in names)), expr


def _row_titles(dashboard: dict[str, Any]) -> list[str]:
    return [p["title"] for p in panels(dashboard) if p["type"] == "row"]


def test_dashboards_have_the_runtime_rows_and_marked_domain_rows() -> None:
    for path, dashboard in DASHBOARDS.items():
        titles = _row_titles(dashboard)
        for runtime_row in ("gRPC (rate, errors, duration)", "Kafka consumers", "Transactional outbox"):
            assert runtime_row in titles, (path.name, runtime_row)
        assert any(t.startswith("Domain: ") for t in titles), path.name
    overview = next(d for p, d in DASHBOARDS.items() if p.name == "hibiki-overview.json")
    joined = " ".join(_row_titles(overview))
    assert "SMS carriers" in joined and "IVR funnel" in joined


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "hibiki_observability_generate", OBSERVABILITY / "generate.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_domain_panels_replace_the_placeholder_row() -> None:
    generate = _generator()
    carriers = generate.timeseries(
        "SMS / s by carrier",
        [
            (
                'sum by (carrier) (rate(hibiki_sms_gateway_example_total{service="$service"}[5m]))',
                "{{carrier}}",
            )
        ],
    )
    generate.DOMAIN_PANELS["sms-gateway"] = [carriers]
    sms = next(s for s in generate.SERVICES if s.name == "sms-gateway")
    dashboard = generate.service_dashboard(sms)
    titles = [p["title"] for p in panels(dashboard)]
    assert "Domain: SMS carriers" in titles and "Domain: SMS carriers (to come)" not in titles
    placed = next(p for p in panels(dashboard) if p["title"] == "SMS / s by carrier")
    assert placed["gridPos"]["y"] > max(
        p["gridPos"]["y"] for p in panels(dashboard) if p["title"] == "Domain: SMS carriers"
    )
    assert placed["datasource"]["uid"] == "${DS_PROMETHEUS}"
