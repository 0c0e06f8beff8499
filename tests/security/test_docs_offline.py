"""The interactive docs render with no internet access: Swagger UI and ReDoc are served by Inkwell
from the installed `fastapi-offline` package, and their CSP names no third-party origin.

The rendering test drives headless Chromium (Debian's `chromium`; `.ci/run` installs it) at a
real server process, with every host but the loopback one unresolvable and every other
connection sent to a dead proxy, and reads the DOM Swagger UI and ReDoc drew.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from src.docs_ui import ASSETS_DIRECTORY
from tests.conftest import IN_CI
from tests.resilience.servers import InkwellProcess

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
DOCS_PAGES = ("/docs", "/redoc", "/docs/oauth2-redirect")


async def test_the_docs_pages_load_nothing_from_another_origin(client: httpx.AsyncClient) -> None:
    for page in ("/docs", "/redoc"):
        response = await client.get(page)
        assert response.status_code == 200, page
        assert response.headers["content-type"].startswith("text/html")
        assert not re.search(r"(?:https?:)?//[\w-]+\.[\w.-]+", response.text), page
        assert "/docs/assets/" in response.text


async def test_the_docs_csp_names_no_third_party_origin(client: httpx.AsyncClient) -> None:
    for page in DOCS_PAGES:
        csp = (await client.get(page)).headers["content-security-policy"]
        sources = {token for directive in csp.split(";") for token in directive.split()[1:]}
        assert sources <= {"'self'", "'none'", "'unsafe-inline'", "data:", "blob:"}, (page, csp)
        assert "frame-ancestors 'none'" in csp


async def test_the_assets_are_the_installed_package_s(client: httpx.AsyncClient) -> None:
    for name, kind in (
        ("swagger-ui-bundle.js", "javascript"),
        ("swagger-ui.css", "text/css"),
        ("redoc.standalone.js", "javascript"),
        ("favicon.png", "image/png"),
    ):
        response = await client.get(f"/docs/assets/{name}")
        assert response.status_code == 200, name
        assert kind in response.headers["content-type"], name
        assert response.content == (ASSETS_DIRECTORY / name).read_bytes(), name
    for unknown in ("/docs/assets/index.html", "/docs/assets/..%2F..%2Fsettings.py"):
        refused = await client.get(unknown)
        assert refused.status_code == 404, unknown
        assert refused.headers["content-type"] == "application/problem+json"


# --- a real browser against a real server, without network ------------------------------------


def _chromium() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    found = shutil.which("chromium")
    if found is None:
        if IN_CI:
            pytest.fail("chromium is not installed; CI renders the docs (.ci/run installs it)")
        pytest.skip("chromium is not installed")
    return found


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InkwellProcess]:
    from src.cli import migrate

    folder = tmp_path_factory.mktemp("docs-server")
    database = f"sqlite+aiosqlite:///{folder / 'inkwell.db'}"
    migrate(database)
    server = InkwellProcess(
        {
            "APP_ENV": "test",
            "DATABASE_URL": database,
            "JWT_SECRET": "docs-test-secret-long-enough-for-hs256-0123456789",
            "LOG_LEVEL": "WARNING",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "",
        },
        folder / "server.log",
    )
    try:
        yield server.start()
    finally:
        server.stop()


def render(url: str, profile: Path) -> tuple[str, str]:
    """The DOM after the page's scripts ran (virtual time), and the browser's console log."""
    result = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            # No network: only the loopback server resolves; any other connection goes to a
            # proxy that is not there (loopback itself bypasses proxies).
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--proxy-server=http://127.0.0.1:9",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=20000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, result.stderr


@pytest.mark.slow
def test_swagger_ui_draws_every_operation_offline(
    docs_server: InkwellProcess, tmp_path: Path
) -> None:
    spec = httpx.get(f"{docs_server.url}/openapi.json", timeout=10).json()
    dom, console = render(f"{docs_server.url}/docs", tmp_path / "profile")
    drawn = set(re.findall(r'id="operations-[\w-]+?-(\w+)"', dom))
    expected = {
        operation["operationId"]
        for operations in spec["paths"].values()
        for operation in operations.values()
    }
    assert len(expected) >= 15
    assert expected <= drawn, expected - drawn
    assert "Content Security Policy" not in console, console
    assert "Failed to load API definition" not in dom


@pytest.mark.slow
def test_redoc_draws_every_operation_offline(docs_server: InkwellProcess, tmp_path: Path) -> None:
    spec = httpx.get(f"{docs_server.url}/openapi.json", timeout=10).json()
    dom, _ = render(f"{docs_server.url}/redoc", tmp_path / "profile")
    drawn = set(re.findall(r"operation/(\w+)", dom))
    expected = {
        operation["operationId"]
        for operations in spec["paths"].values()
        for operation in operations.values()
    }
    assert expected <= drawn, expected - drawn
