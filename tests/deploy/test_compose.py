"""docker-compose.yml: valid for the compose binary, and wired the way the README promises."""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from src.settings import Settings
from tests.deploy.settings_names import is_known_variable
from tests.deploy.tools import (
    ALERTS,
    COMPOSE,
    DEPLOY,
    PROMETHEUS_CONFIG,
    ROOT,
    load_yaml,
    run,
    tool,
)

Model = dict[str, Any]


@pytest.fixture(scope="module")
def compose() -> Model:
    """The compose model as the compose binary itself resolves it (anchors, defaults, paths)."""
    result = run(tool("docker-compose"), "-f", str(COMPOSE), "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_compose_config_is_valid() -> None:
    result = run(tool("docker-compose"), "-f", str(COMPOSE), "config", "-q")
    assert result.returncode == 0, result.stderr


def test_compose_rejects_an_invalid_file(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  app:\n    image: inkwell\n    depends_onn: [db]\n")
    result = run(tool("docker-compose"), "-f", str(broken), "config", "-q")
    assert result.returncode != 0
    assert "depends_onn" in result.stderr


def test_every_image_is_pinned(compose: Model) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        if "build" in service:
            continue
        assert re.search(r":v?\d+\.\d+(\.\d+)?[\w.-]*$", image), f"{name}: {image} is not pinned"


def test_databases_have_health_checks(compose: Model) -> None:
    for name in ("postgres", "redis"):
        check = compose["services"][name].get("healthcheck")
        assert check, f"{name} needs a health check"
        assert check["test"], f"{name} needs a health check command"


def test_app_starts_after_migrations_and_healthy_dependencies(compose: Model) -> None:
    depends = compose["services"]["app"]["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert depends["postgres"]["condition"] == "service_healthy"
    assert depends["redis"]["condition"] == "service_healthy"
    migrate = compose["services"]["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["image"] == compose["services"]["app"]["image"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate.get("restart", "no") == "no"


def test_app_is_configured_by_environment_only(compose: Model) -> None:
    app = compose["services"]["app"]
    assert not app.get("env_file")
    assert not app.get("volumes"), "no configuration files mounted into the app"
    env = app["environment"]
    assert env["DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert env["READ_DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert env["REDIS_URL"].startswith("redis://redis:")
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
    assert env["OTEL_SERVICE_NAME"] == "inkwell"
    assert env["LOG_FORMAT"] == "json"
    assert env["HOST"] == "0.0.0.0"
    unknown = [key for key in env if not is_known_variable(key)]
    assert not unknown, f"variables the service does not read: {unknown}"


def test_app_environment_is_accepted_by_settings(
    compose: Model, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in compose["services"]["app"]["environment"].items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.host == "0.0.0.0"
    assert settings.web_concurrency == 1 or settings.prometheus_multiproc_dir


def test_jaeger_exposes_otlp_and_the_ui(compose: Model) -> None:
    ports = {int(port["target"]) for port in compose["services"]["jaeger"]["ports"]}
    assert {4317, 4318, 16686} <= ports


def test_published_ports_match_the_readme(compose: Model) -> None:
    published = {
        name: {int(port["published"]) for port in service.get("ports", [])}
        for name, service in compose["services"].items()
    }
    assert 8000 in published["app"]
    assert 16686 in published["jaeger"]
    assert 9090 in published["prometheus"]
    assert 3000 in published["grafana"]
    assert not published["postgres"]
    assert not published["redis"]


def _container_file(service: Model, container_path: str) -> Path | None:
    """The host file a bind mount places at `container_path`, if any."""
    for volume in service.get("volumes", []):
        if volume["type"] != "bind":
            continue
        target = volume["target"].rstrip("/")
        if container_path == target:
            return Path(volume["source"])
        if container_path.startswith(target + "/"):
            return Path(volume["source"]) / container_path[len(target) + 1 :]
    return None


def test_prometheus_loads_the_config_rules_and_stores_exemplars(compose: Model) -> None:
    prometheus = compose["services"]["prometheus"]
    command = prometheus["command"]
    assert "--enable-feature=exemplar-storage" in command
    config_flag = next(c for c in command if c.startswith("--config.file="))
    config_path = config_flag.split("=", 1)[1]
    assert _container_file(prometheus, config_path) == PROMETHEUS_CONFIG
    config = load_yaml(PROMETHEUS_CONFIG)
    container_dir = config_path.rsplit("/", 1)[0]
    rule_files = [_container_file(prometheus, f"{container_dir}/{r}") for r in config["rule_files"]]
    assert ALERTS in rule_files
    for rule_file in rule_files:
        assert rule_file is not None
        assert rule_file.is_file()
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = [t for sc in jobs["inkwell"]["static_configs"] for t in sc["targets"]]
    assert targets == ["app:8000"], "the alert rules select job=inkwell: scrape the app there"


def test_grafana_is_provisioned_from_the_repository(compose: Model) -> None:
    grafana = compose["services"]["grafana"]
    provisioning = _container_file(grafana, "/etc/grafana/provisioning")
    assert provisioning == DEPLOY / "grafana" / "provisioning"
    providers = load_yaml(provisioning / "dashboards" / "dashboards.yml")["providers"]
    for provider in providers:
        host_dir = _container_file(grafana, provider["options"]["path"])
        assert host_dir is not None, provider
        assert list(host_dir.glob("*.json")), provider
    sources = load_yaml(provisioning / "datasources" / "datasources.yml")["datasources"]
    assert {s["type"] for s in sources} >= {"prometheus", "jaeger"}
    urls = {s["type"]: s["url"] for s in sources}
    assert urls["prometheus"] == "http://prometheus:9090"
    assert urls["jaeger"] == "http://jaeger:16686"
    assert set(compose["services"]) >= {"prometheus", "jaeger"}


def test_compose_builds_the_repository_image(compose: Model) -> None:
    for name in ("app", "migrate", "worker"):
        build = compose["services"][name]["build"]
        assert Path(build["context"]) == ROOT
        assert build.get("dockerfile", "Dockerfile") == "Dockerfile"


def _seconds(duration: str) -> float:
    """A compose (Go) duration such as `1m0s` or `500ms`, in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts, duration
    assert "".join(n + u for n, u in parts) == duration, duration
    return sum(float(number) * units[unit] for number, unit in parts)


def test_worker_runs_the_app_image_after_migrations_and_healthy_dependencies(
    compose: Model,
) -> None:
    worker, app = compose["services"]["worker"], compose["services"]["app"]
    assert worker["command"] == ["worker"]
    assert worker["image"] == app["image"]
    assert worker["build"] == app["build"]
    depends = worker["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert depends["postgres"]["condition"] == "service_healthy"
    assert depends["redis"]["condition"] == "service_healthy"


def test_worker_is_configured_like_the_app(compose: Model) -> None:
    worker, app = compose["services"]["worker"], compose["services"]["app"]
    env = worker["environment"]
    for key in ("DATABASE_URL", "READ_DATABASE_URL", "REDIS_URL", "JWT_SECRET", "APP_ENV"):
        assert env[key] == app["environment"][key], key
    assert env["HOST"] == "0.0.0.0", "Prometheus scrapes it from another container"
    assert "PROMETHEUS_MULTIPROC_DIR" not in env
    assert not worker.get("env_file")
    assert not worker.get("volumes")
    unknown = [key for key in env if not is_known_variable(key)]
    assert not unknown, f"variables the service does not read: {unknown}"


def test_worker_environment_is_accepted_by_settings(
    compose: Model, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in compose["services"]["worker"]["environment"].items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.redis_url, "the worker consumes a Redis Stream"


def test_worker_runs_hardened_and_unpublished(compose: Model) -> None:
    worker = compose["services"]["worker"]
    assert worker["read_only"] is True
    assert worker["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in worker["security_opt"]
    assert "/tmp" in worker["tmpfs"]  # noqa: S108 - the tmpfs the compose file declares
    # Nothing outside the compose network needs it (the host may run its own :9100 exporter).
    assert not worker.get("ports")


def test_worker_grace_period_outlasts_its_drain(compose: Model) -> None:
    worker = compose["services"]["worker"]
    env = worker["environment"]
    claim = float(env.get("EVENT_CLAIM_SECONDS", 30))
    drain = float(env.get("SHUTDOWN_DRAIN_SECONDS", 5))
    assert _seconds(worker["stop_grace_period"]) > claim + drain


class _HealthOnly(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


def _run_healthcheck(test: list[str], env: dict[str, str]) -> int:
    assert test[0] == "CMD", "an exec-form check, no shell in between"
    python, *args = test[1:]
    assert python == "python"
    result = run(sys.executable, *args, env=env)
    return result.returncode


def test_worker_health_check_probes_worker_port(compose: Model) -> None:
    """The image's HEALTHCHECK probes the API's PORT; the worker's own check must reach its
    /health on WORKER_PORT. Run the check against a server that only answers there."""
    test = compose["services"]["worker"]["healthcheck"]["test"]
    server = HTTPServer(("127.0.0.1", 0), _HealthOnly)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = str(server.server_address[1])
        env = {"PATH": os.environ.get("PATH", ""), "WORKER_PORT": port, "PORT": "1"}
        assert _run_healthcheck(test, env) == 0
        # ... and it fails when nothing answers there.
        server.shutdown()
        assert _run_healthcheck(test, env) != 0
    finally:
        server.server_close()


def test_prometheus_scrapes_the_worker(compose: Model) -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    worker = jobs["inkwell-worker"]
    assert worker.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for sc in worker["static_configs"] for t in sc["targets"]]
    port = compose["services"]["worker"]["environment"]["WORKER_PORT"]
    assert targets == [f"worker:{port}"], "the event alerts select job=inkwell-worker"
    labels = [sc.get("labels", {}) for sc in worker["static_configs"]]
    assert all(label.get("namespace") == "inkwell" for label in labels)
