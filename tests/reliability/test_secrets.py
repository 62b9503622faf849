"""Issue 7, part 6: secrets never leave the process.

Real ``pixelgrade`` processes (so tracebacks, warnings and logging reach stderr as they would
for a user) run backfills, a watch sweep and verify with a known database password, and with a
known Supabase service-role key, including runs that fail: bad rows, a database that refuses
the connection, a database that does not exist, a table that does not exist, a wrong key, a
Supabase project that is down. Rows also carry secrets of their own (a password and a token in
their URLs). Then every text is grepped: stdout, stderr, the error logs, the checkpoint, the
watch log, every other file the runs left in their folder, and the messages, reprs and
formatted tracebacks of the exceptions the library raises for the same failures.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from pixelgrade.errors import PixelgradeError
from pixelgrade.stores import SupabaseStore, TableSpec, open_store
from tests.backfill.conftest import ImageServer, image_server, jpeg  # noqa: F401 (fixture)
from tests.reliability.report import full_size, record
from tests.stores import tables
from tests.supabase.conftest import (  # noqa: F401 (fixtures)
    CLIENT_NOISE,
    fresh_supabase,
    supabase_stack,
)
from tests.supabase.helpers import make_table
from tests.supabase.stack import SupabaseStack, mint_key

PASSWORD = "pg-S3CRET-123"
URL_PASSWORD = "url-S3CRET-456"
URL_TOKEN = "tok-S3CRET-789"
SRC = Path(__file__).resolve().parents[2] / "src"


class Evidence:
    """Everything the runs printed or wrote, and the secrets that must not be in it."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = secrets
        self.texts: list[tuple[str, str]] = []
        self.runs = 0
        self.files = 0

    def add(self, where: str, text: str) -> None:
        self.texts.append((where, text))

    def add_exception(self, where: str, exc: BaseException) -> None:
        chain: BaseException | None = exc
        while chain is not None:
            self.add(where, f"{chain}\n{chain!r}")
            chain = chain.__cause__ or chain.__context__
        self.add(where + " (traceback)", "".join(traceback.format_exception(exc)))

    def add_files(self, folder: Path, skip: tuple[str, ...] = ()) -> None:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix not in (".jpg", ".png", ".db") and \
                    path.name not in skip:
                self.add(str(path.relative_to(folder)), path.read_text(errors="replace"))
                self.files += 1

    def leaks(self) -> list[str]:
        found = []
        for where, text in self.texts:
            squeezed = "".join(text.split())  # a secret wrapped over two lines still counts
            found += [f"{secret!r} in {where}" for secret in self.secrets
                      if secret in text or secret in squeezed]
        return found


def pixelgrade(evidence: Evidence, *args: str, cwd: Path, code: int | None = 0,
               env: dict[str, str] | None = None) -> str:
    """Run ``python -m pixelgrade ARGS`` in ``cwd``; record its stdout and stderr."""
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("DATABASE_URL", "SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY")}
    environment.update({"PYTHONPATH": os.pathsep.join([str(SRC), str(SRC.parent)]),
                        "COLUMNS": "200", **(env or {})})
    result = subprocess.run([sys.executable, "-m", "pixelgrade", *args], cwd=cwd,
                            capture_output=True, text=True, env=environment, timeout=180)
    evidence.runs += 1
    shown = " ".join(args[:2])
    evidence.add(f"stdout of {shown}", result.stdout)
    evidence.add(f"stderr of {shown}", result.stderr)
    assert code is None or result.returncode == code, (args, result.stdout, result.stderr)
    return result.stdout + result.stderr


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "work"
    (folder / "photos").mkdir(parents=True)
    (folder / "photos" / "good.jpg").write_bytes(jpeg())
    yield folder


def test_the_database_password_and_row_secrets_never_appear(
        pg_url: str, image_server: ImageServer, workdir: Path) -> None:  # noqa: F811
    db = sa.make_url(pg_url).set(drivername="postgresql", password=PASSWORD).render_as_string(
        hide_password=False)
    assert PASSWORD in db
    port = image_server.server_address[1]
    secret_url = f"http://reader:{URL_PASSWORD}@127.0.0.1:{port}/good.jpg?token={URL_TOKEN}"
    missing_url = f"http://127.0.0.1:{port}/missing.jpg?signature={URL_TOKEN}"
    tables.pixelgrade_table(pg_url, [
        "photos/good.jpg", "photos/missing.jpg", secret_url, missing_url,
        f"http://127.0.0.1:{port}/page.html", "../../etc/passwd", "file:///etc/passwd",
        f"http://127.0.0.1:{port}/error.jpg?key={URL_TOKEN}"])
    evidence = Evidence([PASSWORD, URL_PASSWORD, URL_TOKEN])
    files = ["--checkpoint", "checkpoint.json", "--error-log", "errors.log",
             "--workers", "1", "--root", str(workdir)]
    run = ["--allow-private-network", *files]

    refused = db.replace(f":{sa.make_url(db).port}/", f":{_closed_port()}/")
    no_database = db.rsplit("/", 1)[0] + "/no_such_database_here"
    full = full_size()  # make stress: every command against every failure

    if full:
        pixelgrade(evidence, "migrate", "--db", db, cwd=workdir)
        pixelgrade(evidence, "backfill", "--db", db, "--dry-run", "--json", *run, cwd=workdir)
    pixelgrade(evidence, "backfill", "--db", db, "--verbose", "--json", *run, cwd=workdir)
    # It retries the transient failures, which fail again: nothing scored, exit 1.
    pixelgrade(evidence, "backfill", "--resume", "--verbose", *run, cwd=workdir,
               env={"DATABASE_URL": db}, code=None)
    if full:
        (workdir / ".env").write_text(f"DATABASE_URL={db}\n")
        pixelgrade(evidence, "backfill", "--retry-failed", *files, cwd=workdir)  # refused
        (workdir / ".env").unlink()
    pixelgrade(evidence, "watch", "--db", db, "--once", "--json", "--workers", "1",
               "--error-log", "watch-errors.log", "--root", str(workdir),
               "--allow-private-network", cwd=workdir)
    pixelgrade(evidence, "verify", "--db", db, "--json", cwd=workdir)
    # Failures: a server that refuses, a database and a table that do not exist, a
    # checkpoint of another database, a bad --allow-host.
    failures = [("backfill", refused, *files), ("verify", no_database),
                ("backfill", db, "--table", "nope", *files)]
    if full:
        other = f"sqlite:///{workdir / 'other.db'}"
        tables.pixelgrade_table(other, ["photos/good.jpg"])
        failures += [("watch", refused, "--once"), ("verify", refused),
                     ("backfill", no_database, *files), ("watch", no_database, "--once"),
                     ("backfill", db, "--allow-host", "10.0.0.0/99", *files),
                     ("backfill", other, "--resume", *files)]
    for command, database, *rest in failures:
        pixelgrade(evidence, command, "--db", database, *rest, cwd=workdir, code=1)
    # A crash with a traceback (the error log is a directory): the password is in the locals
    # of the frames it prints.
    crash = pixelgrade(evidence, "backfill", "--db", db, "--retry-failed", "--workers", "1",
                       "--root", str(workdir), "--checkpoint", "crash.json", "--error-log",
                       str(workdir), cwd=workdir, code=None)
    assert "Error" in crash

    for bad in (refused, no_database, db):
        try:
            store = open_store(bad)
            store.close()
            store = open_store(bad, TableSpec(table="nope"))
        except PixelgradeError as exc:
            evidence.add_exception(f"exception opening {bad.split('@')[-1]}", exc)
        else:
            store.close()
            pytest.fail(f"opening {bad} should have failed")

    evidence.add_files(workdir)
    log = (workdir / "errors.log").read_text()
    assert "http_404" in log and "outside_root" in log  # the logs have content
    assert evidence.leaks() == []
    record("secrets", store="postgresql", runs=evidence.runs, files_grepped=evidence.files,
           texts_grepped=len(evidence.texts), secrets=len(evidence.secrets), leaks=0)


def test_the_grep_finds_a_secret_even_wrapped_over_lines() -> None:
    evidence = Evidence(["pg-S3CRET-123"])
    evidence.add("clean", "postgresql://postgres:***@127.0.0.1/db")
    assert evidence.leaks() == []
    evidence.add("wrapped", "password pg-S3CR\n  ET-123 in a narrow terminal")
    try:
        try:
            raise OSError("connect failed for pg-S3CRET-123")
        except OSError as inner:
            raise RuntimeError("could not open the store") from inner
    except RuntimeError as exc:
        evidence.add_exception("cause", exc)
    assert evidence.leaks() == ["'pg-S3CRET-123' in wrapped", "'pg-S3CRET-123' in cause",
                                "'pg-S3CRET-123' in cause (traceback)"]


@CLIENT_NOISE
def test_the_service_role_key_never_appears(fresh_supabase: SupabaseStack,  # noqa: F811
                                            workdir: Path) -> None:
    stack = fresh_supabase
    key = stack.service_key
    wrong = mint_key("w" * 40, "service_role")
    stack.storage.put("photos", "a.jpg", jpeg())
    make_table(stack, ["a.jpg", "none.jpg", "../../etc/passwd", "broken.jpg"],
               column="storage_path", functions=True)
    stack.storage.put("photos", "broken.jpg", b"\xff\xd8\xff not really a jpeg")
    evidence = Evidence([key, key.rsplit(".", 1)[1], wrong.rsplit(".", 1)[1]])
    settings = {"SUPABASE_URL": stack.url, "SUPABASE_SERVICE_ROLE_KEY": key}
    storage = ["--db", "supabase", "--bucket", "photos", "--path-column", "storage_path",
               "--workers", "1", "--checkpoint", "checkpoint.json", "--error-log", "errors.log"]

    full = full_size()  # make stress: every command against every failure

    if full:
        pixelgrade(evidence, "backfill", "--dry-run", "--json", *storage, cwd=workdir,
                   env=settings)
    pixelgrade(evidence, "backfill", "--verbose", "--json", *storage, cwd=workdir, env=settings)
    if full:
        pixelgrade(evidence, "backfill", "--retry-failed", *storage, cwd=workdir, env=settings)
    (workdir / ".env").write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    pixelgrade(evidence, "watch", "--once", "--json", *storage[:6], "--workers", "1",
               "--error-log", "watch-errors.log", cwd=workdir)
    if full:
        pixelgrade(evidence, "verify", "--db", "supabase", "--json", cwd=workdir)
    (workdir / ".env").unlink()
    down = f"http://127.0.0.1:{_closed_port()}"  # retried with backoff: 7.5 s a command
    failures = [("backfill", {"SUPABASE_SERVICE_ROLE_KEY": wrong})]
    if full:
        failures += [(command, bad) for bad in ({"SUPABASE_SERVICE_ROLE_KEY": wrong},
                                                {"SUPABASE_SERVICE_ROLE_KEY": stack.anon_key},
                                                {"SUPABASE_URL": down})
                     for command in ("backfill", "verify")][1:]
    for command, bad in failures:
        arguments = storage if command == "backfill" else ["--db", "supabase"]
        pixelgrade(evidence, command, *arguments, cwd=workdir, env={**settings, **bad}, code=1)
    for url, bad_key in ((down, key), (stack.url, wrong)):
        with pytest.raises(PixelgradeError) as caught:
            SupabaseStore(url, bad_key)
        evidence.add_exception(f"exception of SupabaseStore({url})", caught.value)

    evidence.add_files(workdir)
    log = (workdir / "errors.log").read_text()
    assert "none.jpg" in log and "broken.jpg" in log  # the log has content
    assert evidence.leaks() == []
    assert not re.search(r"eyJ[\w-]{10,}\.[\w-]{10,}\.[\w-]{10,}",
                         "\n".join(text for _, text in evidence.texts))  # no JWT at all
    record("secrets", store="supabase", runs=evidence.runs, files_grepped=evidence.files,
           texts_grepped=len(evidence.texts), secrets=len(evidence.secrets), leaks=0)
