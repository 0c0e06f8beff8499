"""Write deploy/k8s/prometheusrule.yaml from deploy/prometheus/alerts.yml.

alerts.yml is the one source of the alert and recording rules; the PrometheusRule embeds its
groups unchanged (tests/deploy proves the two are identical). Run after editing alerts.yml:

    .venv/bin/python deploy/prometheus/embed_rules.py
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parent.parent
SOURCE = DEPLOY / "prometheus" / "alerts.yml"
TARGET = DEPLOY / "k8s" / "prometheusrule.yaml"

HEADER = """\
# GENERATED from deploy/prometheus/alerts.yml by deploy/prometheus/embed_rules.py — edit that
# file, then re-run the script. The Prometheus Operator loads these rules; most installations
# only pick up PrometheusRules carrying their own selector label (kube-prometheus-stack:
# `release: <name>`), add it here if yours does.
"""


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (PromQL, descriptions) as literal blocks, readable in review."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def render() -> str:
    groups: list[dict[str, Any]] = yaml.safe_load(SOURCE.read_text())["groups"]
    resource = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "inkwell",
            "namespace": "inkwell",
            "labels": {"app.kubernetes.io/name": "inkwell", "app.kubernetes.io/part-of": "inkwell"},
        },
        "spec": {"groups": groups},
    }
    body = yaml.dump(resource, Dumper=_BlockDumper, sort_keys=False, width=100)
    return HEADER + body


if __name__ == "__main__":
    TARGET.write_text(render())
    print(f"wrote {TARGET.relative_to(DEPLOY.parent)}")
