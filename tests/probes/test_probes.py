"""`/health` and `/ready` as the contract describes them."""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
from sqlalchemy import text
from sqlalchemy.engine import make_url

from src import __version__
from src.probes.resources import cgroup_directory
from tests.conftest import Backend

CHECKS = {"database", "read_database", "redis", "ai", "cpu", "memory", "disk"}
UNREACHABLE_DATABASE = "postgresql+asyncpg://postgres@127.0.0.1:9/nowhere"


async def test_health_is_ok_with_service_version_and_uptime(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"status", "service", "version", "uptime_seconds"}
    assert body["status"] == "ok"
    assert body["service"] == "inkwell"
    assert body["version"] == __version__
    assert body["uptime_seconds"] >= 0


async def test_health_touches_no_dependency(make_client: Callable[..., Any]) -> None:
    async with make_client(read_database_url=UNREACHABLE_DATABASE) as client:
        response = await client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_ready_reports_every_check(client: httpx.AsyncClient, backend: Backend) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == CHECKS
    for name in ("database", "read_database", "cpu", "memory", "disk"):
        assert body["checks"][name]["status"] == "ok", name
    assert body["checks"]["database"]["latency_ms"] >= 0
    assert 0 <= body["checks"]["memory"]["used_percent"] <= 100
    assert body["checks"]["memory"]["threshold_percent"] == 95
    assert 0 <= body["checks"]["disk"]["used_percent"] <= 100
    assert body["checks"]["cpu"]["count"] >= 1
    if backend.redis_url is None:
        assert body["checks"]["redis"] == {"status": "skipped"}


async def test_ready_is_503_naming_the_unreachable_database(
    make_client: Callable[..., Any],
) -> None:
    async with make_client(read_database_url=UNREACHABLE_DATABASE) as client:
        response = await client.get("/ready")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["read_database"]["status"] == "fail"
    assert body["checks"]["read_database"]["error"]
    assert body["checks"]["database"]["status"] == "ok", body


async def test_a_hanging_database_fails_its_check_after_the_short_timeout(
    make_client: Callable[..., Any],
) -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        async with make_client(
            read_database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{port}/silent",
            ready_check_timeout_seconds=0.3,
        ) as client:
            # The check's timeout has to be short here; open the primary's pooled connection
            # first, so its check is a SELECT 1 and not a connect racing those 0.3 s.
            await _open_the_primary_pool(client)
            response = await client.get("/ready")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["read_database"] == {"status": "fail", "error": "timed out after 0.3s"}
    assert checks["database"]["status"] == "ok", checks


async def test_ready_is_503_when_memory_is_above_its_threshold(
    make_client: Callable[..., Any],
) -> None:
    async with make_client(ready_max_memory_percent=0.001) as client:
        response = await client.get("/ready")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["memory"]["status"] == "fail"
    assert checks["memory"]["threshold_percent"] == 0.001
    assert checks["disk"]["status"] == "ok"


async def test_ready_is_503_when_disk_is_above_its_threshold(
    make_client: Callable[..., Any],
) -> None:
    async with make_client(ready_max_disk_percent=0.001) as client:
        response = await client.get("/ready")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["disk"]["status"] == "fail"
    assert checks["memory"]["status"] == "ok"


async def test_an_unsupported_method_on_a_probe_is_a_problem_405(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/health")
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"


# --- optional dependencies ---------------------------------------------------------------------

UNREACHABLE_REDIS = "redis://127.0.0.1:9/0"


async def test_redis_down_leaves_the_pod_ready_but_degraded(
    make_client: Callable[..., Any],
) -> None:
    async with make_client(redis_url=UNREACHABLE_REDIS) as client:
        ready = await client.get("/ready")
        served = await client.get("/api/v1/users")  # cache bypassed, limiter open
    assert ready.status_code == 200, ready.text
    assert ready.headers["content-type"] == "application/json"
    body = ready.json()
    assert body["status"] == "degraded"
    assert body["checks"]["redis"]["status"] == "fail"
    assert body["checks"]["redis"]["error"]
    assert body["checks"]["database"]["status"] == "ok"
    assert served.status_code == 200


async def test_a_required_dependency_still_wins_over_a_degraded_optional_one(
    make_client: Callable[..., Any],
) -> None:
    async with make_client(
        redis_url=UNREACHABLE_REDIS,
        read_database_url=UNREACHABLE_DATABASE,
    ) as client:
        response = await client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["redis"]["status"] == "fail"
    assert body["checks"]["read_database"]["status"] == "fail"


# --- memory and disk: the container's own figures ----------------------------------------------

MIB = 2**20


def fake_cgroup(root: Path, *, current: int, limit: str, inactive_file: int = 0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "memory.current").write_text(f"{current}\n")
    (root / "memory.max").write_text(f"{limit}\n")
    (root / "memory.stat").write_text(
        f"anon {current - inactive_file}\nfile {inactive_file}\ninactive_file {inactive_file}\n"
    )
    return root


async def test_memory_is_the_cgroup_working_set_against_its_limit(
    make_client: Callable[..., Any], tmp_path: Path
) -> None:
    root = fake_cgroup(
        tmp_path / "cgroup", current=900 * MIB, limit=str(1024 * MIB), inactive_file=132 * MIB
    )
    async with make_client(ready_cgroup_root=str(root)) as client:
        response = await client.get("/ready")
    memory = response.json()["checks"]["memory"]
    assert memory["source"] == "cgroup"
    assert memory["used_percent"] == 75.0  # (900 - 132) / 1024: the page cache is not counted
    assert memory["limit_mb"] == 1024
    assert memory["available_mb"] == 256
    assert memory["status"] == "ok"
    assert response.status_code == 200


async def test_memory_above_the_threshold_of_the_cgroup_limit_is_503(
    make_client: Callable[..., Any], tmp_path: Path
) -> None:
    root = fake_cgroup(tmp_path / "cgroup", current=1000 * MIB, limit=str(1024 * MIB))
    async with make_client(ready_cgroup_root=str(root), ready_max_memory_percent=90) as client:
        response = await client.get("/ready")
    assert response.status_code == 503
    memory = response.json()["checks"]["memory"]
    assert memory["status"] == "fail"
    assert memory["source"] == "cgroup"
    assert memory["used_percent"] == 97.7


async def test_an_unlimited_cgroup_falls_back_to_the_host(
    make_client: Callable[..., Any], tmp_path: Path
) -> None:
    root = fake_cgroup(tmp_path / "cgroup", current=1000 * MIB, limit="max")
    async with make_client(ready_cgroup_root=str(root)) as client:
        memory = (await client.get("/ready")).json()["checks"]["memory"]
    assert memory["source"] == "host"
    assert memory["limit_mb"] == round(psutil.virtual_memory().total / MIB)


async def test_without_cgroup_v2_the_figures_are_the_host_s(
    make_client: Callable[..., Any], tmp_path: Path
) -> None:
    async with make_client(ready_cgroup_root=str(tmp_path / "no-cgroup")) as client:
        memory = (await client.get("/ready")).json()["checks"]["memory"]
    assert memory["source"] == "host"
    assert memory["limit_mb"] == round(psutil.virtual_memory().total / MIB)


def test_the_process_s_own_cgroup_is_found_under_the_root(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    fake_cgroup(root, current=10 * MIB, limit="max")
    own = fake_cgroup(root / "kubepods" / "pod-a", current=300 * MIB, limit=str(600 * MIB))
    membership = tmp_path / "cgroup-membership"
    membership.write_text("0::/kubepods/pod-a\n")
    assert cgroup_directory(root, membership) == own
    membership.write_text("0::/\n")  # a container with its own cgroup namespace
    assert cgroup_directory(root, membership) == root
    assert cgroup_directory(tmp_path / "nothing", membership) is None


async def test_disk_is_measured_where_the_data_is_written(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    disk = (await client.get("/ready")).json()["checks"]["disk"]
    if backend.is_postgres:
        expected = Path(tempfile.gettempdir())
    else:
        expected = Path(make_url(backend.database_url).database or "").resolve().parent
    assert disk["path"] == str(expected)
    assert abs(disk["used_percent"] - psutil.disk_usage(str(expected)).percent) < 1


async def _open_the_primary_pool(client: httpx.AsyncClient) -> None:
    engine = client.app.state.runtime.resources.database.write_engine  # type: ignore[attr-defined]
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
