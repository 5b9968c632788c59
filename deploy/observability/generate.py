"""Generate Hibiki's runtime Prometheus rules and Grafana dashboards.

    .venv/bin/python deploy/observability/generate.py          # rewrite the generated files
    .venv/bin/python deploy/observability/generate.py --check  # exit 1 if a generated file is stale

Every service exposes the same runtime metrics under its own prefix (hibiki_<service>_…, see
libs/runtime/src/hibiki_runtime/metrics.py). The per-service recording rules written here turn them into
service-labelled series (`service:hibiki_…`, `service_topic:hibiki_…`), so the alerts and the dashboards are
written once for all services.

Generated (do not edit by hand; edit this file and rerun):
  prometheus/rules/hibiki-runtime-recording.yml   one group per service
  prometheus/rules/hibiki-runtime-alerts.yml      alerts on the recorded series
  grafana/dashboards/hibiki-overview.json         all services
  grafana/dashboards/hibiki-<service>.json        one per service
  prometheus-rule.yaml                            every rules/*.yml file as one PrometheusRule
  kustomization.yaml                              that PrometheusRule + one ConfigMap per dashboard

Hand-written (never touched by this script): prometheus/rules/hibiki-domain-*.yml and their tests in
prometheus/tests/. Domain dashboard panels are added to DOMAIN_PANELS below (see README.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
RULES_DIR = HERE / "prometheus" / "rules"
DASHBOARDS_DIR = HERE / "grafana" / "dashboards"

# Where runbooks live. Repository-relative until the repository has a public URL: then set the absolute
# prefix here (e.g. https://<host>/<org>/hibiki/blob/main/docs/runbooks) and rerun.
RUNBOOK_BASE = "docs/runbooks"

# The Prometheus `job` label of a service's scrape target (the ServiceMonitor in deploy/k8s uses the `app`
# label, which is the service name).
JOB_SELECTOR = 'job="{service}"'

# gRPC methods left out of the RED and SLO series: health checks and reflection (kubelet probes would
# otherwise dominate the request rate and dilute the error ratio).
INFRA_METHODS = r"/grpc\\..+"

# Status codes that spend the availability error budget: failures of the server, not of the request.
# INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION, ABORTED, PERMISSION_DENIED,
# UNAUTHENTICATED, RESOURCE_EXHAUSTED (tenant quota) and CANCELLED (by the client) do not.
ERROR_CODES = "UNKNOWN|INTERNAL|UNAVAILABLE|DEADLINE_EXCEEDED|DATA_LOSS|UNIMPLEMENTED"

# SLOs (per service, over all non-infrastructure methods).
AVAILABILITY_OBJECTIVE = 0.999  # 99.9 % of requests do not fail with an ERROR_CODES status
LATENCY_OBJECTIVE = 0.99  # 99 % of unary requests finish within LATENCY_THRESHOLD_SECONDS
LATENCY_THRESHOLD_SECONDS = "0.5"  # must be one of the runtime's histogram buckets (le label value)

# Multi-window, multi-burn-rate alerts (Google SRE workbook, chapter 5): (severity, long, short, burn, for).
BURN_WINDOWS = (
    ("critical", "1h", "5m", 14.4, "2m"),  # 2 % of a 30-day budget in one hour
    ("warning", "6h", "30m", 6.0, "15m"),  # 5 % of a 30-day budget in six hours
)
RATE_WINDOWS = ("5m", "30m", "1h", "6h")

# Thresholds of the runtime alerts.
LAG_FLOOR_MESSAGES = 1000
OUTBOX_BACKLOG_STUCK = 1000  # the relay batch is 500 rows; the gauge is only non-zero after a full batch
# The relay publishes within a second when healthy (it is woken on commit, polls every 0.5 s, retries every
# 1 s); two minutes means it is failing or blocked, not busy.
OUTBOX_OLDEST_PENDING_SECONDS = 120
CONSUMER_ERRORS_PER_5M = 3


@dataclass(frozen=True)
class Service:
    name: str  # as in settings.service_name, the k8s Deployment and the `service` label
    streaming_methods: tuple[str, ...] = ()  # excluded from the latency SLO (duration = stream length)
    domain_row: str = ""  # title of the row for this service's domain panels
    domain_what: str = ""  # what the row will show (placeholder text until DOMAIN_PANELS has panels)

    @property
    def prefix(self) -> str:
        return "hibiki_" + self.name.replace("-", "_")

    @property
    def job(self) -> str:
        return JOB_SELECTOR.format(service=self.name)


SERVICES = (
    Service(
        "guidance-tts",
        streaming_methods=("/hibiki.guidance.v1.GuidanceService/StreamAudio",),
        domain_row="Domain: speech synthesis",
        domain_what="synthesis queue, synthesis seconds, audio files by state",
    ),
    Service(
        "routing",
        domain_row="Domain: IVR funnel",
        domain_what="calls, routing decisions by target, invalid input and timeouts, abandonment by route",
    ),
    Service(
        "sms-gateway",
        domain_row="Domain: SMS carriers",
        domain_what="SMS by carrier and final status, undelivered ratio, connector circuit breakers",
    ),
    Service(
        "reporting",
        streaming_methods=("/hibiki.reporting.v1.ReportService/ExportCsv",),
        domain_row="Domain: report freshness",
        domain_what="age of the newest applied event, finalization cutoff, retention",
    ),
    Service(
        "media-gateway",
        domain_row="Domain: calls (SIP)",
        domain_what="calls in progress, INVITEs by result, call events, endings, DTMF, prompt audio",
    ),
)

# The live call path: a consumer lagging or an outbox stalled here leaves callers waiting in silence, so its
# HibikiConsumerLagGrowing and HibikiOutboxRelayStalled page (critical); elsewhere they are warnings.
LIVE_CONSUMERS = {
    ("routing", "call.events"): "Live callers wait for routing decisions.",
    ("media-gateway", "call.actions"): "Live callers wait for their next prompt, transfer or hang-up.",
}
LIVE_OUTBOXES = {
    "routing": "Live callers do not get their next action.",
    "media-gateway": "Routing does not hear what live callers do (keys, timeouts, hang-ups).",
}

# Domain panels: dashboard key ("overview-sms", "overview-ivr", "overview-media" or a service name) → list
# of Grafana panel dicts (gridPos is assigned automatically). They replace the placeholder text of that
# dashboard's domain row. Filled in the "Domain panels" section below, from the series of
# prometheus/rules/hibiki-domain-*.yml.
DOMAIN_PANELS: dict[str, list[dict[str, Any]]] = {}

ALERT_GROUP = "hibiki.runtime.alerts"


# --------------------------------------------------------------------------------------------------------
# Recording rules


def recording_rules(service: Service) -> dict[str, Any]:
    p = service.prefix
    rpc = f'method!~"{INFRA_METHODS}"'
    unary_excluded = "|".join([INFRA_METHODS, *(m.replace(".", r"\\.") for m in service.streaming_methods)])
    unary = f'method!~"{unary_excluded}"'
    rules: list[dict[str, Any]] = []

    def record(name: str, expr: str) -> None:
        rules.append({"record": name, "expr": expr, "labels": {"service": service.name}})

    # 0 rather than nothing when no target is discovered (scaled to zero, discovery broken): that is down too.
    record("service:up:sum", f"sum({'up{' + service.job + '}'}) or vector(0)")
    record("service:up:count", f"count({'up{' + service.job + '}'}) or vector(0)")
    record("service_version:hibiki_build_info:count", f"count by (version) ({p}_build_info)")

    # gRPC RED
    record(
        "service_method_code:hibiki_grpc_requests:rate5m",
        f"sum by (method, code) (rate({p}_grpc_requests_total{{{rpc}}}[5m]))",
    )
    for w in RATE_WINDOWS:
        record(f"service:hibiki_grpc_requests:rate{w}", f"sum(rate({p}_grpc_requests_total{{{rpc}}}[{w}]))")
        record(
            f"service:hibiki_grpc_errors:ratio_rate{w}",
            f'(sum(rate({p}_grpc_requests_total{{{rpc}, code=~"{ERROR_CODES}"}}[{w}])) or vector(0))\n'
            f"/\nsum(rate({p}_grpc_requests_total{{{rpc}}}[{w}]))",
        )
        record(
            f"service:hibiki_grpc_slow_requests:ratio_rate{w}",
            f"1 - (\n"
            f"  sum(rate({p}_grpc_request_duration_seconds_bucket"
            f'{{{unary}, le="{LATENCY_THRESHOLD_SECONDS}"}}[{w}]))\n'
            f"  /\n"
            f"  sum(rate({p}_grpc_request_duration_seconds_count{{{unary}}}[{w}]))\n"
            f")",
        )
    for q in ("0.5", "0.99"):
        tag = "p" + q.split(".")[1].ljust(2, "0")
        record(
            f"service_method:hibiki_grpc_request_duration_seconds:{tag}_rate5m",
            f"histogram_quantile({q}, sum by (method, le) "
            f"(rate({p}_grpc_request_duration_seconds_bucket{{{rpc}}}[5m])))",
        )
        record(
            f"service:hibiki_grpc_request_duration_seconds:{tag}_rate5m",
            f"histogram_quantile({q}, sum by (le) "
            f"(rate({p}_grpc_request_duration_seconds_bucket{{{unary}}}[5m])))",
        )

    # Kafka consumers
    record(
        "service_topic_result:hibiki_consumer_messages:rate5m",
        f"sum by (topic, result) (rate({p}_consumer_messages_total[5m]))",
    )
    record(
        "service_topic:hibiki_consumer_batch_duration_seconds:p99_rate5m",
        f"histogram_quantile(0.99, sum by (topic, le) "
        f"(rate({p}_consumer_batch_duration_seconds_bucket[5m])))",
    )
    record(
        "service_topic:hibiki_consumer_errors:rate5m", f"sum by (topic) (rate({p}_consumer_errors_total[5m]))"
    )
    # Each pod reports the partitions it was assigned; max() keeps one value per partition.
    record(
        "service_topic_partition:hibiki_consumer_lag_messages:max",
        f"max by (topic, partition) ({p}_consumer_lag_messages)",
    )
    record(
        "service_topic:hibiki_consumer_lag_messages:sum",
        f"sum by (topic) (max by (topic, partition) ({p}_consumer_lag_messages))",
    )
    # Only stalled partitions have a series (the pod is NOT_SERVING meanwhile and restarts on its liveness).
    record(
        "service_topic_partition:hibiki_consumer_stalled_seconds:max",
        f"max by (topic, partition) ({p}_consumer_stalled_seconds)",
    )
    record(
        "service_topic_reason:hibiki_dlq_messages:rate5m",
        f"sum by (topic, reason) (rate({p}_dlq_messages_total[5m]))",
    )
    # increase() cannot see the first increment of a series that appears already at 1 (a new pod, or the
    # first record of a reason): the second operand counts such new series.
    record(
        "service_topic_reason:hibiki_dlq_messages:increase15m",
        f"sum by (topic, reason) (\n"
        f"  (increase({p}_dlq_messages_total[15m]) > 0)\n"
        f"  or\n"
        f"  ({p}_dlq_messages_total unless {p}_dlq_messages_total offset 15m) * 1\n"
        f")",
    )

    # Outbox
    record(
        "service_topic:hibiki_outbox_published:rate5m",
        f"sum by (topic) (rate({p}_outbox_published_total[5m]))",
    )
    record("service:hibiki_outbox_backlog:max", f"max({p}_outbox_backlog)")
    # Only the pod holding the relay lock reports a non-zero age; the others report 0.
    record(
        "service:hibiki_outbox_oldest_pending_age_seconds:max", f"max({p}_outbox_oldest_pending_age_seconds)"
    )
    record("service:hibiki_outbox_relay_errors:rate5m", f"sum(rate({p}_outbox_relay_errors_total[5m]))")

    return {"name": f"hibiki.runtime.recording.{service.name}", "rules": rules}


# --------------------------------------------------------------------------------------------------------
# Alerts


def runbook(alert: str) -> str:
    return f"{RUNBOOK_BASE}/{alert}.md"


def alert(
    name: str,
    expr: str,
    severity: str,
    summary: str,
    description: str,
    for_: str | None = None,
    **labels: str,
) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": name, "expr": expr}
    if for_:
        rule["for"] = for_
    rule["labels"] = {"severity": severity, "service": "{{ $labels.service }}", **labels}
    rule["annotations"] = {"summary": summary, "description": description, "runbook_url": runbook(name)}
    return rule


def _by_service(texts: dict[str, str]) -> str:
    """An annotation template that says texts[service] for the alert's service label."""
    branches = [
        f'{{{{ {"if" if i == 0 else "else if"} eq $labels.service "{service}" }}}}{text}'
        for i, (service, text) in enumerate(texts.items())
    ]
    return "".join(branches) + "{{ end }}"


def alert_rules() -> dict[str, Any]:
    jobs = "|".join(s.name for s in SERVICES)
    error_budget = round(1 - AVAILABILITY_OBJECTIVE, 6)
    latency_budget = round(1 - LATENCY_OBJECTIVE, 6)
    rules = [
        alert(
            "HibikiServiceDown",
            "service:up:sum == 0",
            "critical",
            "{{ $labels.service }}: no instance is up",
            "Prometheus could not scrape any {{ $labels.service }} target for 3 minutes (up == 0 on every"
            " instance, or no target discovered): the service is down, crash-looping, scaled to zero or"
            " unreachable.",
            for_="3m",
        ),
        alert(
            "HibikiInstanceDown",
            f'label_replace(up{{job=~"{jobs}"}}, "service", "$1", "job", "(.+)") == 0',
            "warning",
            "{{ $labels.service }} instance {{ $labels.instance }} is down",
            "Prometheus could not scrape {{ $labels.instance }} ({{ $labels.service }}) for 5 minutes.",
            for_="5m",
        ),
    ]
    for severity, long, short, burn, for_ in BURN_WINDOWS:
        threshold = round(burn * error_budget, 6)
        rules.append(
            alert(
                "HibikiGrpcErrorBudgetBurn",
                f"service:hibiki_grpc_errors:ratio_rate{long} > {threshold}\n"
                f"and\nservice:hibiki_grpc_errors:ratio_rate{short} > {threshold}",
                severity,
                f"{{{{ $labels.service }}}} gRPC errors burn the {AVAILABILITY_OBJECTIVE:.1%} availability"
                f" budget {burn}x too fast",
                f"{{{{ $value | humanizePercentage }}}} of {{{{ $labels.service }}}} gRPC requests"
                f" failed with a server error over the last {long}, and more than {threshold:.2%} over the"
                f" last {short} (burn rate {burn}x of a {error_budget:.1%} error budget).",
                for_=for_,
                window=long,
            )
        )
    for severity, long, short, burn, for_ in BURN_WINDOWS:
        threshold = round(burn * latency_budget, 6)
        rules.append(
            alert(
                "HibikiGrpcLatencyBudgetBurn",
                f"service:hibiki_grpc_slow_requests:ratio_rate{long} > {threshold}\n"
                f"and\nservice:hibiki_grpc_slow_requests:ratio_rate{short} > {threshold}",
                severity,
                f"{{{{ $labels.service }}}} gRPC latency burns the {LATENCY_OBJECTIVE:.0%} <"
                f" {LATENCY_THRESHOLD_SECONDS}s budget {burn}x too fast",
                f"{{{{ $value | humanizePercentage }}}} of {{{{ $labels.service }}}} unary gRPC requests took"
                f" longer than {LATENCY_THRESHOLD_SECONDS}s over the last {long}, and more than"
                f" {threshold:.2%} over the last {short}"
                f" (burn rate {burn}x of a {latency_budget:.0%} budget).",
                for_=for_,
                window=long,
            )
        )
    # A consumer of the live call path lagging means callers wait in silence: page. Any other lag: warning.
    # One rule per severity (promtool refuses two alerts of one name with the same labels).
    lag = "service_topic:hibiki_consumer_lag_messages:sum"
    live_lags = [f'{{service="{service}", topic="{topic}"}}' for service, topic in LIVE_CONSUMERS]
    growing = "\nor\n".join(
        f"(\n  deriv({lag}{s}[10m]) > 0\n  and\n  {lag}{s} > {LAG_FLOOR_MESSAGES}\n)" for s in live_lags
    )
    lag_cases = [
        ("critical", growing, " " + _by_service({svc: text for (svc, _), text in LIVE_CONSUMERS.items()})),
        (
            "warning",
            f"(\n  deriv({lag}[10m]) > 0\n  and\n  {lag} > {LAG_FLOOR_MESSAGES}\n)"
            + "".join(f"\nunless\n{lag}{s}" for s in live_lags),
            "",
        ),
    ]
    for severity, expr, impact in lag_cases:
        rules.append(
            alert(
                "HibikiConsumerLagGrowing",
                expr,
                severity,
                "{{ $labels.service }} is falling behind on {{ $labels.topic }}",
                "The consumer lag of {{ $labels.service }} on {{ $labels.topic }} has been growing for"
                f" 10 minutes and is above {LAG_FLOOR_MESSAGES} messages.{impact}",
                for_="10m",
            )
        )
    rules += [
        alert(
            "HibikiDeadLetters",
            "service_topic_reason:hibiki_dlq_messages:increase15m > 0",
            "warning",
            "{{ $labels.service }} dead-lettered {{ $labels.topic }} records ({{ $labels.reason }})",
            "{{ $labels.service }} sent about {{ $value | humanize }} records of {{ $labels.topic }} to"
            " {{ $labels.topic }}.dlq with reason {{ $labels.reason }} in the last 15 minutes. They were not"
            " processed and are not counted in reports until replayed.",
        ),
        alert(
            "HibikiConsumerRedeliveryLoop",
            f"service_topic:hibiki_consumer_errors:rate5m * 300 >= {CONSUMER_ERRORS_PER_5M}",
            "critical",
            "{{ $labels.service }} keeps failing batches of {{ $labels.topic }}",
            "{{ $labels.service }} failed {{ $value | humanize }} batches of {{ $labels.topic }} in the"
            " last 5 minutes, for 10 minutes: the batch is redelivered again and again and the"
            " partitions behind it do not progress.",
            for_="10m",
        ),
        alert(
            "HibikiConsumerStalled",
            # Over 10 minutes: a restarted pod drops the series until it stalls again, which must not reset
            # the alert while a restart does not help.
            "max_over_time(service_topic_partition:hibiki_consumer_stalled_seconds:max[10m]) > 0",
            "critical",
            "{{ $labels.service }} makes no progress on {{ $labels.topic }}"
            " partition {{ $labels.partition }}",
            "Records of {{ $labels.topic }} partition {{ $labels.partition }} waited up to"
            " {{ $value | humanizeDuration }} without a commit in {{ $labels.service }} in the last 10"
            " minutes: its consumer fails every batch or hangs. The pod reports NOT_SERVING while it lasts,"
            " so its liveness probe restarts it.",
            for_="1m",
        ),
        alert(
            "HibikiOutboxBacklogStuck",
            f"service:hibiki_outbox_backlog:max > {OUTBOX_BACKLOG_STUCK}",
            "critical",
            "{{ $labels.service }} outbox backlog is {{ $value }} records",
            "More than " + str(OUTBOX_BACKLOG_STUCK) + " outgoing events of {{ $labels.service }} have been"
            " waiting in its outbox for 10 minutes: downstream services and the telephony platform see them"
            " late.",
            for_="10m",
        ),
    ]
    # A stalled outbox on the live call path (routing's actions, media-gateway's call events): page.
    # Others: warn.
    age = "service:hibiki_outbox_oldest_pending_age_seconds:max"
    live = "|".join(LIVE_OUTBOXES)
    age_cases = [
        (
            "critical",
            f'{age}{{service=~"{live}"}} > {OUTBOX_OLDEST_PENDING_SECONDS}',
            " " + _by_service(LIVE_OUTBOXES),
        ),
        (
            "warning",
            f'{age} > {OUTBOX_OLDEST_PENDING_SECONDS}\nunless\n{age}{{service=~"{live}"}}',
            "",
        ),
    ]
    for severity, expr, impact in age_cases:
        rules.append(
            alert(
                "HibikiOutboxRelayStalled",
                expr,
                severity,
                "{{ $labels.service }} has not relayed its outbox for {{ $value | humanizeDuration }}",
                "The oldest outgoing event in the outbox of {{ $labels.service }} has been waiting"
                " {{ $value | humanizeDuration }} (threshold"
                f" {OUTBOX_OLDEST_PENDING_SECONDS}s), for 5 minutes: the relay fails or is blocked, and"
                f" downstream services do not see the events.{impact}",
                for_="5m",
            )
        )
    return {"name": ALERT_GROUP, "rules": rules}


# --------------------------------------------------------------------------------------------------------
# Grafana dashboards

DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}


def panel(kind: str, title: str, targets: list[tuple[str, str]], **extra: Any) -> dict[str, Any]:
    """A panel; targets are (PromQL, legend) pairs."""
    return {
        "type": kind,
        "title": title,
        "datasource": DATASOURCE,
        "targets": [
            {"datasource": DATASOURCE, "refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(targets)
        ],
        **extra,
    }


def timeseries(
    title: str,
    targets: list[tuple[str, str]],
    unit: str = "short",
    description: str = "",
    stack: bool = False,
) -> dict[str, Any]:
    custom: dict[str, Any] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never"}
    if stack:
        custom["stacking"] = {"mode": "normal", "group": "A"}
    return panel(
        "timeseries",
        title,
        targets,
        description=description,
        fieldConfig={"defaults": {"unit": unit, "custom": custom}, "overrides": []},
        options={
            "legend": {"displayMode": "table", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    )


def stat(
    title: str, targets: list[tuple[str, str]], unit: str = "short", description: str = ""
) -> dict[str, Any]:
    return panel(
        "stat",
        title,
        targets,
        description=description,
        fieldConfig={"defaults": {"unit": unit}, "overrides": []},
        options={
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "textMode": "auto",
        },
    )


def text(content: str) -> dict[str, Any]:
    return {"type": "text", "title": "", "options": {"mode": "markdown", "content": content}}


def row(title: str) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def layout(sections: list[tuple[str, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """Rows of panels, two per line (text and stat panels: four per line)."""
    panels: list[dict[str, Any]] = []
    y = 0
    next_id = 1
    for title, members in sections:
        header = row(title)
        header["id"] = next_id
        header["gridPos"] = {"h": 1, "w": 24, "x": 0, "y": y}
        next_id += 1
        panels.append(header)
        y += 1
        x = 0
        line_height = 0
        for member in members:
            width = {"stat": 6, "text": 24}.get(member["type"], 12)
            height = {"stat": 4, "text": 3}.get(member["type"], 8)
            if x + width > 24:
                x, y = 0, y + line_height
                line_height = 0
            placed = dict(member)
            placed["id"] = next_id
            next_id += 1
            placed["gridPos"] = {"h": height, "w": width, "x": x, "y": y}
            panels.append(placed)
            x += width
            line_height = max(line_height, height)
        y += line_height
    return panels


def domain_section(key: str, title: str, what: str) -> tuple[str, list[dict[str, Any]]]:
    """A "Domain: …" row: the panels of DOMAIN_PANELS[key] once wired, a marked placeholder until then."""
    wired = DOMAIN_PANELS.get(key)
    if wired:
        return title, wired
    placeholder = text(
        f"**To come:** {what}.\n\nDomain panels are added in `deploy/observability/generate.py`"
        f" (`DOMAIN_PANELS[{key!r}]`); see `deploy/observability/README.md`."
    )
    return f"{title} (to come)", [placeholder]


def dashboard(
    uid: str, title: str, sections: list[tuple[str, list[dict[str, Any]]]], variables: list[Any]
) -> dict[str, Any]:
    return {
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "description": "Generated by deploy/observability/generate.py — edit the generator, not this file.",
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [
            {
                "title": "Hibiki dashboards",
                "type": "dashboards",
                "tags": ["hibiki"],
                "asDropdown": True,
                "includeVars": False,
                "keepTime": True,
            }
        ],
        "panels": layout(sections),
        "refresh": "30s",
        "schemaVersion": 39,
        "tags": ["hibiki"],
        "templating": {
            "list": [
                {
                    "name": "DS_PROMETHEUS",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                    "regex": "",
                    "options": [],
                },
                *variables,
            ]
        },
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "utc",
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "",
    }


# --------------------------------------------------------------------------------------------------------
# Domain panels (series recorded by the hand-written prometheus/rules/hibiki-domain-*.yml). `sel` is
# '{service="$service"}' in a service dashboard and '' elsewhere; `carrier` narrows the SMS panels.

UNDELIVERED_THRESHOLD = 0.2  # as in hibiki-domain-sms-gateway.yml (HibikiSmsUndeliveredRatioHigh)
FALLBACK_THRESHOLD = 0.3  # as in hibiki-domain-routing.yml (HibikiRoutingFallbacksSpike)
LOOKUP_FALLBACK_THRESHOLD = 0.1  # as in hibiki-domain-sms-gateway.yml (HibikiSmsCarrierLookupFallingBack)


def _matchers(*parts: str) -> str:
    inside = ", ".join(p.strip("{}") for p in parts if p.strip("{}"))
    return "{" + inside + "}" if inside else ""


def sms_submission_panels(sel: str = "", carrier: str = "") -> list[dict[str, Any]]:
    m = _matchers(sel, carrier)
    return [
        timeseries(
            "Submits / s by carrier and status",
            [(f"service_carrier_status:hibiki_sms_submits:rate5m{m}", "{{carrier}} {{status}}")],
            "reqps",
            "submit_sm outcomes per part: accepted, the SMPP error code, or breaker_open.",
            stack=True,
        ),
        timeseries(
            "Segments accepted / s by carrier",
            [(f"service_carrier:hibiki_sms_segments:rate5m{m}", "{{carrier}}")],
            "rps",
            stack=True,
        ),
        timeseries(
            "Submit p99 duration by carrier",
            [(f"service_carrier:hibiki_sms_submit_duration_seconds:p99_rate5m{m}", "{{carrier}}")],
            "s",
        ),
        timeseries(
            "Throttled (ESME_RTHROTTLED) / s by carrier",
            [(f"service_carrier:hibiki_sms_throttled:rate5m{m}", "{{carrier}}")],
            "rps",
        ),
    ]


def sms_delivery_panels(sel: str = "", carrier: str = "") -> list[dict[str, Any]]:
    m = _matchers(sel, carrier)
    return [
        timeseries(
            f"Undelivered ratio by carrier (alert > {UNDELIVERED_THRESHOLD:.0%})",
            [(f"service_carrier:hibiki_sms_undelivered:ratio_rate30m{m}", "{{carrier}}")],
            "percentunit",
            "Share of final receipts other than DELIVRD over 30 minutes.",
        ),
        timeseries(
            "Final receipts / s by carrier and state",
            [(f"service_carrier_state:hibiki_sms_final_receipts:rate30m{m}", "{{carrier}} {{state}}")],
            "rps",
            stack=True,
        ),
        timeseries(
            "Results / s by kind and reason",
            [(f"service_kind_reason:hibiki_sms_results:rate5m{_matchers(sel)}", "{{kind}} {{reason}}")],
            "rps",
            "Results produced to sms.results: accepted, delivered / undelivered (receipt state), failed"
            " and rejected (reason).",
            stack=True,
        ),
    ]


def sms_lookup_panels(sel: str = "") -> list[dict[str, Any]]:
    """The number-portability lookup (no series without HIBIKI_SMS_MNP_URL)."""
    m = _matchers(sel)
    return [
        timeseries(
            f"Carrier answers from the static table (alert > {LOOKUP_FALLBACK_THRESHOLD:.0%})",
            [(f"service:hibiki_sms_carrier_lookup_fallbacks:ratio_rate15m{m}", "fallback share")],
            "percentunit",
            "Share of carrier answers over 15 minutes taken from the static prefix table because the"
            " number-portability lookup failed.",
        ),
        timeseries(
            "Carrier lookups / s by result",
            [(f"service_result:hibiki_sms_carrier_lookups:rate5m{m}", "{{result}}")],
            "rps",
            "answered / unsupported: the number-portability service answered; cached; coalesced: shared a"
            " concurrent lookup of the same number; fallback: the static table answered.",
            stack=True,
        ),
        timeseries(
            "Carrier lookup errors / s by cause",
            [(f"service_cause:hibiki_sms_carrier_lookup_errors:rate5m{m}", "{{cause}}")],
            "rps",
            stack=True,
        ),
        timeseries(
            "Carrier lookup p99 duration",
            [(f"service:hibiki_sms_carrier_lookup_duration_seconds:p99_rate5m{m}", "p99")],
            "s",
            "HTTP lookups only (cached answers take none); at most HIBIKI_SMS_MNP_TIMEOUT_SECONDS.",
        ),
    ]


def sms_connector_panels(sel: str = "") -> list[dict[str, Any]]:
    m = _matchers(sel)
    return [
        timeseries(
            "Circuit breaker by connector (worst in 5 min)",
            [(f"service_connector:hibiki_sms_circuit_breaker_state:max_over_time5m{m}", "{{connector}}")],
            "short",
            "0 closed, 1 half-open, 2 open.",
        ),
        timeseries(
            "Uncertain submissions (last 15 min) by cause",
            [(f"service_cause:hibiki_sms_uncertain_submissions:increase15m{m}", "{{cause}}")],
            "short",
            "Outcome unknown: reported as SmsFailed, never resent automatically.",
        ),
        timeseries(
            "Receipts stored / s",
            [(f"service:hibiki_sms_receipts_stored:rate5m{m}", "stored")],
            "rps",
            "Delivery receipts committed (in groups) and only then acknowledged to the SMSC.",
        ),
        timeseries(
            "After a stopped process (last hour)",
            [
                (f"service:hibiki_sms_messages_taken_over:increase1h{m}", "queued messages taken over"),
                (f"service:hibiki_sms_receipts_reconciled:increase1h{m}", "receipts matched by handset"),
            ],
            "short",
            "Queued messages of a stopped sms-gateway process sent by another; receipts whose part a crash"
            " lost, matched to their message by handset and time.",
        ),
        timeseries(
            "Outcomes not recorded (last 5 min)",
            [(f"service:hibiki_sms_outcomes_unrecorded:increase5m{m}", "kept for retry")],
            "short",
            "Send outcomes the database refused; kept in memory and retried.",
        ),
    ]


def sms_retention_panels(sel: str) -> list[dict[str, Any]]:
    return [
        timeseries(
            "Rows deleted by retention (per day) by table",
            [(f"service_table:hibiki_sms_retention_deleted_rows:increase1d{sel}", "{{table}}")],
            "short",
            "Final messages (with their parts and short links) and receipts older than"
            " HIBIKI_SMS_RETENTION_DAYS, hard-deleted.",
        ),
        stat(
            "Retention: last completed run",
            [(f"service:hibiki_sms_retention_last_completed_timestamp_seconds:max{sel} * 1000", "completed")],
            "dateTimeAsIso",
            "Runs at start and every HIBIKI_SMS_RETENTION_INTERVAL_SECONDS (1 h); 1970 before the first run.",
        ),
    ]


def ivr_funnel_panels(sel: str = "") -> list[dict[str, Any]]:
    m = _matchers(sel)
    return [
        stat("Calls in progress", [(f"service:hibiki_routing_calls_in_progress:max{m}", "calls")]),
        stat(
            f"Menu exits to a fallback (alert > {FALLBACK_THRESHOLD:.0%})",
            [(f"service:hibiki_routing_fallbacks:ratio_rate15m{m}", "fallback share")],
            "percentunit",
        ),
        stat(
            "Decision p99 (event → actions)",
            [(f"service:hibiki_routing_decision_latency_seconds:p99_rate5m{m}", "p99")],
            "s",
        ),
        stat("SMS requested / s", [(f"service:hibiki_routing_sms_requests:rate5m{m}", "SMS")], "rps"),
        timeseries(
            "Decisions / s by outcome",
            [(f"service_outcome:hibiki_routing_decisions:rate5m{m}", "{{outcome}}")],
            "rps",
            "routed: a caller reached a route; fallback_*: sent to the menu's fallback; reprompt_*: asked"
            " again; continued: the flow went on; not_in_service: unknown number; ignored_*: stale or late.",
            stack=True,
        ),
        timeseries(
            "Invalid input and timeouts / s, by what followed",
            [(f"service_kind_outcome:hibiki_routing_input_errors:rate5m{m}", "{{kind}} → {{outcome}}")],
            "rps",
            stack=True,
        ),
    ]


def ivr_detail_panels(sel: str = "") -> list[dict[str, Any]]:
    m = _matchers(sel)
    return [
        timeseries(
            "Fallbacks / s by cause",
            [(f"service_cause:hibiki_routing_fallbacks:rate5m{m}", "{{cause}}")],
            "rps",
            stack=True,
        ),
        timeseries(
            "Decision p99 (event → actions)",
            [(f"service:hibiki_routing_decision_latency_seconds:p99_rate5m{m}", "p99")],
            "s",
            "From the call event's occurred_at to its actions being queued: what a caller waits.",
        ),
    ]


def synthesis_panels(sel: str) -> list[dict[str, Any]]:
    return [
        timeseries(
            "Synthesis queue depth (running + waiting)",
            [(f"service:hibiki_synthesis_queue_depth:max{sel}", "depth")],
            "short",
            "Beyond HIBIKI_SYNTHESIS_WORKERS + HIBIKI_SYNTHESIS_QUEUE, requests are refused.",
        ),
        timeseries(
            "Syntheses and refusals / s",
            [
                (f"service:hibiki_synthesis:rate5m{sel}", "synthesized"),
                (f"service:hibiki_synthesis_rejected:rate5m{sel}", "refused (queue full)"),
            ],
            "rps",
        ),
        timeseries(
            "Synthesis p99 duration",
            [(f"service:hibiki_synthesis_duration_seconds:p99_rate5m{sel}", "p99")],
            "s",
        ),
        timeseries(
            "Audio cache lookups / s",
            [(f"service_result:hibiki_audio_cache_lookups:rate5m{sel}", "{{result}}")],
            "rps",
            stack=True,
        ),
        timeseries(
            "Audio served (bytes / s) by channel",
            [(f"service_channel:hibiki_audio_served_bytes:rate5m{sel}", "{{channel}}")],
            "Bps",
            stack=True,
        ),
    ]


def report_panels(sel: str) -> list[dict[str, Any]]:
    return [
        stat(
            "Newest applied event age",
            [(f"service:hibiki_reporting_freshness_seconds:max{sel}", "age")],
            "s",
            "Stale only when events wait too (alert HibikiReportStale); old at night is normal.",
        ),
        stat(
            "Final through (report days before are final)",
            [(f"service:hibiki_reporting_final_through_timestamp_seconds:max{sel} * 1000", "final")],
            "dateTimeAsIso",
            "Start (00:00 Asia/Tokyo) of the last final report day.",
        ),
        timeseries(
            "Newest applied event age",
            [(f"service:hibiki_reporting_freshness_seconds:max{sel}", "age")],
            "s",
        ),
        timeseries(
            "Rows deleted by retention (per day) by table",
            [(f"service_table:hibiki_reporting_retention_deleted_rows:increase1d{sel}", "{{table}}")],
            "short",
        ),
    ]


MEDIA_LINES = 4  # HIBIKI_MEDIA_MAX_CALLS of a replica (deploy/k8s/base/media-gateway)
MEDIA_BUSY_CALLS = 4  # as in hibiki-domain-media-gateway.yml (HibikiMediaGatewayBusy)


def media_call_panels(sel: str = "") -> list[dict[str, Any]]:
    m = _matchers(sel)
    answered = _matchers(sel, '{result="answered"}')
    return [
        stat("Calls in progress", [(f"service:hibiki_media_calls_active:sum{m}", "calls")]),
        stat(
            "Calls answered / s", [(f"service_result:hibiki_media_calls:rate5m{answered}", "answered")], "rps"
        ),
        stat(
            f"Busiest replica (of {MEDIA_LINES} lines)",
            [(f"max(service_instance:hibiki_media_calls_active:max{m})", "calls")],
            "short",
            f"Calls in progress on the fullest replica (HibikiMediaGatewayBusy from {MEDIA_BUSY_CALLS}).",
        ),
        stat("Prompt audio p99", [(f"service:hibiki_media_prompt_audio_seconds:p99_rate5m{m}", "p99")], "s"),
        timeseries(
            "INVITEs / s by result",
            [(f"service_result:hibiki_media_calls:rate5m{m}", "{{result}}")],
            "rps",
            "answered; refused: unknown_number (404: no tenant has the number), busy (486: no line left),"
            " not_ready (503: starting or draining), failed (503: the call could not be recorded).",
            stack=True,
        ),
        timeseries(
            f"Calls in progress by replica (alert at {MEDIA_BUSY_CALLS} of {MEDIA_LINES})",
            [(f"service_instance:hibiki_media_calls_active:max{m}", "{{instance}}")],
            "short",
        ),
        timeseries(
            "Call events / s by kind",
            [(f"service_kind:hibiki_media_call_events:rate5m{m}", "{{kind}}")],
            "rps",
            "call.events written to the outbox: started, digits, input timed out, prompt finished,"
            " transferred, ended.",
            stack=True,
        ),
        timeseries(
            "Calls ended / s by reason",
            [(f"service_reason:hibiki_media_calls_ended:rate5m{m}", "{{reason}}")],
            "rps",
            "platform_failure: cut off by a replica's shutdown after the drain, or reported for a process"
            " that stopped.",
            stack=True,
        ),
    ]


def media_detail_panels(sel: str = "") -> list[dict[str, Any]]:
    m = _matchers(sel)
    return [
        timeseries("DTMF keys / s", [(f"service:hibiki_media_dtmf_keys:rate5m{m}", "keys")], "rps"),
        timeseries(
            "Prompt audio fetch duration",
            [
                (f"service:hibiki_media_prompt_audio_seconds:p50_rate5m{m}", "p50"),
                (f"service:hibiki_media_prompt_audio_seconds:p99_rate5m{m}", "p99"),
            ],
            "s",
            "Time to have a prompt's audio on disk before it plays: near zero from the cache, else a"
            " request to guidance-tts.",
        ),
        timeseries(
            "Prompts without audio (last 15 min)",
            [(f"service:hibiki_media_prompts_without_audio:increase15m{m}", "skipped")],
            "short",
            "Prompts skipped because no audio was available: the caller heard silence.",
        ),
        timeseries(
            "Calls lost and event writes failed",
            [
                (f"service:hibiki_media_lost_calls:increase15m{m}", "calls of stopped processes (15 min)"),
                (f"service:hibiki_media_event_write_failures:increase2m{m}", "failed event commits (2 min)"),
            ],
            "short",
        ),
    ]


SERVICE_SELECTOR = '{service="$service"}'
DOMAIN_PANELS.update(
    {
        "overview-sms": [*sms_delivery_panels()[:1], *sms_submission_panels()[:1], *sms_connector_panels()],
        "overview-ivr": ivr_funnel_panels(),
        "guidance-tts": synthesis_panels(SERVICE_SELECTOR),
        "routing": [*ivr_funnel_panels(SERVICE_SELECTOR), *ivr_detail_panels(SERVICE_SELECTOR)],
        "sms-gateway": [
            *sms_submission_panels(SERVICE_SELECTOR),
            *sms_delivery_panels(SERVICE_SELECTOR),
            *sms_lookup_panels(SERVICE_SELECTOR),
            *sms_connector_panels(SERVICE_SELECTOR),
            *sms_retention_panels(SERVICE_SELECTOR),
        ],
        "reporting": report_panels(SERVICE_SELECTOR),
        "overview-media": media_call_panels(),
        "media-gateway": [*media_call_panels(SERVICE_SELECTOR), *media_detail_panels(SERVICE_SELECTOR)],
    }
)

CARRIER_VARIABLE = {
    "name": "carrier",
    "label": "Carrier",
    "type": "query",
    "datasource": DATASOURCE,
    "query": {
        "query": "label_values(service_carrier_status:hibiki_sms_submits:rate5m, carrier)",
        "refId": "A",
    },
    "definition": "label_values(service_carrier_status:hibiki_sms_submits:rate5m, carrier)",
    "refresh": 2,
    "multi": True,
    "includeAll": True,
    "allValue": ".*",
    "current": {"text": ["All"], "value": ["$__all"]},
    "options": [],
    "sort": 1,
    "hide": 0,
}


def sms_carriers() -> dict[str, Any]:
    carrier = '{carrier=~"$carrier"}'
    sections = [
        ("Submissions", sms_submission_panels(carrier=carrier)),
        ("Delivery", sms_delivery_panels(carrier=carrier)),
        ("Connectors", sms_connector_panels()),
        ("Carrier lookup", sms_lookup_panels()),
    ]
    return dashboard("hibiki-sms-carriers", "Hibiki / SMS carriers", sections, [CARRIER_VARIABLE])


def ivr_funnel() -> dict[str, Any]:
    sections = [
        ("Calls and decisions", ivr_funnel_panels()),
        ("Fallbacks and speed", ivr_detail_panels()),
        (
            "Abandonment per route",
            [
                text(
                    "Abandonment per route is a report figure, not a metric: route ids are tenant data"
                    " and would make unbounded label values. See the reporting API"
                    " (`ReportService.GetRouteFunnel`, `GetDailyReport`) or the CSV export."
                )
            ],
        ),
    ]
    return dashboard("hibiki-ivr-funnel", "Hibiki / IVR funnel", sections, [])


def overview() -> dict[str, Any]:
    sections = [
        (
            "Services",
            [
                stat(f"{s.name}: instances up", [(f'service:up:sum{{service="{s.name}"}}', s.name)])
                for s in SERVICES
            ],
        ),
        (
            "gRPC (rate, errors, duration)",
            [
                timeseries(
                    "Requests / s",
                    [("sum by (service) (service_method_code:hibiki_grpc_requests:rate5m)", "{{service}}")],
                    "reqps",
                    "All RPCs except health checks and reflection.",
                ),
                timeseries(
                    "Server-error ratio (SLO: 99.9 % available)",
                    [("service:hibiki_grpc_errors:ratio_rate5m", "{{service}}")],
                    "percentunit",
                    f"Share of RPCs that ended with {ERROR_CODES}.",
                ),
                timeseries(
                    "p99 duration (unary RPCs)",
                    [("service:hibiki_grpc_request_duration_seconds:p99_rate5m", "{{service}}")],
                    "s",
                ),
                timeseries(
                    f"Slower than {LATENCY_THRESHOLD_SECONDS}s (SLO: < 1 %)",
                    [("service:hibiki_grpc_slow_requests:ratio_rate5m", "{{service}}")],
                    "percentunit",
                ),
            ],
        ),
        (
            "Kafka consumers",
            [
                timeseries(
                    "Consumed records / s",
                    [
                        (
                            "service_topic_result:hibiki_consumer_messages:rate5m",
                            "{{service}} {{topic}} {{result}}",
                        )
                    ],
                    "rps",
                ),
                timeseries(
                    "Consumer lag (messages)",
                    [("service_topic:hibiki_consumer_lag_messages:sum", "{{service}} {{topic}}")],
                    "short",
                    "End offset minus committed offset, summed over partitions.",
                ),
                timeseries(
                    "Dead-lettered records (last 15 min)",
                    [
                        (
                            "service_topic_reason:hibiki_dlq_messages:increase15m",
                            "{{service}} {{topic}} {{reason}}",
                        )
                    ],
                    "short",
                ),
                timeseries(
                    "Failed batches / s (redelivered)",
                    [("service_topic:hibiki_consumer_errors:rate5m", "{{service}} {{topic}}")],
                    "short",
                ),
                timeseries(
                    "Batch p99 duration",
                    [
                        (
                            "service_topic:hibiki_consumer_batch_duration_seconds:p99_rate5m",
                            "{{service}} {{topic}}",
                        )
                    ],
                    "s",
                ),
            ],
        ),
        (
            "Transactional outbox",
            [
                timeseries(
                    "Outbox backlog (records)",
                    [("service:hibiki_outbox_backlog:max", "{{service}}")],
                    "short",
                    "Last value seen by the relay; non-zero only after a full relay batch.",
                ),
                timeseries(
                    "Published / s",
                    [("service_topic:hibiki_outbox_published:rate5m", "{{service}} {{topic}}")],
                    "rps",
                ),
                timeseries(
                    "Oldest waiting record",
                    [("service:hibiki_outbox_oldest_pending_age_seconds:max", "{{service}}")],
                    "s",
                    "Age of the oldest record the relay saw waiting; keeps growing while the relay fails.",
                ),
                timeseries(
                    "Relay errors / s",
                    [("service:hibiki_outbox_relay_errors:rate5m", "{{service}}")],
                    "short",
                ),
            ],
        ),
        domain_section(
            "overview-sms",
            "Domain: SMS carriers",
            "SMS by carrier and final status, undelivered ratio by carrier, connector circuit breakers",
        ),
        domain_section(
            "overview-ivr", "Domain: IVR funnel", "calls, routing decisions and abandonment per route"
        ),
        domain_section(
            "overview-media", "Domain: calls (SIP)", "calls in progress, INVITEs by result, endings by reason"
        ),
    ]
    return dashboard("hibiki-overview", "Hibiki / Overview", sections, [])


def service_dashboard(service: Service) -> dict[str, Any]:
    sel = '{service="$service"}'
    sections = [
        (
            "Service",
            [
                stat("Instances up", [(f"service:up:sum{sel}", "up")]),
                stat("Instances scraped", [(f"service:up:count{sel}", "targets")]),
                stat(
                    "Versions running", [(f"count(service_version:hibiki_build_info:count{sel})", "versions")]
                ),
                stat("Outbox backlog", [(f"service:hibiki_outbox_backlog:max{sel}", "backlog")]),
            ],
        ),
        (
            "gRPC (rate, errors, duration)",
            [
                timeseries(
                    "Requests / s by method",
                    [
                        (
                            f"sum by (method) (service_method_code:hibiki_grpc_requests:rate5m{sel})",
                            "{{method}}",
                        )
                    ],
                    "reqps",
                    stack=True,
                ),
                timeseries(
                    "Requests / s by status code",
                    [(f"sum by (code) (service_method_code:hibiki_grpc_requests:rate5m{sel})", "{{code}}")],
                    "reqps",
                    stack=True,
                ),
                timeseries(
                    "Server-error ratio",
                    [
                        (f"service:hibiki_grpc_errors:ratio_rate5m{sel}", "5m"),
                        (f"service:hibiki_grpc_errors:ratio_rate1h{sel}", "1h"),
                        (f"service:hibiki_grpc_errors:ratio_rate6h{sel}", "6h"),
                    ],
                    "percentunit",
                ),
                timeseries(
                    f"Slower than {LATENCY_THRESHOLD_SECONDS}s (unary)",
                    [
                        (f"service:hibiki_grpc_slow_requests:ratio_rate5m{sel}", "5m"),
                        (f"service:hibiki_grpc_slow_requests:ratio_rate1h{sel}", "1h"),
                        (f"service:hibiki_grpc_slow_requests:ratio_rate6h{sel}", "6h"),
                    ],
                    "percentunit",
                ),
                timeseries(
                    "p99 duration by method",
                    [(f"service_method:hibiki_grpc_request_duration_seconds:p99_rate5m{sel}", "{{method}}")],
                    "s",
                ),
                timeseries(
                    "p50 duration by method",
                    [(f"service_method:hibiki_grpc_request_duration_seconds:p50_rate5m{sel}", "{{method}}")],
                    "s",
                ),
            ],
        ),
        (
            "Kafka consumers",
            [
                timeseries(
                    "Consumed records / s",
                    [(f"service_topic_result:hibiki_consumer_messages:rate5m{sel}", "{{topic}} {{result}}")],
                    "rps",
                ),
                timeseries(
                    "Consumer lag by partition",
                    [
                        (
                            f"service_topic_partition:hibiki_consumer_lag_messages:max{sel}",
                            "{{topic}} [{{partition}}]",
                        )
                    ],
                    "short",
                ),
                timeseries(
                    "Dead-lettered records / s by reason",
                    [(f"service_topic_reason:hibiki_dlq_messages:rate5m{sel}", "{{topic}} {{reason}}")],
                    "rps",
                ),
                timeseries(
                    "Failed batches / s (redelivered)",
                    [(f"service_topic:hibiki_consumer_errors:rate5m{sel}", "{{topic}}")],
                    "short",
                ),
                timeseries(
                    "Batch p99 duration",
                    [(f"service_topic:hibiki_consumer_batch_duration_seconds:p99_rate5m{sel}", "{{topic}}")],
                    "s",
                ),
            ],
        ),
        (
            "Transactional outbox",
            [
                timeseries(
                    "Outbox backlog (records)", [(f"service:hibiki_outbox_backlog:max{sel}", "backlog")]
                ),
                timeseries(
                    "Published / s",
                    [(f"service_topic:hibiki_outbox_published:rate5m{sel}", "{{topic}}")],
                    "rps",
                ),
                timeseries(
                    "Oldest waiting record",
                    [(f"service:hibiki_outbox_oldest_pending_age_seconds:max{sel}", "age")],
                    "s",
                    "Age of the oldest record the relay saw waiting; keeps growing while the relay fails.",
                ),
                timeseries(
                    "Relay errors / s", [(f"service:hibiki_outbox_relay_errors:rate5m{sel}", "errors")]
                ),
            ],
        ),
        domain_section(service.name, service.domain_row, service.domain_what),
    ]
    variables = [
        {
            "name": "service",
            "type": "constant",
            "query": service.name,
            "hide": 2,
            "current": {"text": service.name, "value": service.name},
            "options": [{"selected": True, "text": service.name, "value": service.name}],
        }
    ]
    return dashboard(f"hibiki-{service.name}", f"Hibiki / {service.name}", sections, variables)


# --------------------------------------------------------------------------------------------------------
# Output


class _Dumper(yaml.SafeDumper):  # type: ignore[misc]
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)

HEADER = "# Generated by deploy/observability/generate.py — edit the generator and rerun, not this file.\n"


def outputs() -> dict[Path, str]:
    files: dict[Path, str] = {}

    def rules_file(groups: list[dict[str, Any]]) -> str:
        return HEADER + str(
            yaml.dump({"groups": groups}, Dumper=_Dumper, sort_keys=False, width=100000, allow_unicode=True)
        )

    files[RULES_DIR / "hibiki-runtime-recording.yml"] = rules_file([recording_rules(s) for s in SERVICES])
    files[RULES_DIR / "hibiki-runtime-alerts.yml"] = rules_file([alert_rules()])
    files[DASHBOARDS_DIR / "hibiki-overview.json"] = (
        json.dumps(overview(), indent=2, ensure_ascii=False) + "\n"
    )
    for s in SERVICES:
        files[DASHBOARDS_DIR / f"hibiki-{s.name}.json"] = (
            json.dumps(service_dashboard(s), indent=2, ensure_ascii=False) + "\n"
        )
    for name, build in (("hibiki-sms-carriers", sms_carriers), ("hibiki-ivr-funnel", ivr_funnel)):
        files[DASHBOARDS_DIR / f"{name}.json"] = json.dumps(build(), indent=2, ensure_ascii=False) + "\n"

    # Kubernetes (Prometheus Operator + Grafana sidecar): every rule file, generated or hand-written, in one
    # PrometheusRule; every dashboard in a ConfigMap.
    groups: list[dict[str, Any]] = []
    for path in sorted({*RULES_DIR.glob("*.yml"), *(p for p in files if p.parent == RULES_DIR)}):
        content = files[path] if path in files else path.read_text(encoding="utf-8")
        groups += yaml.safe_load(content)["groups"]
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "hibiki-rules", "labels": {"app.kubernetes.io/part-of": "hibiki"}},
        "spec": {"groups": groups},
    }
    files[HERE / "prometheus-rule.yaml"] = HEADER + str(
        yaml.dump(rule, Dumper=_Dumper, sort_keys=False, width=100000, allow_unicode=True)
    )
    dashboards = sorted(p for p in files if p.parent == DASHBOARDS_DIR)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["prometheus-rule.yaml"],
        # One ConfigMap per dashboard (stays far below the 256 KiB of kubectl's last-applied annotation).
        "configMapGenerator": [
            {
                "name": f"grafana-dashboard-{path.stem}",
                "files": [path.relative_to(HERE).as_posix()],
                "options": {
                    "disableNameSuffixHash": True,
                    # the label the Grafana dashboard sidecar (kube-prometheus-stack default) watches
                    "labels": {"grafana_dashboard": "1", "app.kubernetes.io/part-of": "hibiki"},
                },
            }
            for path in dashboards
        ],
    }
    files[HERE / "kustomization.yaml"] = HEADER + str(
        yaml.dump(kustomization, Dumper=_Dumper, sort_keys=False)
    )
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="fail if a generated file differs")
    args = parser.parse_args(argv)
    stale = []
    for path, content in outputs().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == content:
            continue
        if args.check:
            stale.append(path.relative_to(HERE))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
            print(f"wrote {path.relative_to(HERE)}")
    if stale:
        print(
            "stale generated files (run deploy/observability/generate.py):",
            *stale,
            sep="\n  ",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
