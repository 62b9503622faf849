"""Previews refused by the SSRF guard are explained once, not left as a silent "no preview" on
every card: ``serve`` prints why and the flag that allows them, and the gallery shows the same
notice once, from the first page (hosts of a sample of rows checked at start) or from the next
page load (a refusal met while serving)."""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from pixelgrade.cli import app as cli
from pixelgrade.sources.netguard import NetGuard
from pixelgrade.stores import SqlStore, TableSpec
from pixelgrade.web import create_app
from pixelgrade.web.app import check_previews, locator
from pixelgrade.web.refusals import PreviewRefusals, Refusal, sample_refusals
from tests.stores.tables import pixelgrade_table
from tests.web.conftest import Library, settings_for

runner = CliRunner()
NOTICE = "refused by the network guard"
#: Rows of an app that keeps its images on a MinIO on this machine and a NAS on the LAN.
LOCAL_ROWS = [f"http://127.0.0.1:9000/photos/{i}.jpg" for i in range(30)] + [
    "http://10.1.2.3/nas/a.jpg", "http://10.1.2.3/nas/b.jpg", "photos/local.jpg"]


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    import uvicorn

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: seen.update(app=app))
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY",
                 "PIXELGRADE_API_TOKEN", "PIXELGRADE_ALLOW_HOSTS",
                 "PIXELGRADE_ALLOW_PRIVATE_NETWORK"):
        monkeypatch.delenv(name, raising=False)
    return seen


def _serve(*args: str) -> tuple[str, Any]:
    result = runner.invoke(cli, ["serve", *args], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split()), result


def test_serve_says_why_previews_are_refused_and_how_to_allow_them(
        started: dict[str, Any], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'library.db'}"
    pixelgrade_table(url, LOCAL_ROWS)
    printed, _ = _serve("--db", url)
    # In the order the gallery's first page meets them (unscored rows: newest id first).
    assert ("Previews of images on 10.1.2.3 (a private address) and 127.0.0.1 (a loopback "
            "address) are refused by the network guard") in printed
    assert "restart serve with --allow-host 10.1.2.3 --allow-host 127.0.0.1 to show them" in (
        printed)
    assert printed.count(NOTICE) == 1
    with TestClient(started["app"]) as client:
        page = client.get("/").text
        assert page.count(NOTICE) == 1, "once on the page, not per card"
        assert "--allow-host 10.1.2.3 --allow-host 127.0.0.1" in page
        # Each card still gets the placeholder: the notice is why.
        thumb = client.get("/thumbs/1/thumb.jpg")
        assert thumb.headers.get("x-pixelgrade-placeholder") == "1"
        assert client.get("/").text.count(NOTICE) == 1
        assert NOTICE not in client.get("/?fragment=1").text  # infinite scroll adds none


def test_nothing_is_said_when_nothing_is_refused(started: dict[str, Any],
                                                 tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'library.db'}"
    pixelgrade_table(url, LOCAL_ROWS)
    printed, _ = _serve("--db", url, "--allow-host", "127.0.0.1", "--allow-host", "10.0.0.0/8")
    assert NOTICE not in printed
    with TestClient(started["app"]) as client:
        assert NOTICE not in client.get("/").text
    printed, _ = _serve("--db", url, "--allow-private-network")
    assert NOTICE not in printed
    local = f"sqlite:///{tmp_path / 'local.db'}"
    pixelgrade_table(local, ["a.jpg", "b.jpg", "https://8.8.8.8/a.jpg"])
    printed, _ = _serve("--db", local)
    assert NOTICE not in printed


def test_a_refusal_met_while_serving_shows_from_the_next_page(
        library: Library, pool: ProcessPoolExecutor) -> None:
    """A host outside the start's sample (here the app starts with none): the first refused
    thumbnail records it, and the gallery says so from then on; a name is named as such."""
    key = library.store.insert_image("http://localhost:9/secret.jpg")
    app = create_app(library.store, settings_for(library), pool=pool)
    with TestClient(app) as client:
        assert NOTICE not in client.get("/").text
        thumb = client.get(f"/thumbs/{key}/thumb.jpg")
        assert thumb.headers.get("x-pixelgrade-placeholder") == "1"
        page = client.get("/").text
        assert page.count(NOTICE) == 1
        assert "localhost (127.0.0.1, a loopback address)" in page
        assert "--allow-host localhost" in page
        assert str(library.root) not in page


def test_start_check_on_postgresql_and_sqlite(library: Library) -> None:
    """The sample is the gallery's first page, read through the store (both databases), and
    only hosts that the guard would refuse are reported, each once."""
    for value in ("http://127.0.0.1:9/a.jpg", "http://[::1]:9/b.jpg", "http://127.0.0.1:9/c"):
        library.store.insert_image(value)
    found = check_previews(library.store, settings_for(library))
    assert [(r.host, r.category) for r in found] == [("127.0.0.1", "loopback"),
                                                      ("::1", "loopback")]
    allowed = check_previews(library.store, settings_for(
        library, allowed_hosts=frozenset({"127.0.0.1", "::1"})))
    assert allowed == []


def test_slow_name_lookups_do_not_hold_the_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'library.db'}"
    pixelgrade_table(url, ["http://slow.example/a.jpg", "http://127.0.0.2/b.jpg"])
    store = SqlStore(url, TableSpec())

    def slow(host: str, port: int) -> list[str]:
        time.sleep(5)
        return ["10.0.0.1"]

    started = time.monotonic()
    found = sample_refusals(store, locator(settings_for_root(tmp_path)),
                            NetGuard(resolver=slow), seconds=0.3)
    assert time.monotonic() - started < 2
    assert [r.host for r in found] == ["127.0.0.2"]  # a literal needs no lookup
    store.close()


def settings_for_root(root: Path) -> Any:
    from pixelgrade.web import WebSettings

    return WebSettings(root=root)


def test_the_notice_lists_a_few_hosts_and_counts_the_rest() -> None:
    refusals = PreviewRefusals(Refusal(f"10.0.0.{i}", f"10.0.0.{i}", "private")
                               for i in range(1, 7))
    assert not refusals.record(Refusal("10.0.0.1", "10.0.0.1", "private"))
    notice = refusals.notice() or ""
    assert "10.0.0.4 (a private address) and 2 more hosts" in notice
    assert "--allow-host 10.0.0.4 to show them" in notice and "10.0.0.5" not in notice
    assert PreviewRefusals().notice() is None
