"""The built wheel is a complete package: installed into a fresh virtualenv, away from the
source tree, it migrates a database and serves.

What the test does is what the image does (Dockerfile): the wheel is built from a copy of the
files the image's build context holds (pyproject.toml, README.md, src/), by the locked build
backend without build isolation; a fresh virtualenv (no system site-packages, no pip of its
own) gets the locked dependencies with `--require-hashes` and the wheel `--no-deps`, from pip's
usual sources (its cache and the configured index: no internet is needed once the dependencies
have been installed once). Then `inkwell migrate` and `inkwell serve` run from an unrelated
directory, with no PYTHONPATH, and the server answers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.deploy.tools import ROOT
from tests.helpers import signup_body
from tests.resilience.servers import free_port

pytestmark = pytest.mark.slow

PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"{' '.join(args)}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    context = tmp_path_factory.mktemp("build-context")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, context / name)
    shutil.copytree(
        ROOT / "src", context / "src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    dist = tmp_path_factory.mktemp("dist")
    _run([*PIP, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist), "."], context)
    (built,) = dist.glob("inkwell-*.whl")
    return built


def test_the_wheel_carries_the_migrations_and_the_docs_assets_dependency(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        requires = archive.read(metadata).decode()
    assert "src/migrations/env.py" in names
    assert "src/migrations/script.py.mako" in names
    revisions = {n for n in names if n.startswith("src/migrations/versions/") and n.endswith(".py")}
    in_tree = {
        f"src/migrations/versions/{p.name}" for p in (ROOT / "src/migrations/versions").glob("*.py")
    }
    assert revisions == in_tree
    assert "Requires-Dist: fastapi-offline" in requires
    assert not [n for n in names if n.startswith(("tests/", "migrations/"))]


def test_the_installed_wheel_migrates_and_serves_from_any_directory(
    wheel: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path)
    python = str(venv / "bin" / "python")
    install = [*PIP, "--python", python, "install", "-q", "--no-compile", "--no-deps"]
    _run([*install, "--require-hashes", "-r", str(ROOT / "requirements.lock")], tmp_path)
    _run([*install, "--no-index", str(wheel)], tmp_path)
    _run([*PIP, "--python", python, "check"], tmp_path)  # every declared dependency is there

    elsewhere = tmp_path / "somewhere-else"
    elsewhere.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTHON", "VIRTUAL_ENV", "OTEL_", "DATABASE", "REDIS"))
    }
    env.update(
        APP_ENV="test",
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'data' / 'inkwell.db'}",
        JWT_SECRET="package-test-secret-long-enough-for-hs256-0123456789",
        BCRYPT_ROUNDS="4",
        HOST="127.0.0.1",
        PORT=str(free_port()),
        LOG_FORMAT="json",
        SHUTDOWN_DRAIN_SECONDS="0",
    )
    location = _run([python, "-c", "import src; print(src.__file__)"], elsewhere, env)
    assert location.strip().startswith(str(venv)), location

    inkwell = str(venv / "bin" / "inkwell")
    _run([inkwell, "migrate"], elsewhere, env)
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [inkwell, "serve"], cwd=elsewhere, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{env['PORT']}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log.read_text()
            try:
                health = httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        signup = httpx.post(f"{url}/api/v1/signup", json=signup_body(), timeout=10)
        assert signup.status_code == 201, signup.text  # the migrated tables are there
        assert httpx.get(f"{url}/docs/assets/swagger-ui.css", timeout=10).status_code == 200
    finally:
        server.terminate()
        server.wait(30)
