"""Signing a browser in with a token it was never given in an address: the 401 page says
what is needed and holds the sign-in form, ``/sign-in`` sets the same cookie as ``?token=``,
and ``serve`` prints where to sign in without writing the user's own token anywhere but a
terminal (nor into uvicorn's access log)."""

from __future__ import annotations

import logging
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from pixelgrade.cli import app as cli
from pixelgrade.web import create_app
from pixelgrade.web.app import safe_next
from pixelgrade.web.logs import RedactToken, redact_token
from tests.stores.tables import pixelgrade_table
from tests.web.conftest import TOKEN, Library, settings_for

runner = CliRunner()
HINT = "the PIXELGRADE_API_TOKEN that pixelgrade serve was started with"


@pytest.fixture
def private(library: Library, pool: ProcessPoolExecutor) -> Any:
    app = create_app(library.store, settings_for(library, protect_reads=True), pool=pool)
    with TestClient(app) as client:
        yield client


def _next_field(page: str) -> str:
    found = re.search(r'<input type="hidden" name="next" value="([^"]*)">', page)
    assert found, page
    return found.group(1).replace("&amp;", "&")


def test_the_401_page_says_what_is_needed_and_holds_the_form(private: TestClient) -> None:
    refused = private.get("/stats?band=high")
    assert refused.status_code == 401
    page = refused.text
    assert "this gallery is private: this browser needs the API token, " in page
    assert HINT in page
    assert '<form class="sign-in" method="post" action="/sign-in">' in page
    assert _next_field(page) == "/stats?band=high"
    assert "sign-in.js" in page and "Back to the gallery" not in page
    wrong = private.get("/?token=not-it&band=low")
    assert wrong.status_code == 401
    assert "the token in this address is not the server&#39;s" in wrong.text
    assert _next_field(wrong.text) == "/?band=low"  # the wrong token is not carried on
    api = private.get("/api/images")
    assert api.status_code == 401 and api.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in api.json()["detail"] and "/sign-in" in api.json()["detail"]


def test_the_form_signs_the_browser_in(private: TestClient) -> None:
    assert private.get("/sign-in").status_code == 200  # reachable without the token
    assert private.get("/static/sign-in.js").status_code == 200
    refused = private.post("/sign-in", data={"token": "nope", "next": "/stats"},
                           follow_redirects=False)
    assert refused.status_code == 403 and "set-cookie" not in refused.headers
    assert "not this server&#39;s API token" in refused.text
    assert _next_field(refused.text) == "/stats"
    assert private.get("/stats").status_code == 401

    signed = private.post("/sign-in", data={"token": f" {TOKEN} ", "next": "/stats"},
                          follow_redirects=False)
    assert signed.status_code == 303 and signed.headers["location"] == "/stats"
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert private.get("/stats").status_code == 200
    assert private.get("/api/counts").status_code == 200
    assert "This browser is signed in" in private.get("/sign-in").text
    # Writes still need the Bearer header (the page's script keeps the token for them): a
    # cookie alone, which another site's form could make the browser send, is not enough.
    assert private.post("/api/images/1/rescore").status_code == 401


@pytest.mark.parametrize(("target", "safe"), [
    ("/stats?band=high", "/stats?band=high"), ("//evil.example/x", "/"),
    ("https://evil.example/", "/"), ("/\\evil.example", "/"), ("/sign-in?next=/", "/"),
    ("stats", "/"), ("/ok\r\nSet-Cookie: x=1", "/"),
])
def test_only_local_pages_are_gone_on_to(target: str, safe: str, private: TestClient) -> None:
    assert safe_next(target) == safe
    signed = private.post("/sign-in", data={"token": TOKEN, "next": target},
                          follow_redirects=False)
    assert signed.headers["location"] == safe


def test_without_a_token_there_is_nothing_to_sign_in_with(
        library: Library, pool: ProcessPoolExecutor) -> None:
    app = create_app(library.store, settings_for(library, token=None), pool=pool)
    with TestClient(app) as client:
        page = client.get("/sign-in").text
        assert "This server has no API token" in page and "<form" not in page
        refused = client.post("/sign-in", data={"token": "x"}, follow_redirects=False)
        assert refused.status_code == 403 and "set-cookie" not in refused.headers


@pytest.fixture
def serve_output(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda app, **options: None)
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY"):
        monkeypatch.delenv(name, raising=False)
    url = f"sqlite:///{tmp_path / 'library.db'}"
    pixelgrade_table(url, [])

    def run(*args: str, terminal: bool = False) -> str:
        monkeypatch.setattr("pixelgrade.cli.serve._is_terminal", lambda: terminal)
        result = runner.invoke(cli, ["serve", "--db", url, *args],
                               env={"COLUMNS": "250", "PIXELGRADE_API_TOKEN": "my-own-s3cret"})
        assert result.exit_code == 0, result.output
        return result.output
    return run


def test_serve_prints_where_to_sign_in_and_the_secret_only_to_a_terminal(
        serve_output: Any) -> None:
    to_a_file = serve_output("--protect-reads")
    assert "my-own-s3cret" not in to_a_file
    assert "Open http://127.0.0.1:8000/\n" in to_a_file
    flat = " ".join(to_a_file.split())
    assert ("Sign in at http://127.0.0.1:8000/sign-in with your PIXELGRADE_API_TOKEN to see "
            "the gallery and to upload and re-score") in flat
    to_a_terminal = serve_output("--protect-reads", terminal=True)
    assert "Open http://127.0.0.1:8000/?token=my-own-s3cret\n" in to_a_terminal
    assert "shown because this is a terminal" in " ".join(to_a_terminal.split())


def test_the_access_log_never_holds_a_token() -> None:
    assert redact_token("GET /?token=s3cret&band=high") == "GET /?token=<redacted>&band=high"
    assert redact_token("/images/3?sort=newest&TOKEN=abc#x") == (
        "/images/3?sort=newest&TOKEN=<redacted>#x")
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1,
                               '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", "/?token=s3cret", "1.1", 200), None)
    assert RedactToken().filter(record)
    assert "s3cret" not in record.getMessage() and "token=<redacted>" in record.getMessage()
