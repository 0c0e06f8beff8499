"""The interactive API docs — Swagger UI at `/docs`, ReDoc at `/redoc` — served by Inkwell itself.

FastAPI's own pages load their scripts and styles from a CDN, so they are blank on a machine
without internet access. Here the assets come from the `fastapi-offline` package (pinned in the
lock files), which ships the dist builds of Swagger UI and ReDoc; they are served under
`/docs/assets/`, so the pages need no origin but their own (see the docs CSP in
src/middleware/edge.py).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse

ASSETS_PATH = "/docs/assets"
ASSETS_DIRECTORY = Path(str(files("fastapi_offline") / "static"))
SWAGGER_UI_PATH = "/docs"
OAUTH2_REDIRECT_PATH = "/docs/oauth2-redirect"
REDOC_PATH = "/redoc"
# The files the pages load; nothing else of the package's folder is served.
ASSETS = frozenset({"swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"})


def install_docs(app: FastAPI) -> None:
    """Serve Swagger UI and ReDoc from the packaged assets (create the app with
    `docs_url=None, redoc_url=None` so FastAPI's CDN pages are not added too)."""
    title = app.title
    openapi_path = app.openapi_url or "/openapi.json"

    # A route rather than a static-files mount: only the known files, and a route template
    # (`/docs/assets/{name}`) for the access line and the request metrics.
    @app.get(ASSETS_PATH + "/{name}", include_in_schema=False)
    async def docs_asset(name: str) -> FileResponse:
        if name not in ASSETS:
            raise HTTPException(status_code=404)
        # Not versioned in the URL: cached for an hour, revalidated by ETag after that.
        return FileResponse(
            ASSETS_DIRECTORY / name, headers={"Cache-Control": "public, max-age=3600"}
        )

    def asset(request: Request, name: str) -> str:
        return f"{request.scope.get('root_path', '')}{ASSETS_PATH}/{name}"

    @app.get(SWAGGER_UI_PATH, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_path}",
            title=f"{title} - Swagger UI",
            oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT_PATH}",
            swagger_js_url=asset(request, "swagger-ui-bundle.js"),
            swagger_css_url=asset(request, "swagger-ui.css"),
            swagger_favicon_url=asset(request, "favicon.png"),
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @app.get(OAUTH2_REDIRECT_PATH, include_in_schema=False)
    async def swagger_ui_oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC_PATH, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_path}",
            title=f"{title} - ReDoc",
            redoc_js_url=asset(request, "redoc.standalone.js"),
            redoc_favicon_url=asset(request, "favicon.png"),
            with_google_fonts=False,
        )
