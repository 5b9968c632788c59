"""Read the Prometheus rules and Grafana dashboards of deploy/observability and the metric names they use.

Shared by tests/observability (static checks) and tests/integration/test_observability_metrics.py (scrape of a
running service).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
OBSERVABILITY = ROOT / "deploy" / "observability"
RULES_DIR = OBSERVABILITY / "prometheus" / "rules"
RULE_TESTS_DIR = OBSERVABILITY / "prometheus" / "tests"
DASHBOARDS_DIR = OBSERVABILITY / "grafana" / "dashboards"
RUNBOOKS_DIR = ROOT / "docs" / "runbooks"

SERVICES = ("guidance-tts", "routing", "sms-gateway", "reporting", "media-gateway")
# Series Prometheus makes itself for every target.
SYNTHETIC = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})

_KEYWORDS = frozenset(
    {
        "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset",
        "bool", "inf", "nan", "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk",
        "quantile", "count_values", "group",
    }
)  # fmt: skip
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_LABEL_LIST = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_TOKEN = re.compile(r"(?<![\w.$:])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """Metric names (raw or recorded) an expression selects; functions, keywords and labels are left out."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _LABEL_LIST.sub(r"\1", text)
    names = set()
    for name, call in _TOKEN.findall(text):
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_MATCHER_LABEL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
# Labels Prometheus attaches to every scraped series (not the service's to expose).
TARGET_LABELS = frozenset({"job", "instance"})


def label_names(expr: str) -> set[str]:
    """Label names an expression groups by, joins on or matches on (target labels left out)."""
    text = _STRING.sub('""', expr)
    names: set[str] = set()
    for listed in _LABEL_LISTS.findall(text):
        names |= {name.strip() for name in listed.split(",") if name.strip()}
    for block in _MATCHERS.findall(text):
        names |= set(_MATCHER_LABEL.findall(block))
    return names - TARGET_LABELS


def label_requirements() -> list[tuple[frozenset[str], frozenset[str], str]]:
    """(raw metrics, labels, expression) of every rule and dashboard query made of raw metrics only.

    Each label must be on at least one of the metrics (a ratio of `_bucket{le=…}` to `_count` needs `le` on
    the buckets only). Expressions on recorded series rely on the labels their recording rules keep.
    """
    exprs = [rule["expr"] for rule in rules()]
    exprs += [expr for dashboard in dashboards().values() for expr in dashboard_exprs(dashboard)]
    found = []
    for expr in exprs:
        names = metric_names(expr)
        raw = raw_names(names)
        labels = label_names(expr)
        if raw and raw == names and labels:
            found.append((frozenset(raw), frozenset(labels), expr))
    return found


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


def rules(files: list[Path] | None = None) -> Iterator[dict[str, Any]]:
    for path in files if files is not None else rule_files():
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            yield from group["rules"]


def alerts() -> list[dict[str, Any]]:
    return [r for r in rules() if "alert" in r]


def recorded_names() -> set[str]:
    return {r["record"] for r in rules() if "record" in r}


def dashboards() -> dict[Path, dict[str, Any]]:
    return {
        path: json.loads(path.read_text(encoding="utf-8")) for path in sorted(DASHBOARDS_DIR.glob("*.json"))
    }


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # collapsed rows keep their panels inside


def dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in panels(dashboard) for t in p.get("targets", []) if t.get("expr")]


def referenced_names(files: list[Path] | None = None, with_dashboards: bool = True) -> set[str]:
    """Every metric name used by the rules (and the dashboards), recorded series included."""
    names: set[str] = set()
    for rule in rules(files):
        names |= metric_names(rule["expr"])
    if with_dashboards:
        for dashboard in dashboards().values():
            for expr in dashboard_exprs(dashboard):
                names |= metric_names(expr)
    return names


def raw_names(names: set[str]) -> set[str]:
    """The names services must expose: not recorded series (level:metric:ops), not Prometheus' own."""
    return {n for n in names if ":" not in n and n not in SYNTHETIC}


def service_of(name: str) -> str | None:
    """The service whose prefix a raw metric name carries (hibiki_sms_gateway_… → sms-gateway)."""
    for service in sorted(SERVICES, key=len, reverse=True):
        prefix = "hibiki_" + service.replace("-", "_") + "_"
        if name.startswith(prefix):
            return service
    return None


def prefix_of(service: str) -> str:
    return "hibiki_" + service.replace("-", "_") + "_"


def exposed_names(exposition: str) -> set[str]:
    """Sample names a /metrics text can produce, from its # TYPE lines (also families with no sample yet)."""
    names: set[str] = set()
    for line in exposition.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[:2] == ["#", "TYPE"]:
            name, kind = parts[2], parts[3]
            if kind in ("histogram", "gaugehistogram"):
                names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
            elif kind == "summary":
                names |= {name, f"{name}_count", f"{name}_sum"}
            elif kind == "counter":
                names |= {name, name.removesuffix("_total") + "_total"}
            elif kind == "info":
                names.add(f"{name}_info")
            else:
                names.add(name)
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names
