"""Prometheus rules: promtool checks and unit tests pass, generated files are fresh, alerts are complete."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.observability.metric_refs import (
    OBSERVABILITY,
    ROOT,
    RUNBOOKS_DIR,
    SERVICES,
    alerts,
    metric_names,
    recorded_names,
    referenced_names,
    rules,
)


def test_promtool_check_and_rule_unit_tests_pass() -> None:
    """deploy/observability/check.sh runs `promtool check rules` and `promtool test rules`."""
    result = subprocess.run(
        [str(OBSERVABILITY / "check.sh")], capture_output=True, text=True, timeout=600, cwd=ROOT, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "SUCCESS" in output
    assert "FAILED" not in output


def test_generated_rules_and_dashboards_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(OBSERVABILITY / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_every_rule_file_has_unit_tests() -> None:
    """Each rule file is loaded by at least one promtool test file (so its alerts are exercised)."""
    tested = set()
    for test_file in (OBSERVABILITY / "prometheus" / "tests").glob("*.yml"):
        for rule_file in yaml.safe_load(test_file.read_text(encoding="utf-8"))["rule_files"]:
            tested.add((test_file.parent / rule_file).resolve())
    for rule_file in (OBSERVABILITY / "prometheus" / "rules").glob("*.yml"):
        assert rule_file.resolve() in tested, f"{rule_file.name} is not loaded by any promtool test"


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for test_file in (OBSERVABILITY / "prometheus" / "tests").glob("*.yml"):
        for case in yaml.safe_load(test_file.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {a["alert"] for a in alerts()}
    assert names - firing == set(), "alerts never tested firing"
    assert names - silent == set(), "alerts never tested not firing"


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: f"{r['alert']}-{r['labels'].get('severity')}")
def test_alert_has_labels_annotations_and_runbook(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    assert re.fullmatch(r"Hibiki[A-Z][A-Za-z]+", name)
    assert rule["labels"]["severity"] in {"critical", "warning"}
    assert rule["labels"]["service"]
    annotations = rule["annotations"]
    assert annotations["summary"] and annotations["description"]
    url = annotations["runbook_url"]
    assert url.endswith(f"docs/runbooks/{name}.md"), url
    runbook = RUNBOOKS_DIR / f"{name}.md"
    assert runbook.is_file(), f"missing runbook {runbook.relative_to(ROOT)}"
    text = runbook.read_text(encoding="utf-8")
    assert text.startswith(f"# {name}\n")
    for section in ("## What it means", "## Impact", "## Diagnose", "## What to do"):
        assert section in text, f"{runbook.name} lacks {section!r}"


def test_runbooks_match_alerts_and_are_indexed() -> None:
    names = {a["alert"] for a in alerts()}
    pages = {p.stem for p in RUNBOOKS_DIR.glob("*.md")} - {"README"}
    assert pages == names, "runbooks without an alert, or alerts without a runbook"
    index = (RUNBOOKS_DIR / "README.md").read_text(encoding="utf-8")
    for name in names:
        assert f"({name}.md)" in index, f"{name} is not listed in docs/runbooks/README.md"


def test_alerts_and_dashboards_use_only_defined_recorded_series() -> None:
    used = {n for n in referenced_names() if ":" in n}
    assert used - recorded_names() == set()


def test_recording_rules_label_every_series_with_a_known_service() -> None:
    for rule in rules():
        if "record" in rule:
            assert rule["record"].split(":")[0].startswith("service"), rule["record"]
            assert rule.get("labels", {}).get("service") in SERVICES, rule["record"]


def test_recording_rule_names_are_defined_once_per_service() -> None:
    seen: set[tuple[str, str]] = set()
    for rule in rules():
        if "record" in rule:
            key = (rule["record"], rule["labels"]["service"])
            assert key not in seen, key
            seen.add(key)


def test_metric_name_extraction() -> None:
    assert metric_names(
        'sum by (topic, le) (rate(hibiki_routing_consumer_batch_duration_seconds_bucket{le="0.5"}[5m]))'
    ) == {"hibiki_routing_consumer_batch_duration_seconds_bucket"}
    assert metric_names(
        'label_replace(up{job=~"a|b"}, "service", "$1", "job", "(.+)") == 0 unless x:y:z offset 15m'
    ) == {"up", "x:y:z"}
    assert metric_names('sum(a_total) / ignoring(code) group_left b{service="$service"}') == {"a_total", "b"}


def test_check_script_refuses_clearly_without_promtool_when_not_root() -> None:
    with tempfile.TemporaryDirectory(prefix="hibiki-check-") as work:
        result = _run_check_without_promtool(Path(work))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "promtool is not installed and we are not root" in result.stderr
    assert "apt-get install" in result.stderr


def _run_check_without_promtool(work: Path) -> subprocess.CompletedProcess[str]:
    """check.sh as an unprivileged user whose PATH has the basic tools but no promtool."""
    work.chmod(0o755)  # readable by the unprivileged user
    bin_dir = work / "bin"
    bin_dir.mkdir()
    for tool in ("id", "head"):
        found = shutil.which(tool)
        assert found
        (bin_dir / tool).symlink_to(found)
    command = ["/bin/bash", str(OBSERVABILITY / "check.sh")]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: cannot test the non-root refusal")
        command = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        env={"PATH": str(bin_dir), "HOME": str(work)},
        cwd=work,
        check=False,
        timeout=60,
    )


def test_rule_tests_evaluate_recording_groups_before_alerts() -> None:
    """group_eval_order names every group of the test's rule files, recording groups first (else the order is
    random and an alert may see the previous step's recorded value)."""
    for test_file in (OBSERVABILITY / "prometheus" / "tests").glob("*.yml"):
        spec = yaml.safe_load(test_file.read_text(encoding="utf-8"))
        groups = [
            group
            for rule_file in spec["rule_files"]
            for group in yaml.safe_load((test_file.parent / rule_file).read_text(encoding="utf-8"))["groups"]
        ]
        order = spec.get("group_eval_order", [])
        assert sorted(order) == sorted(g["name"] for g in groups), test_file.name
        kinds = {g["name"]: any("alert" in r for r in g["rules"]) for g in groups}
        seen_alerts = False
        for name in order:
            seen_alerts = seen_alerts or kinds[name]
            assert not (seen_alerts and not kinds[name]), (
                f"{test_file.name}: recording group {name} after alerts"
            )
