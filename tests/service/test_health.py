"""``/healthz``: 200 while the database answers and the workers are alive, 503 saying what is
wrong when the database is gone, hung, or a probe fails; open without the token."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from pixelgrade.service.health import HealthCheck
from pixelgrade.service.metrics import ServiceMetrics
from pixelgrade.service.routes import metrics_app
from pixelgrade.stores import SqlStore, open_store
from pixelgrade.web.app import WebSettings, create_app
from tests.conftest import PG_ADMIN_URL
from tests.stores import tables
from tests.watch.conftest import running


def healthz(health: HealthCheck) -> tuple[int, dict[str, object]]:
    with TestClient(metrics_app(ServiceMetrics(), health)) as client:
        answer = client.get("/healthz")
    return answer.status_code, answer.json()


def test_ok_while_the_database_answers(db_url: str) -> None:
    tables.pixelgrade_table(db_url, ["a.jpg"])
    store = open_store(db_url)
    try:
        status, body = healthz(HealthCheck(store))
    finally:
        store.close()
    assert status == 200
    assert body["status"] == "ok" and body["checks"] == {"database": "ok"}


def test_503_when_the_sqlite_file_is_gone(tmp_path: Path) -> None:
    path = tmp_path / "library.db"
    tables.pixelgrade_table(f"sqlite:///{path}", ["a.jpg"])
    store = open_store(f"sqlite:///{path}")
    try:
        assert healthz(HealthCheck(store))[0] == 200
        path.unlink()  # the open connection would still answer SELECT 1
        status, body = healthz(HealthCheck(store))
    finally:
        store.close()
    assert status == 503 and body["status"] == "failing"
    problem = str(body["checks"]["database"])  # type: ignore[index]
    assert problem == f"cannot be reached: SQLite database {path} is gone (deleted or moved)"
    assert body["problems"] == [f"database: {problem}"]


def test_503_when_the_postgresql_database_is_dropped(pg_url: str) -> None:
    """The database dropped under a running service (its sessions terminated): 503 within a
    second or two, never the password of the URL."""
    tables.pixelgrade_table(pg_url, ["a.jpg"])
    with_password = sa.make_url(pg_url).set(password="s3cret-Pw-9").render_as_string(
        hide_password=False)  # trust authentication: any password is accepted
    store = open_store(with_password)
    health = HealthCheck(store, timeout=5)
    try:
        assert healthz(health)[0] == 200
        admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(
                f'DROP DATABASE "{sa.make_url(pg_url).database}" WITH (FORCE)'))
        admin.dispose()
        started = time.monotonic()
        status, body = healthz(health)
        took = time.monotonic() - started
    finally:
        store.close()
    assert status == 503, body
    problem = str(body["checks"]["database"])  # type: ignore[index]
    assert problem.startswith("cannot be reached: ") and "does not exist" in problem, problem
    assert "s3cret-Pw-9" not in str(body)
    assert took < 5


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never says a word: a hung database server."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        for connection in accepted:
            connection.close()
        listener.close()


def test_a_hung_database_answers_503_quickly_and_checks_do_not_pile_up(
        silent_server: int) -> None:
    store = SqlStore(f"postgresql://app:hunter2@127.0.0.1:{silent_server}/shop", inspect=False)
    health = HealthCheck(store, timeout=0.5)

    def pings() -> int:
        return sum(1 for t in threading.enumerate() if t.name == "pixelgrade-health-database")

    try:
        started = time.monotonic()
        status, body = healthz(health)
        assert time.monotonic() - started < 3
        assert status == 503
        assert str(body["checks"]["database"]).startswith(  # type: ignore[index]
            "the database has not answered for 0.")
        status, body = healthz(health)  # the first ping still waits: not started again
        assert status == 503 and pings() == 1
        assert "the database has not answered for 1." in str(body["checks"])
        assert "hunter2" not in str(body)
    finally:
        store.close()


def test_probes_say_what_is_wrong() -> None:
    health = HealthCheck(timeout=0.5)
    health.register("scorer", lambda: None)
    assert healthz(health)[0] == 200
    health.register("scorer", lambda: "the scoring processes are gone")
    health.register("stuck", lambda: time.sleep(5))  # type: ignore[arg-type, func-returns-value]
    health.register("broken", lambda: 1 / 0)  # type: ignore[arg-type]
    status, body = healthz(health)
    assert status == 503
    assert body["checks"] == {"scorer": "the scoring processes are gone",
                              "stuck": "no answer within 0.5 s", "broken": "division by zero"}
    health.unregister("stuck")
    health.unregister("broken")
    health.register("scorer", lambda: None)
    assert healthz(health)[0] == 200


def test_the_watchers_liveness(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'library.db'}"
    tables.pixelgrade_table(url, [])
    store = open_store(url)
    health = HealthCheck(store)
    try:
        with running(store, tmp_path) as watch:
            health.register("watch", watch.watcher.liveness)
            status, body = healthz(health)
            assert (status, body["checks"]) == (200, {"database": "ok", "watch": "ok"})
        status, body = healthz(health)
    finally:
        store.close()
    assert status == 503
    assert body["problems"] == ["watch: watch is not running (not started yet, or stopped)"]


def test_serve_answers_health_and_metrics_without_the_token(tmp_path: Path) -> None:
    """/healthz and /metrics need no token, even with --protect-reads; the scoring service's
    workers are checked while the app runs, and its re-scores are counted."""
    url = f"sqlite:///{tmp_path / 'library.db'}"
    tables.pixelgrade_table(url, ["gone.jpg"])
    store = open_store(url)
    settings = WebSettings(token="t0ken", protect_reads=True, root=tmp_path,
                           uploads=tmp_path / "uploads", cache=tmp_path / "cache")
    app = create_app(store, settings)
    try:
        with TestClient(app) as client:
            assert client.get("/api/counts").status_code == 401  # reads are guarded
            health = client.get("/healthz")
            rescored = client.post("/api/images/1/rescore",
                                   headers={"Authorization": "Bearer t0ken"})
            metrics = client.get("/metrics")
        after = app.state.health.check()  # the app stopped: its scoring service too
    finally:
        store.close()
    assert health.status_code == 200
    assert health.json()["checks"] == {"database": "ok", "scoring": "ok"}
    assert rescored.status_code == 200, rescored.text
    assert metrics.status_code == 200
    assert 'pixelgrade_info{store="sqlite"' in metrics.text
    assert 'pixelgrade_images_total{kind="not_found",path="rescore",status="failed"} 1.0' in (
        metrics.text), metrics.text
    assert after.checks == {"database": None}
