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
    alerts,
    dashboard_exprs,
    dashboards,
    metric_names,
    panels,
    prefix_of,
    raw_names,
    recorded_names,
)

DASHBOARDS = dashboards()


GENERAL = {"hibiki-overview.json", *(f"hibiki-{s}.json" for s in SERVICES)}
DEDICATED = {"hibiki-sms-carriers.json", "hibiki-ivr-funnel.json"}


def test_one_overview_one_dashboard_per_service_and_the_domain_dashboards() -> None:
    assert {p.name for p in DASHBOARDS} == GENERAL | DEDICATED
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


def test_dashboards_have_the_runtime_rows_and_wired_domain_rows() -> None:
    for path, dashboard in DASHBOARDS.items():
        if path.name not in GENERAL:
            continue
        titles = _row_titles(dashboard)
        for runtime_row in ("gRPC (rate, errors, duration)", "Kafka consumers", "Transactional outbox"):
            assert runtime_row in titles, (path.name, runtime_row)
        domain_rows = [t for t in titles if t.startswith("Domain: ")]
        assert domain_rows, path.name
        assert not [t for t in domain_rows if t.endswith("(to come)")], (path.name, domain_rows)
    overview = next(d for p, d in DASHBOARDS.items() if p.name == "hibiki-overview.json")
    joined = " ".join(_row_titles(overview))
    assert "SMS carriers" in joined and "IVR funnel" in joined


def _dashboard(name: str) -> dict[str, Any]:
    return next(d for p, d in DASHBOARDS.items() if p.name == name)


def test_sms_carriers_dashboard_filters_every_carrier_panel_by_the_carrier_variable() -> None:
    dashboard = _dashboard("hibiki-sms-carriers.json")
    variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "carrier")
    assert variable["includeAll"] and variable["multi"]
    assert "label_values(" in variable["definition"] and ", carrier)" in variable["definition"]
    assert _row_titles(dashboard) == ["Submissions", "Delivery", "Connectors", "Carrier lookup"]
    carrier_exprs = [e for e in dashboard_exprs(dashboard) if "service_carrier" in e]
    assert carrier_exprs
    assert all('carrier=~"$carrier"' in e for e in carrier_exprs), carrier_exprs
    titles = " | ".join(p["title"] for p in panels(dashboard))
    for shown in ("Submits", "Segments", "Undelivered ratio", "Final receipts", "Results", "Throttled"):
        assert shown in titles, shown
    assert "Circuit breaker" in titles and "p99 duration" in titles


def test_ivr_funnel_dashboard_shows_decisions_input_errors_and_fallbacks() -> None:
    dashboard = _dashboard("hibiki-ivr-funnel.json")
    names = {n for e in dashboard_exprs(dashboard) for n in metric_names(e)}
    assert {
        "service_outcome:hibiki_routing_decisions:rate5m",
        "service_kind_outcome:hibiki_routing_input_errors:rate5m",
        "service:hibiki_routing_fallbacks:ratio_rate15m",
        "service:hibiki_routing_calls_in_progress:max",
    } <= names
    assert "Abandonment per route" in _row_titles(dashboard)


def test_media_gateway_dashboard_shows_calls_events_endings_keys_and_prompt_audio() -> None:
    names = {n for e in dashboard_exprs(_dashboard("hibiki-media-gateway.json")) for n in metric_names(e)}
    assert {
        "service:hibiki_media_calls_active:sum",
        "service_instance:hibiki_media_calls_active:max",
        "service_result:hibiki_media_calls:rate5m",
        "service_kind:hibiki_media_call_events:rate5m",
        "service_reason:hibiki_media_calls_ended:rate5m",
        "service:hibiki_media_dtmf_keys:rate5m",
        "service:hibiki_media_prompt_audio_seconds:p99_rate5m",
        "service:hibiki_media_prompts_without_audio:increase15m",
    } <= names
    overview = _row_titles(_dashboard("hibiki-overview.json"))
    assert "Domain: calls (SIP)" in overview


def test_media_busy_threshold_shown_on_panels_is_the_alerts() -> None:
    generate = _generator()
    (rule,) = [a for a in alerts() if a["alert"] == "HibikiMediaGatewayBusy"]
    assert f"service_instance:hibiki_media_calls_active:max >= {generate.MEDIA_BUSY_CALLS}\n" in rule["expr"]
    # The alert fires when every line is taken (PJSIP refuses further INVITEs itself, uncounted).
    assert generate.MEDIA_BUSY_CALLS == generate.MEDIA_LINES
    assert f"as many calls as it has lines ({generate.MEDIA_LINES}," in rule["annotations"]["description"]


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


@pytest.mark.parametrize(
    ("constant", "alert_name"),
    [
        ("UNDELIVERED_THRESHOLD", "HibikiSmsUndeliveredRatioHigh"),
        ("FALLBACK_THRESHOLD", "HibikiRoutingFallbacksSpike"),
        ("LOOKUP_FALLBACK_THRESHOLD", "HibikiSmsCarrierLookupFallingBack"),
    ],
)
def test_thresholds_shown_on_panels_are_the_alerts_thresholds(constant: str, alert_name: str) -> None:
    threshold = getattr(_generator(), constant)
    (rule,) = [a for a in alerts() if a["alert"] == alert_name]
    assert f"> {threshold}\n" in rule["expr"], rule["expr"]
