"""The gallery reads only what the backfill may read: local files under the root, public URLs.

A row pointing outside the root (``..``, an absolute path, a symlink, ``file://``) or at the
machine's own network gets the placeholder as its picture and, when re-scored, a ``failed``
state whose reason names the row's value but never the server's folders.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from pixelgrade.cli import app as cli
from pixelgrade.web import create_app
from tests.backfill.conftest import jpeg
from tests.stores.tables import pixelgrade_table
from tests.web.conftest import AUTH, Library, settings_for

runner = CliRunner()


def test_rows_outside_the_root_are_neither_shown_nor_scored(
        library: Library, pool: ProcessPoolExecutor) -> None:
    outside = library.root.parent / "private"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(jpeg())  # a real image: only the root keeps it out
    (library.root / "link.jpg").symlink_to(outside / "secret.jpg")
    values = ["../private/secret.jpg", str(outside / "secret.jpg"), "link.jpg",
              f"file://{outside / 'secret.jpg'}", "/dev/zero", "http://127.0.0.1:9/a.jpg",
              "http://169.254.169.254/latest/meta-data/"]
    keys = [library.store.insert_image(value) for value in values]
    app = create_app(library.store, settings_for(library), pool=pool)
    with TestClient(app) as client:
        shown = client.get(f"/thumbs/{library.photo_id}/thumb.jpg")
        assert shown.headers["content-type"] == "image/jpeg"  # the root itself still works
        for key, value in zip(keys, values, strict=True):
            thumb = client.get(f"/thumbs/{key}/thumb.jpg")
            assert thumb.headers.get("x-pixelgrade-placeholder") == "1", value
            image = client.post(f"/api/images/{key}/rescore", headers=AUTH).json()
            assert image["state"] == "failed" and image["score"] is None, (value, image)
            reason = image["reason"]
            assert str(library.root) not in reason, reason
            if str(outside) not in value:
                assert str(outside) not in reason, reason
            page = client.get(f"/images/{key}").text
            assert str(library.root) not in page


def test_serve_refuses_an_uploads_folder_it_could_not_read_back(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import uvicorn

    started: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: started.append(app))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lib").mkdir()
    url = f"sqlite:///{tmp_path / 'lib' / 'library.db'}"
    pixelgrade_table(url, ["a.jpg"])
    outside = runner.invoke(cli, ["serve", "--db", url, "--uploads", str(tmp_path / "up")],
                            env={"COLUMNS": "200"})
    assert outside.exit_code == 1 and "outside the image folder" in outside.output
    bad_host = runner.invoke(cli, ["serve", "--db", url, "--allow-host", "10.0.0.0/99"],
                             env={"COLUMNS": "200"})
    assert bad_host.exit_code == 1 and "--allow-host" in bad_host.output
    inside = runner.invoke(cli, ["serve", "--db", url, "--root", str(tmp_path),
                                 "--uploads", str(tmp_path / "up"), "--allow-private-network"],
                           env={"COLUMNS": "200"})
    assert inside.exit_code == 0, inside.output
    assert len(started) == 1
