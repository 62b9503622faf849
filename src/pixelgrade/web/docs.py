"""The interactive API docs at ``/api/docs``: FastAPI's Swagger UI, self-hosted.

FastAPI's default page loads Swagger UI's script and style from a CDN, so it is blank offline
or behind a firewall. Here the page is FastAPI's own (``get_swagger_ui_html``, its documented
self-hosting recipe) pointed at the copies of ``swagger-ui-dist`` that the pinned
``fastapi-offline`` wheel ships, served under ``/static/swagger-ui``: nothing is downloaded at
run time and the page asks no other host for anything (its content security policy says so to
the browser too).
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_PATH = "/api/docs"
ASSETS_PATH = "/static/swagger-ui"
#: What the page loads, by name, from the asset folder.
SCRIPT, STYLE = "swagger-ui-bundle.js", "swagger-ui.css"


def swagger_ui_folder() -> Path:
    """The folder of Swagger UI's files inside the installed ``fastapi-offline`` package."""
    try:
        folder = Path(str(files("fastapi_offline") / "static"))
    except ModuleNotFoundError as exc:
        raise RuntimeError("the API docs need the fastapi-offline package (it ships Swagger "
                           "UI's files): reinstall pixelgrade, e.g. pip install -e .") from exc
    missing = [name for name in (SCRIPT, STYLE) if not (folder / name).is_file()]
    if missing:
        raise RuntimeError(f"{folder} lacks {', '.join(missing)}: reinstall the fastapi-offline "
                           "version pinned in pyproject.toml")
    return folder


def add_docs(app: FastAPI, openapi_url: str, title: str) -> None:
    """Serve the Swagger UI files and the docs page on ``app`` (created with ``docs_url=None``).
    Call before mounting ``/static``, which would otherwise answer for the files first."""
    app.mount(ASSETS_PATH, StaticFiles(directory=swagger_ui_folder()), name="swagger-ui")
    page = get_swagger_ui_html(
        openapi_url=openapi_url, title=f"{title} API",
        swagger_js_url=f"{ASSETS_PATH}/{SCRIPT}", swagger_css_url=f"{ASSETS_PATH}/{STYLE}",
        swagger_favicon_url="/favicon.ico")
    body = bytes(page.body)
    headers = {"Content-Security-Policy": docs_policy(body.decode())}

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(body, headers=headers)


def docs_policy(html: str) -> str:
    """A content security policy for the docs page: everything from this server only, the
    page's own inline start-up script allowed by its hash (Swagger UI styles elements inline)."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL))
    return (f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' "
            "'unsafe-inline'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'")
