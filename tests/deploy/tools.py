"""Shared helpers for the deployment checks: locating validators, loading the deploy files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts.test.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "inkwell.json"
GRAFANA_PROVISIONING = DEPLOY / "grafana" / "provisioning"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

IN_CI = os.environ.get("CI", "").lower() == "true"


def tool(name: str) -> str:
    """Path of a validator binary: the virtualenv's first (PyPI-shipped), then PATH.

    Absent locally: the test is skipped. Absent in CI: the test fails, since CI must prove
    every deployment file valid.
    """
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        message = f"`{name}` is not installed"
        if IN_CI:
            pytest.fail(f"{message}; CI requires every deployment validator")
        pytest.skip(message)
    return found


def run(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def manifests() -> list[Path]:
    """Every Kubernetes manifest (the kustomization is kustomize's file, not a resource)."""
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def resource(kind: str, name: str | None = None) -> dict[str, Any]:
    for path in manifests():
        for document in yaml.safe_load_all(path.read_text()):
            if not document or document["kind"] != kind:
                continue
            if name is None or document["metadata"]["name"] == name:
                return dict(document)
    raise AssertionError(f"no {kind} {name or ''} in {K8S}")
