"""Kubernetes manifests: schema-valid (kubernetes-validate --strict for built-in kinds, JSON
schemas + promtool for the Prometheus Operator's CRDs) and wired together consistently."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from src.settings import Settings
from tests.deploy.settings_names import is_known_variable
from tests.deploy.tools import ALERTS, K8S, ROOT, load_yaml, manifests, resource, run, tool

KUBERNETES_VERSION = "1.37.0"
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
SCHEMAS = Path(__file__).parent / "schemas"
Manifest = dict[str, Any]
TMP = "/tmp"  # noqa: S108 - the path the manifests mount an emptyDir on


def _kind(path: Path) -> str:
    return str(load_yaml(path)["kind"])


BUILT_IN = [p for p in manifests() if _kind(p) not in CRD_KINDS]


@pytest.mark.parametrize("path", BUILT_IN, ids=lambda p: p.name)
def test_manifest_passes_strict_kubernetes_schema(path: Path) -> None:
    result = run(tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    # An unknown kind only warns and exits 0: insist that a schema was really applied.
    assert "passed for resource" in result.stdout, result.stdout + result.stderr
    assert "Couldn't find schema" not in result.stdout + result.stderr


def test_strict_validation_rejects_a_misspelled_field(tmp_path: Path) -> None:
    deployment = load_yaml(K8S / "deployment.yaml")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    broken = tmp_path / "deployment.yaml"
    broken.write_text(yaml.safe_dump(deployment))
    result = run(tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, str(broken))
    assert result.returncode != 0
    assert "readinesProbe" in result.stdout + result.stderr


def test_kustomization_lists_every_manifest_but_the_example_secret() -> None:
    kustomization = load_yaml(K8S / "kustomization.yaml")
    listed = set(kustomization["resources"])
    expected = {p.name for p in manifests()} - {"secret.example.yaml"}
    assert listed == expected
    assert kustomization["namespace"] == "inkwell"


def test_every_namespaced_resource_is_in_the_inkwell_namespace() -> None:
    for path in manifests():
        manifest = load_yaml(path)
        if manifest["kind"] != "Namespace":
            assert manifest["metadata"]["namespace"] == "inkwell", path.name


def _validate(schema_name: str, manifest: Manifest) -> None:
    schema = json.loads((SCHEMAS / schema_name).read_text())
    jsonschema.validate(manifest, schema, cls=jsonschema.Draft202012Validator)


# Each ServiceMonitor and the Service it scrapes: the Service's name is the job label.
MONITORED = {"inkwell": "inkwell", "inkwell-worker": "inkwell-worker"}


@pytest.mark.parametrize("name", sorted(MONITORED))
def test_service_monitor_matches_the_crd_schema(name: str) -> None:
    _validate("servicemonitor.schema.json", resource("ServiceMonitor", name))


def test_service_monitor_schema_rejects_a_misspelled_field() -> None:
    monitor = resource("ServiceMonitor")
    monitor["spec"]["endpoints"][0]["scrapeInterval"] = "15s"
    with pytest.raises(jsonschema.ValidationError, match="scrapeInterval"):
        _validate("servicemonitor.schema.json", monitor)


@pytest.mark.parametrize("name", sorted(MONITORED))
def test_service_monitor_scrapes_the_service_metrics_port(name: str) -> None:
    monitor, service = resource("ServiceMonitor", name), resource("Service", MONITORED[name])
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert service["metadata"]["namespace"] in monitor["spec"]["namespaceSelector"]["matchNames"]
    ports = {port["name"] for port in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in ports
        assert endpoint["path"] == "/metrics"
    # No jobLabel: the job label is the Service's name, which the alert rules select.
    assert "jobLabel" not in monitor["spec"]
    assert service["metadata"]["name"] == name


def test_prometheus_rule_matches_the_crd_schema() -> None:
    _validate("prometheusrule.schema.json", resource("PrometheusRule"))


def test_prometheus_rule_embeds_alerts_yml_unchanged() -> None:
    """One source of truth: compose's Prometheus loads alerts.yml, the cluster's Prometheus
    loads the PrometheusRule; regenerate it with deploy/prometheus/embed_rules.py."""
    assert resource("PrometheusRule")["spec"]["groups"] == load_yaml(ALERTS)["groups"]


def test_prometheus_rule_groups_pass_promtool(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": resource("PrometheusRule")["spec"]["groups"]}))
    result = run(tool("promtool"), "check", "rules", str(rules))
    assert result.returncode == 0, result.stdout + result.stderr


def _pod_specs() -> dict[str, Manifest]:
    cron = resource("CronJob")
    return {
        "Deployment": resource("Deployment", "inkwell")["spec"]["template"]["spec"],
        "Worker": resource("Deployment", "inkwell-worker")["spec"]["template"]["spec"],
        "Job": resource("Job")["spec"]["template"]["spec"],
        "CronJob": cron["spec"]["jobTemplate"]["spec"]["template"]["spec"],
    }


@pytest.mark.parametrize("kind", ["Deployment", "Worker", "Job", "CronJob"])
def test_pods_run_hardened(kind: str) -> None:
    pod = _pod_specs()[kind]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"]["drop"] == ["ALL"]
        assert context["seccompProfile"]["type"] == "RuntimeDefault"
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert "emptyDir" in volumes[mounts[TMP]], "/tmp is writable on an emptyDir"  # noqa: S108
        resources = container["resources"]
        assert {"cpu", "memory"} <= resources["requests"].keys()
        assert {"cpu", "memory"} <= resources["limits"].keys()


def test_jobs_run_the_cli_commands() -> None:
    pods = _pod_specs()
    assert pods["Job"]["containers"][0]["args"] == ["migrate"]
    assert pods["CronJob"]["containers"][0]["args"] == ["purge-idempotency"]
    assert pods["Deployment"]["containers"][0]["args"] == ["serve"]
    assert pods["Worker"]["containers"][0]["args"] == ["worker"]
    assert resource("CronJob")["spec"]["concurrencyPolicy"] == "Forbid"
    images = {pod["containers"][0]["image"] for pod in pods.values()}
    assert len(images) == 1, "one image for the service, its worker, migrations and maintenance"


def test_the_worker_is_configured_like_the_api() -> None:
    pods = _pod_specs()
    api, worker = pods["Deployment"]["containers"][0], pods["Worker"]["containers"][0]
    assert worker["envFrom"] == api["envFrom"]
    secret_refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in worker["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert {"DATABASE_URL", "REDIS_URL", "JWT_SECRET"} <= secret_refs.keys()
    # The consumer group lives in Redis: without REDIS_URL there is nothing to consume.
    assert secret_refs["REDIS_URL"].get("optional") is not True


def _container(name: str = "inkwell") -> Manifest:
    return dict(resource("Deployment", name)["spec"]["template"]["spec"]["containers"][0])


@pytest.mark.parametrize("deployment", ["inkwell", "inkwell-worker"])
def test_probes_follow_kubernetes_guidance(deployment: str) -> None:
    container = _container(deployment)
    port = container["ports"][0]["name"]
    liveness, readiness = container["livenessProbe"], container["readinessProbe"]
    startup = container["startupProbe"]
    # Liveness never depends on the database: /health touches nothing but the process.
    assert liveness["httpGet"] == {"path": "/health", "port": port}
    assert readiness["httpGet"] == {"path": "/ready", "port": port}
    assert startup["httpGet"]["path"] == "/health"
    # The startup probe holds liveness off while the process starts (>= 30 s of grace) ...
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30
    # ... and liveness is more patient than readiness: a pod leaves the Service before it
    # would ever be restarted.
    assert (
        liveness["periodSeconds"] * liveness["failureThreshold"]
        > readiness["periodSeconds"] * readiness["failureThreshold"]
    )
    # /ready checks each dependency with READY_CHECK_TIMEOUT_SECONDS: the probe waits longer.
    check_timeout = Settings.model_fields["ready_check_timeout_seconds"].default
    assert readiness["timeoutSeconds"] > check_timeout


def _uvicorn_graceful_timeout() -> float:
    """timeout_graceful_shutdown as `inkwell serve` passes it to uvicorn."""
    tree = ast.parse((ROOT / "src" / "server.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "timeout_graceful_shutdown":
            value = ast.literal_eval(node.value)
            assert isinstance(value, int | float)
            return float(value)
    raise AssertionError("inkwell serve no longer sets timeout_graceful_shutdown")


def test_the_worker_probes_and_metrics_are_on_worker_port() -> None:
    container = _container("inkwell-worker")
    config = resource("ConfigMap")["data"]
    (port,) = container["ports"]
    assert port["name"] == "metrics"
    assert port["containerPort"] == int(config["WORKER_PORT"])
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == "metrics", probe
    # It listens on every interface, or the kubelet and Prometheus could not reach it.
    assert config["HOST"] == "0.0.0.0"
    service = resource("Service", "inkwell-worker")
    assert service["spec"]["clusterIP"] == "None", "headless: for scraping, not for traffic"
    # A worker whose dependencies are down is unready but still has figures to scrape.
    assert service["spec"]["publishNotReadyAddresses"] is True
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] == "metrics"
    assert service_port["port"] == port["containerPort"]


def test_worker_grace_period_outlasts_its_drain() -> None:
    """SIGTERM: the worker stops reading, finishes and acknowledges its in-flight events. An
    event still unacknowledged after EVENT_CLAIM_SECONDS is claimed by another worker anyway,
    so that is the longest the drain can be worth waiting for; SIGKILL must come later."""
    pod = resource("Deployment", "inkwell-worker")["spec"]["template"]["spec"]
    config = resource("ConfigMap")["data"]
    claim = float(config["EVENT_CLAIM_SECONDS"])
    drain = float(config.get("SHUTDOWN_DRAIN_SECONDS", 5))
    assert pod["terminationGracePeriodSeconds"] > drain + claim
    # No Service traffic to wait out: a preStop sleep would only delay the drain.
    assert "lifecycle" not in pod["containers"][0]


def test_grace_period_outlasts_pre_stop_drain_and_in_flight_requests() -> None:
    pod = resource("Deployment", "inkwell")["spec"]["template"]["spec"]
    config = resource("ConfigMap")["data"]
    pre_stop = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = float(config.get("SHUTDOWN_DRAIN_SECONDS", 5))
    assert pre_stop > 0
    needed = pre_stop + drain + _uvicorn_graceful_timeout()
    assert pod["terminationGracePeriodSeconds"] > needed


def _env_values(deployment: str) -> dict[str, str]:
    """What the container's process sees: the ConfigMap, overridden by its own `env`."""
    env = dict(resource("ConfigMap")["data"])
    env.update({e["name"]: e["value"] for e in _container(deployment)["env"] if "value" in e})
    return env


def test_multiple_workers_get_a_multiprocess_metrics_dir_on_an_empty_dir() -> None:
    config = _env_values("inkwell")
    pod = resource("Deployment", "inkwell")["spec"]["template"]["spec"]
    assert int(config.get("WEB_CONCURRENCY", 1)) > 1, "as shipped: two uvicorn workers a pod"
    directory = config["PROMETHEUS_MULTIPROC_DIR"]
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    assert directory in mounts, "PROMETHEUS_MULTIPROC_DIR must be a mounted volume"
    volume = next(v for v in pod["volumes"] if v["name"] == mounts[directory])
    assert "emptyDir" in volume


def test_the_worker_is_one_process_without_a_multiprocess_metrics_dir() -> None:
    """prometheus-client switches to file-backed values whenever PROMETHEUS_MULTIPROC_DIR is in
    the environment, so the API's setting must not reach the worker through the ConfigMap."""
    env = _env_values("inkwell-worker")
    assert "PROMETHEUS_MULTIPROC_DIR" not in env
    assert "WEB_CONCURRENCY" not in env


def test_read_side_is_wired_to_its_own_url() -> None:
    env = {e["name"]: e for e in _container()["env"]}
    read = env["READ_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    write = env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert read["key"] == "READ_DATABASE_URL"
    assert write["key"] == "DATABASE_URL"
    secret = resource("Secret")["stringData"]
    assert secret["READ_DATABASE_URL"] != secret["DATABASE_URL"], "a replica serves queries"
    assert secret["READ_DATABASE_URL"].startswith("postgresql+asyncpg://")


def test_every_referenced_secret_and_config_key_exists() -> None:
    secret, config = resource("Secret"), resource("ConfigMap")
    for kind, pod in _pod_specs().items():
        for container in pod["containers"]:
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] == config["metadata"]["name"]
            for entry in container.get("env", []):
                ref = entry.get("valueFrom", {})
                if "secretKeyRef" in ref:
                    assert ref["secretKeyRef"]["name"] == secret["metadata"]["name"], kind
                    assert ref["secretKeyRef"]["key"] in secret["stringData"], kind
                if "configMapKeyRef" in ref:
                    assert ref["configMapKeyRef"]["name"] == config["metadata"]["name"], kind
                    assert ref["configMapKeyRef"]["key"] in config["data"], kind


def test_configuration_names_only_variables_the_service_reads() -> None:
    names = set(resource("ConfigMap")["data"]) | set(resource("Secret")["stringData"])
    for pod in _pod_specs().values():
        names |= {e["name"] for e in pod["containers"][0].get("env", [])}
    names -= {"POD_NAME", "POD_NAMESPACE"}  # only feed OTEL_RESOURCE_ATTRIBUTES
    unknown = sorted(name for name in names if not is_known_variable(name))
    assert not unknown, f"misspelled or unused variables: {unknown}"


def test_configuration_is_accepted_by_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in resource("ConfigMap")["data"].items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("JWT_SECRET", "x" * 48)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.app_env == "production"
    assert settings.host == "0.0.0.0"


def test_example_secret_holds_placeholders_only() -> None:
    secret = resource("Secret")
    assert "data" not in secret
    for key, value in secret["stringData"].items():
        assert "REPLACE_ME" in value, f"{key} must be a placeholder"


def test_example_jwt_secret_is_refused_in_production() -> None:
    placeholder = resource("Secret")["stringData"]["JWT_SECRET"]
    with pytest.raises(ValueError, match="JWT_SECRET"):
        Settings(_env_file=None, app_env="production", jwt_secret=placeholder)  # type: ignore[call-arg]


def test_service_pdb_and_spread_select_exactly_the_api_pods() -> None:
    deployment = resource("Deployment", "inkwell")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selectors = [
        resource("Service", "inkwell")["spec"]["selector"],
        resource("PodDisruptionBudget", "inkwell")["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"],
        *[
            c["labelSelector"]["matchLabels"]
            for c in deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
        ],
    ]
    job_labels = resource("Job")["spec"]["template"]["metadata"]["labels"]
    cron = resource("CronJob")["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    worker = resource("Deployment", "inkwell-worker")["spec"]["template"]["metadata"]["labels"]
    for selector in selectors:
        assert selector.items() <= pod_labels.items()
        assert not selector.items() <= job_labels.items(), "migration pods must not get traffic"
        assert not selector.items() <= cron.items()
        assert not selector.items() <= worker.items(), "workers serve no API traffic"
    keys = {c["topologyKey"] for c in deployment["spec"]["template"]["spec"][
        "topologySpreadConstraints"]}  # fmt: skip
    assert {"kubernetes.io/hostname", "topology.kubernetes.io/zone"} <= keys


def test_worker_service_pdb_and_spread_select_exactly_the_worker_pods() -> None:
    deployment = resource("Deployment", "inkwell-worker")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selectors = [
        resource("Service", "inkwell-worker")["spec"]["selector"],
        resource("PodDisruptionBudget", "inkwell-worker")["spec"]["selector"]["matchLabels"],
        resource("ServiceMonitor", "inkwell-worker")["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"],
        *[
            c["labelSelector"]["matchLabels"]
            for c in deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
        ],
    ]
    api = resource("Deployment", "inkwell")["spec"]["template"]["metadata"]["labels"]
    job_labels = resource("Job")["spec"]["template"]["metadata"]["labels"]
    for selector in selectors:
        assert selector.items() <= pod_labels.items()
        assert not selector.items() <= api.items(), "the worker's PDB must not count API pods"
        assert not selector.items() <= job_labels.items()


def test_worker_rollout_and_disruptions_keep_a_consumer_running() -> None:
    deployment = resource("Deployment", "inkwell-worker")
    pdb = resource("PodDisruptionBudget", "inkwell-worker")
    replicas = deployment["spec"]["replicas"]
    assert replicas >= 2, "one worker dying leaves its events to another"
    assert pdb["spec"]["maxUnavailable"] < replicas
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    target = resource("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["name"]
    assert target != "inkwell-worker", "replicas is set here, so no HPA may own it"


def test_autoscaler_and_rollout_keep_capacity() -> None:
    deployment, hpa = resource("Deployment", "inkwell"), resource("HorizontalPodAutoscaler")
    pdb = resource("PodDisruptionBudget", "inkwell")
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] >= 2
    assert pdb["spec"]["maxUnavailable"] < hpa["spec"]["minReplicas"]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_the_ai_api_key_comes_from_the_secret_never_the_config_map() -> None:
    assert "AI_API_KEY" not in resource("ConfigMap")["data"]
    assert "AI_API_KEY" in resource("Secret")["stringData"]
    env = {
        e["name"]: e
        for e in resource("Deployment", "inkwell")["spec"]["template"]["spec"]["containers"][0][
            "env"
        ]
    }
    ref = env["AI_API_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref["name"] == resource("Secret")["metadata"]["name"]
    assert ref["key"] == "AI_API_KEY"
