"""Settings as a new user meets them: pixelgrade.toml, PIXELGRADE_* variables, `pixelgrade
config`, the same options on every command, --version, -h, help at 80 columns, `score -`,
`score --fail-under`, and `migrate --sql --transactional`."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pixelgrade import __version__, samples
from pixelgrade.cli import app

runner = CliRunner()
#: Every command that scores images, and the options each must have.
SCORING_COMMANDS = ("score", "backfill", "watch", "serve")
SCORING_OPTIONS = ("--max-pixels", "--max-bytes", "--target-mp", "--high", "--medium",
                   "--quiet", "--verbose", "--config")


def _cli(*args: str, env: dict[str, str] | None = None, input: bytes | None = None):
    return runner.invoke(app, list(args), env={"COLUMNS": "200", **(env or {})}, input=input)


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with a SQLite table of four images (one missing)."""
    monkeypatch.chdir(tmp_path)
    for variable in ("DATABASE_URL", "SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY"):
        monkeypatch.delenv(variable, raising=False)
    photo = samples.encode(samples.load_photo("coffee.png"), "JPEG", quality=90)
    (tmp_path / "photos").mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (tmp_path / "photos" / name).write_bytes(photo)
    with sqlite3.connect(tmp_path / "shop.db") as conn:
        conn.execute("CREATE TABLE pictures (id INTEGER PRIMARY KEY, src TEXT, "
                     "quality_score INTEGER, quality_status TEXT, quality_details TEXT, "
                     "quality_scored_at TEXT)")
        conn.executemany("INSERT INTO pictures (src) VALUES (?)",
                         [("photos/a.jpg",), ("photos/b.jpg",), ("photos/c.jpg",),
                          ("photos/gone.jpg",)])
    return tmp_path


def _scores(folder: Path) -> list[int | None]:
    with sqlite3.connect(folder / "shop.db") as conn:
        return [row[0] for row in conn.execute("SELECT quality_score FROM pictures ORDER BY id")]


# -- pixelgrade.toml and the environment ------------------------------------------------------


def test_the_project_file_names_the_table_for_every_command(project: Path) -> None:
    (project / "pixelgrade.toml").write_text(
        'db = "sqlite:///shop.db"\ntable = "pictures"\nurl_column = "src"\n\n'
        "[backfill]\nbatch-size = 2\n")
    result = _cli("backfill")
    assert result.exit_code == 0, result.output
    text = _flat(result.output)
    assert "table pictures" in text and "Batch 2/2 complete" in text
    assert _scores(project)[:3] == [_scores(project)[0]] * 3 and _scores(project)[3] is None
    result = _cli("verify", "--json")  # the same table, from the same file
    assert json.loads(result.stdout)["total_images"] == 4


def test_flags_beat_the_environment_which_beats_the_file(project: Path) -> None:
    (project / "pixelgrade.toml").write_text(
        'db = "sqlite:///shop.db"\ntable = "pictures"\nurl_column = "src"\nbatch_size = 1\n')
    env = {"PIXELGRADE_BATCH_SIZE": "2"}
    result = _cli("backfill", env=env)
    assert "Batch 2/2 complete" in _flat(result.output), result.output  # env over file
    with sqlite3.connect(project / "shop.db") as conn:
        conn.execute("UPDATE pictures SET quality_score = NULL, quality_status = NULL")
    result = _cli("backfill", "--batch-size", "4", env=env)
    assert "Batch 1/1 complete" in _flat(result.output), result.output  # flag over env


def test_config_shows_each_setting_and_its_source_with_secrets_masked(project: Path) -> None:
    (project / "pixelgrade.toml").write_text(
        'db = "postgresql://app:hunter2@db.internal/shop"\n[backfill]\nrate = 5\n')
    result = _cli("config", "backfill", env={"PIXELGRADE_BATCH_SIZE": "250",
                                             "PIXELGRADE_API_TOKEN": "tok-secret-1"})
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output and "tok-secret-1" not in result.output
    lines = result.output.splitlines()
    assert 'db = "postgresql://app:***@db.internal/shop"  # file ' \
        f'{project / "pixelgrade.toml"}' in lines
    assert "rate = 5.0  # file " + str(project / "pixelgrade.toml") in lines
    assert "batch_size = 250  # environment PIXELGRADE_BATCH_SIZE" in lines
    assert "table = \"images\"  # default" in lines
    assert "# PIXELGRADE_API_TOKEN is set: ***" in lines


def test_an_unknown_setting_in_the_file_is_named(project: Path) -> None:
    (project / "pixelgrade.toml").write_text("[backfill]\nbatchsize = 2\n")
    result = _cli("backfill", "--dry-run")
    assert result.exit_code == 2
    assert "'batchsize' in [backfill] is not an option of backfill" in _flat(result.output)
    (project / "pixelgrade.toml").write_text("tabel = 'x'\n")
    assert "'tabel' in the top level is not an option of any command" in _flat(
        _cli("verify").output)
    (project / "pixelgrade.toml").write_text("table = \n")
    assert "is not valid TOML" in _flat(_cli("verify").output)
    assert "does not exist" in _flat(_cli("verify", "--config", "nope.toml").output)


# -- the same options everywhere ------------------------------------------------------------


@pytest.mark.parametrize("command", SCORING_COMMANDS)
def test_every_scoring_command_has_the_scoring_options(command: str) -> None:
    result = _cli(command, "-h")
    assert result.exit_code == 0
    for name in SCORING_OPTIONS:
        assert re.search(rf"(^|[\s,]){re.escape(name)}[\s,/=]", result.output), (command, name)


def test_version_and_short_help() -> None:
    result = _cli("--version")
    assert result.exit_code == 0 and result.output.startswith(f"pixelgrade {__version__}")
    assert _cli("-h").exit_code == 0 and "backfill" in _cli("-h").output


@pytest.mark.parametrize("command", ["score", "backfill", "watch", "serve", "verify", "init",
                                     "migrate", "config", "demo"])
def test_help_is_readable_at_80_columns(command: str) -> None:
    """No line past 80 columns, no option name cut short with an ellipsis."""
    result = subprocess.run([sys.executable, "-m", "pixelgrade", command, "--help"],
                            capture_output=True, text=True, env={"COLUMNS": "80",
                                                                 "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    for line in result.stdout.splitlines():
        assert len(line) <= 80, line
        assert "…" not in line, line


# -- score ------------------------------------------------------------------------------------


def test_score_reads_stdin() -> None:
    data = samples.encode(samples.load_photo("coffee.png"), "JPEG", quality=90)
    result = _cli("score", "-", "--json", input=data)
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert row["path"] == "(stdin)" and row["status"] == "scored" and row["format"] == "JPEG"
    empty = _cli("score", "-", input=b"")
    assert "standard input is empty" in _flat(empty.output)


def test_score_fail_under_for_ci(tmp_path: Path) -> None:
    rgb = samples.load_photo("coffee.png")
    (tmp_path / "good.jpg").write_bytes(samples.encode(rgb, "JPEG", quality=92))
    (tmp_path / "blurry.png").write_bytes(samples.DISTORTIONS["gaussian_blur"](rgb, 4))
    good = _cli("score", str(tmp_path / "good.jpg"), "--fail-under", "50")
    assert good.exit_code == 0, good.output
    both = _cli("score", str(tmp_path), "--fail-under", "50", "--quiet")
    assert both.exit_code == 1
    assert "1 of 2 images score below 50 or have no score" in _flat(both.output)
    assert "- " not in both.output  # --quiet: one line per image, no issue list


# -- migrate ----------------------------------------------------------------------------------


def test_migrate_sql_says_concurrently_needs_no_transaction(pg_url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE images (id serial PRIMARY KEY, url text)")
    engine.dispose()
    plain = _cli("migrate", "--db", pg_url, "--sql")
    assert plain.exit_code == 0
    assert "CREATE INDEX CONCURRENTLY" in plain.stdout
    assert "cannot run inside a transaction block" in _flat(plain.stderr)
    assert "--sql --transactional" in _flat(plain.stderr)
    wrapped = _cli("migrate", "--db", pg_url, "--sql", "--transactional")
    assert "CONCURRENTLY" not in wrapped.stdout and "CREATE INDEX" in wrapped.stdout
    assert "transaction block" not in wrapped.stderr
