"""The seed's whole procedure through ``pixelgrade`` against the Supabase-shaped stack: settings
from the environment or ``.env``, dry run, backfill, Ctrl-C and ``--resume``, ``verify``,
``--retry-failed``, ``init`` for a project; and the service-role key kept secret throughout.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import pixelgrade.stores.supabase as supabase_module
from pixelgrade.errors import StoreError
from pixelgrade.stores import Selection, SupabaseStore, resolve_database_url
from tests.backfill.conftest import jpeg
from tests.supabase.helpers import (
    WIDE,
    ImageHost,
    checksum,
    cli,
    count_updates,
    env,
    execute,
    flat,
    make_table,
    rows,
    serve,
    updates,
)
from tests.supabase.stack import SupabaseStack, mint_key

KEY_VARIABLE = "SUPABASE_SERVICE_ROLE_KEY"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory (no ``.env``) and no database settings in the environment."""
    for name in ("DATABASE_URL", "SUPABASE_URL", KEY_VARIABLE):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def image_host(monkeypatch: pytest.MonkeyPatch) -> Iterator[ImageHost]:
    # The image host is on loopback, which the SSRF guard refuses by default: the commands
    # of the tests that use it opt in (the Supabase project itself is trusted as configured).
    monkeypatch.setenv("PIXELGRADE_ALLOW_PRIVATE_NETWORK", "1")
    yield from serve(ImageHost())


def _files(workdir: Path) -> list[str]:
    return ["--workers", "1", "--checkpoint", str(workdir / "c.json"),
            "--error-log", str(workdir / "e.log")]


def _ok(result: Any) -> str:
    assert result.exit_code == 0, result.output
    return flat(result.output)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- settings ----------------------------------------------------------------------------------


def test_settings_from_the_environment_or_dotenv(fresh_supabase: SupabaseStack,
                                                 workdir: Path) -> None:
    stack = fresh_supabase
    make_table(stack, [])
    host = stack.url.removeprefix("http://")
    common = ["backfill", "--dry-run", *_files(workdir)]

    # --db omitted, both variables in the environment: the Supabase store.
    assert resolve_database_url(None) == "sqlite:///pixelgrade.db"
    text = _ok(cli(*common, environment=env(stack)))
    assert f"Connected to Supabase project {host}, table images" in text

    # The same from ./.env, and with --db supabase.
    (workdir / ".env").write_text(f"SUPABASE_URL={stack.url}\n{KEY_VARIABLE}={stack.service_key}\n")
    assert resolve_database_url(None) == "supabase"
    for args in (common, [*common, "--db", "supabase"]):
        assert f"Connected to Supabase project {host}" in _ok(cli(*args))

    # The environment wins over .env.
    (workdir / ".env").write_text(f"SUPABASE_URL=http://127.0.0.1:{_closed_port()}\n"
                                  f"{KEY_VARIABLE}={stack.service_key}\n")
    assert f"Connected to Supabase project {host}" in _ok(cli(
        *common, environment={"SUPABASE_URL": stack.url}))


def test_a_missing_setting_is_named_with_where_it_was_looked_for(
        fresh_supabase: SupabaseStack, workdir: Path) -> None:
    stack = fresh_supabase
    dotenv = workdir / ".env"

    def error(*args: str, environment: dict[str, str] | None = None) -> str:
        result = cli(*args, environment=environment)
        assert result.exit_code == 1, result.output
        return flat(result.output)

    only_url = {"SUPABASE_URL": stack.url}
    for args in (("backfill", "--db", "supabase"), ("backfill",), ("verify",),
                 ("backfill", "--dry-run")):
        message = error(*args, environment=only_url)
        assert (f"Missing required environment variable: {KEY_VARIABLE} (looked in the "
                f"environment or {dotenv} (which does not exist))") in message, args

    dotenv.write_text(f"{KEY_VARIABLE}={stack.service_key}\n")
    message = error("backfill", "--db", "supabase")
    assert (f"Missing required environment variable: SUPABASE_URL (looked in the environment "
            f"or {dotenv})") in message
    assert "which does not exist" not in message
    assert stack.service_key not in message

    dotenv.unlink()
    message = error("verify", "--db", "supabase")
    assert f"Missing required environment variables: SUPABASE_URL, {KEY_VARIABLE}" in message


# -- the seed's procedure ----------------------------------------------------------------------


def test_the_seed_procedure_through_the_cli(fresh_supabase: SupabaseStack, workdir: Path,
                                            image_host: ImageHost) -> None:
    stack = fresh_supabase
    host = stack.url.removeprefix("http://")
    image_host.files["/c.jpg"] = jpeg("coins.png")
    names = ["/a.jpg", "/gone.jpg", "/b.png", "/c.jpg", "/a.jpg", "/b.png"]
    ids = make_table(stack, [image_host.url(n) for n in names], functions=True)
    execute(stack, "UPDATE images SET quality_score = 55 WHERE id = 6")  # the app scored it
    count_updates(stack)
    settings = env(stack)
    common = ["--batch-size", "2", *_files(workdir)]

    # 1. Dry run: counts, a scored sample, an estimate; writes nothing anywhere.
    before, files = checksum(stack), sorted(os.listdir(workdir))
    result = cli("backfill", "--dry-run", "--json", *common, environment=settings)
    text = _ok(result)
    assert "DRY RUN MODE - No database changes will be made" in text
    assert f"Connected to Supabase project {host}, table images" in text
    assert "Found 5 images without quality scores" in text
    assert "Dry run complete - no changes made" in text
    sample = json.loads(result.stdout)["sample"]
    assert [(s["id"], s["status"]) for s in sample] == [
        (1, "scored"), (2, "failed"), (3, "scored"), (4, "scored"), (5, "scored")]
    assert checksum(stack) == before and sorted(os.listdir(workdir)) == files
    assert updates(stack) == {}

    # 2. verify before: rows still to do.
    result = cli("verify", "--strict", environment=settings)
    assert result.exit_code == 1, result.output
    assert "5 rows still have no score" in flat(result.output)

    # 3. The backfill.
    text = _ok(cli("backfill", *common, environment=settings))
    assert f"Backfill of Supabase project {host}, table images" in text
    assert "4 scored, 0 skipped, 1 failed, 0 to retry" in text
    assert updates(stack) == dict.fromkeys(ids[:5], 1)
    assert rows(stack)[6]["quality_score"] == 55

    # 4. verify, with the stats function and without it (counted over REST): same figures.
    with_function = json.loads(cli("verify", "--json", environment=settings).stdout)
    assert (with_function["total_images"], with_function["images_with_scores"],
            with_function["images_without_scores"]) == (6, 5, 1)
    assert with_function["statuses"] == {"scored": 5, "failed": 1}
    assert sum(with_function["histogram"].values()) == 5
    assert with_function["min_quality_score"] <= with_function["avg_quality_score"] <= \
        with_function["max_quality_score"]
    human = _ok(cli("verify", environment=settings))
    assert f"Verification of Supabase project {host}, table images" in human
    assert "total_images 6" in human and "images_with_scores 5" in human
    execute(stack, "DROP FUNCTION pixelgrade_quality_stats(integer, integer)")
    stack.reload_schema()
    stack.requests.clear()
    without_function = json.loads(cli("verify", "--json", environment=settings).stdout)
    assert without_function == with_function
    assert not any("pixelgrade_quality_stats" in path and status == 200
                   for _, path, status in stack.requests)
    assert _ok(cli("verify", environment=settings)) == human

    # 5. --retry-failed once the image is back; without it, nothing to do.
    image_host.files["/gone.jpg"] = jpeg("chelsea.png")
    assert "Nothing to do" in _ok(cli("backfill", *common, environment=settings))
    text = _ok(cli("backfill", "--retry-failed", *common, environment=settings))
    assert "1 scored, 0 skipped, 0 failed" in text
    table = rows(stack)
    assert table[2]["quality_status"] == "scored" and table[2]["quality_score"] is not None
    assert updates(stack) == {1: 1, 2: 2, 3: 1, 4: 1, 5: 1}
    result = cli("verify", "--strict", "--json", environment=settings)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["statuses"] == {"scored": 6}


def test_ctrl_c_then_resume_scores_every_row_exactly_once(
        fresh_supabase: SupabaseStack, workdir: Path, image_host: ImageHost) -> None:
    """``pixelgrade backfill`` in a subprocess, SIGINT once a batch is committed: exit 130,
    then ``--resume`` finishes; the trigger counts one UPDATE per row."""
    stack = fresh_supabase
    image_host.delay = 0.25
    image_host.files.update({f"/{i}.jpg": jpeg() for i in range(12)})
    ids = make_table(stack, [image_host.url(f"/{i}.jpg") for i in range(12)], functions=True)
    count_updates(stack)
    checkpoint = workdir / "c.json"
    args = ["backfill", "--batch-size", "2", *_files(workdir)]
    process = subprocess.Popen([sys.executable, "-m", "pixelgrade", *args], cwd=workdir,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, **WIDE, **env(stack)})
    try:
        deadline = time.monotonic() + 60
        while not checkpoint.exists():
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "no checkpoint after 60 s"
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, output
    text = flat(output)
    assert "SIGINT: finishing the images already started" in text
    assert "continue with: pixelgrade backfill --resume" in text
    assert stack.service_key not in output

    saved = json.loads(checkpoint.read_text())
    assert not saved["finished"] and 2 <= saved["processed"] < len(ids)
    assert saved["store"] == f"supabase:{stack.url.removeprefix('http://')}#images.quality_score"
    assert saved["cursor"] == ids[saved["processed"] - 1]
    assert updates(stack) == dict.fromkeys(ids[:saved["processed"]], 1)

    text = _ok(cli(*args, "--resume", environment=env(stack)))
    assert "Check the result with: pixelgrade verify" in text
    assert updates(stack) == dict.fromkeys(ids, 1)
    assert json.loads(checkpoint.read_text())["finished"] is True
    assert len(image_host.seen) == len(ids)  # no image fetched twice
    assert not (workdir / "e.log").exists()


# -- init for a project ------------------------------------------------------------------------


def test_init_prints_the_table_sql_for_a_project(fresh_supabase: SupabaseStack,
                                                 workdir: Path) -> None:
    stack = fresh_supabase
    result = cli("init", "--db", "supabase", "--sql", environment=env(stack))
    assert result.exit_code == 0, result.output
    assert "CREATE TABLE IF NOT EXISTS images" in result.stdout
    explained = cli("init", environment=env(stack))
    assert explained.exit_code == 0, explained.output
    assert explained.stdout == result.stdout
    assert "Paste the SQL above into the SQL editor" in flat(explained.stderr)
    execute(stack, result.stdout)
    execute(stack, result.stdout)  # twice: harmless
    stack.reload_schema()
    store = SupabaseStore(stack.url, stack.service_key)
    assert store.write_mode == "rpc" and store.count_todo(Selection()) == 0


# -- keys and secrets --------------------------------------------------------------------------


def test_a_wrong_key_is_refused_naming_the_variable(fresh_supabase: SupabaseStack,
                                                    workdir: Path) -> None:
    stack = fresh_supabase
    make_table(stack, ["a.jpg"], functions=True)
    before = checksum(stack)
    forged = mint_key("x" * 40, "service_role")
    expired = mint_key(stack.jwt_secret, "service_role", lifetime_s=-60)
    for key, expected in ((stack.anon_key, "holds the project's 'anon' key"),
                          (forged, "refused the key (Invalid API key)"),
                          (expired, "refused the key")):
        with pytest.raises(StoreError, match=KEY_VARIABLE) as error:
            SupabaseStore(stack.url, key)
        assert expected in str(error.value)
        result = cli("backfill", *_files(workdir), environment=env(stack, key))
        assert result.exit_code == 1, result.output
        assert KEY_VARIABLE in flat(result.output) and expected in flat(result.output)
    assert checksum(stack) == before


def test_the_service_key_is_never_shown(fresh_supabase: SupabaseStack, workdir: Path,
                                        image_host: ImageHost,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    stack = fresh_supabase
    key = stack.service_key
    monkeypatch.setattr(supabase_module, "ATTEMPTS", 2)  # REST down: fail after one retry
    stack.storage.put("photos", "a.jpg", jpeg())
    make_table(stack, ["a.jpg", "none.jpg", image_host.url("/gone.jpg?token=abc")],
               column="storage_path", functions=True)
    outputs: list[str] = []
    messages: list[str] = []

    def run(*args: str, code: int = 0, **settings: str) -> None:
        result = cli(*args, environment={**env(stack), **settings})
        outputs.append(result.output)
        assert result.exit_code == code, result.output

    storage = ["--bucket", "photos", "--path-column", "storage_path", *_files(workdir)]
    run("migrate", "--db", "supabase")
    run("backfill", "--dry-run", "--json", *storage)
    assert f"Connected to Supabase project {stack.url.removeprefix('http://')}, " in outputs[-1]
    run("backfill", "--verbose", "--json", *storage)
    run("backfill", "--resume", "--json", *storage)
    run("verify")
    run("verify", "--json")
    run("backfill", "--table", "nope", *storage, code=1)
    run("backfill", "--path-column", "nope", "--bucket", "photos", code=1)
    run("backfill", *storage, code=1, SUPABASE_SERVICE_ROLE_KEY=stack.anon_key)
    run("backfill", *storage, code=1, SUPABASE_SERVICE_ROLE_KEY=mint_key("y" * 40,
                                                                          "service_role"))
    down = f"http://127.0.0.1:{_closed_port()}"
    run("backfill", *storage, code=1, SUPABASE_URL=down)
    run("verify", code=1, SUPABASE_URL=down)
    assert "cannot reach Supabase project 127.0.0.1:" in flat(outputs[-1])
    for url, bad_key in ((down, key), (stack.url, mint_key("z" * 40, "service_role"))):
        with pytest.raises(StoreError) as error:
            SupabaseStore(url, bad_key)
        chain: BaseException | None = error.value
        while chain is not None:
            messages += [str(chain), repr(chain)]
            chain = chain.__cause__ or chain.__context__

    written = [(workdir / "c.json").read_text(), (workdir / "e.log").read_text()]
    everything = "\n".join([*outputs, *messages, *written])
    assert "http_404" in written[1] and "none.jpg" in written[1]  # the log has content
    signature = key.rsplit(".", 1)[1]
    for secret in (key, signature, key[:40]):
        assert secret not in everything
        assert secret not in "".join(everything.split())  # not even wrapped over lines
    assert all(key not in seen.headers.values() for seen in image_host.seen)
    assert "abc" not in written[1]  # the other host's query string is not logged either
    assert not any(key in path for _, path, _ in stack.requests)  # never in a URL
