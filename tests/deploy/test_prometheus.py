"""Prometheus configuration and alert rules, checked and unit-tested by promtool."""

from __future__ import annotations

import re
from pathlib import Path

from tests.deploy.tools import ALERT_TESTS, ALERTS, PROMETHEUS_CONFIG, ROOT, load_yaml, run, tool


def test_prometheus_config_is_valid() -> None:
    result = run(tool("promtool"), "check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_alert_rules_are_valid() -> None:
    result = run(tool("promtool"), "check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rejects_a_broken_rule(tmp_path: Path) -> None:
    broken = tmp_path / "rules.yml"
    broken.write_text("groups:\n- name: x\n  rules:\n  - alert: X\n    expr: rate(up[5m] > 1\n")
    result = run(tool("promtool"), "check", "rules", str(broken))
    assert result.returncode != 0


def test_alert_unit_tests_pass() -> None:
    result = run(tool("promtool"), "test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_test_that_fires_it() -> None:
    alerts = {
        rule["alert"]
        for group in load_yaml(ALERTS)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    fired = {
        case["alertname"]
        for test in load_yaml(ALERT_TESTS)["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    silent = {
        case["alertname"]
        for test in load_yaml(ALERT_TESTS)["tests"]
        for case in test.get("alert_rule_test", [])
        if not case.get("exp_alerts")
    }
    assert alerts - fired == set(), "alerts without a firing test"
    assert alerts - silent == set(), "alerts without a test that they stay silent"


def test_alerts_carry_severity_and_a_summary() -> None:
    for group in load_yaml(ALERTS)["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
                assert rule["annotations"]["summary"], rule["alert"]
                assert rule["annotations"]["description"], rule["alert"]


API_JOB, WORKER_JOB = 'job="inkwell"', 'job="inkwell-worker"'
# The job matchers a selector of each family of series may carry: the API's own series come
# from job inkwell, the event worker's from job inkwell-worker, `up` from either.
JOB_OF_SERIES = {
    r"http_server_\w+|idempotency_\w+|cache_\w+|rate_limit\w+|ai_\w+": {API_JOB},
    r"outbox_\w+|events?_\w+": {WORKER_JOB},
    r"up": {API_JOB, WORKER_JOB, 'job=~"inkwell|inkwell-worker"'},
}


def test_alerts_only_select_this_service() -> None:
    """http_server_request_duration_seconds is a semantic-convention name that other services
    export too: every selector of the service's own series must be scoped to its job, the
    API's (inkwell) or the event worker's (inkwell-worker)."""
    for names, jobs in JOB_OF_SERIES.items():
        selector = re.compile(rf"(?<![\w:])({names})(?![\w:(])(\{{[^}}]*\}})?")
        for group in load_yaml(ALERTS)["groups"]:
            for rule in group["rules"]:
                name = rule.get("alert") or rule.get("record")
                for match in selector.finditer(rule["expr"]):
                    matchers = match.group(2) or ""
                    found = set(re.findall(r'job=~?"[^"]*"', matchers))
                    assert found, f"{name}: {match.group(0)} selects no job"
                    assert found <= jobs, f"{name}: {match.group(0)}"


def test_event_alerts_select_the_job_compose_and_kubernetes_scrape() -> None:
    """The worker's job label is the compose scrape job's name and the Kubernetes Service's
    (through its ServiceMonitor): an alert on another job would never fire."""
    jobs = {job["job_name"] for job in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]}
    service = load_yaml(ROOT / "deploy" / "k8s" / "worker-service.yaml")
    assert {"inkwell", "inkwell-worker"} <= jobs
    assert service["metadata"]["name"] == "inkwell-worker"


RUNBOOK_BASE = "https://git.example.com/inkwell/-/blob/main/"


def _anchors(markdown: str) -> set[str]:
    return {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in markdown.splitlines()
        if line.startswith("#")
    }


def test_alerts_on_the_optional_dependencies_link_an_existing_runbook() -> None:
    rules = {
        rule["alert"]: rule
        for group in load_yaml(ALERTS)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    needed = {
        "InkwellRateLimiterFailingOpen",
        "InkwellCacheErrors",
        # The event worker's: nothing about it shows through the API.
        "InkwellEventWorkerDown",
        "InkwellOutboxPendingGrowing",
        "InkwellEventDeliveryLagHigh",
        "InkwellEventDeadLettered",
    }
    assert needed <= set(rules)
    linked = {name: rule for name, rule in rules.items() if "runbook_url" in rule["annotations"]}
    assert needed <= set(linked)
    for name, rule in linked.items():
        url = rule["annotations"]["runbook_url"]
        assert url.startswith(RUNBOOK_BASE), url
        path, _, anchor = url.removeprefix(RUNBOOK_BASE).partition("#")
        document = ROOT / path
        assert document.is_file(), url
        assert anchor == name.lower(), url
        assert anchor in _anchors(document.read_text()), f"{name}: no section #{anchor}"
