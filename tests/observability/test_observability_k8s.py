"""deploy/observability as a kustomization: one PrometheusRule (all rule files), a ConfigMap per dashboard."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import jsonschema
import pytest
import yaml

from tests.observability.metric_refs import DASHBOARDS_DIR, OBSERVABILITY, ROOT, rule_files

PROMETHEUS_RULE_SCHEMA = ROOT / "deploy" / "k8s" / "schemas" / "monitoring.coreos.com-v1-prometheusrule.json"


def _rule_file_groups() -> list[dict[str, Any]]:
    return [
        group for path in rule_files() for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
    ]


def test_prometheus_rule_holds_every_rule_file_and_validates() -> None:
    rule = yaml.safe_load((OBSERVABILITY / "prometheus-rule.yaml").read_text(encoding="utf-8"))
    assert rule["spec"]["groups"] == _rule_file_groups()
    if not PROMETHEUS_RULE_SCHEMA.is_file():
        pytest.skip(f"no schema at {PROMETHEUS_RULE_SCHEMA}")
    schema = json.loads(PROMETHEUS_RULE_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(rule)


def test_kustomize_renders_the_rule_and_the_dashboards() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (kustomize) is not installed")
    result = subprocess.run(
        [kubectl, "kustomize", str(OBSERVABILITY)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    objects = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    rules = [o for o in objects if o["kind"] == "PrometheusRule"]
    assert [r["metadata"]["name"] for r in rules] == ["hibiki-rules"]
    assert rules[0]["spec"]["groups"] == _rule_file_groups()
    maps = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ConfigMap"}
    for path in DASHBOARDS_DIR.glob("*.json"):
        config_map = maps[f"grafana-dashboard-{path.stem}"]
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert json.loads(config_map["data"][path.name]) == json.loads(path.read_text(encoding="utf-8"))
