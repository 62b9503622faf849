"""The `pixelgrade` command: the --json contract, human output, exit codes, folders, demo."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pixelgrade import samples
from pixelgrade.cli import app

runner = CliRunner()


@pytest.fixture
def library(tmp_path: Path) -> Path:
    rgb = samples.load_photo("coffee.png")
    (tmp_path / "good.jpg").write_bytes(samples.encode(rgb, "JPEG", quality=92))
    (tmp_path / "blurry.png").write_bytes(samples.DISTORTIONS["gaussian_blur"](rgb, 4))
    (tmp_path / "vector.svg").write_bytes(b'<svg xmlns="http://www.w3.org/2000/svg"></svg>')
    (tmp_path / "page.jpg").write_bytes(b"<!doctype html><html><body>404</body></html>")
    (tmp_path / "empty.png").write_bytes(b"")
    return tmp_path


def _json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_json_contract(library: Path) -> None:
    paths = [str(library / n) for n in ("good.jpg", "blurry.png", "vector.svg", "page.jpg",
                                        "empty.png")]
    paths.append(str(library / "missing.jpg"))
    result = runner.invoke(app, ["score", "--json", *paths])
    assert result.exit_code == 0, result.output
    rows = _json_lines(result.output)
    assert [row["path"] for row in rows] == paths  # as given, in order
    good, blurry, vector, page, empty, missing = rows
    assert good["status"] == "scored" and good["band"] == "high" and good["format"] == "JPEG"
    assert (good["width"], good["height"]) == (600, 400)
    assert blurry["band"] == "low" and "blurry" in [i["code"] for i in blurry["issues"]]
    assert vector["status"] == "skipped" and vector["reason"] == "vector image (SVG)"
    assert vector["score"] is None and vector["band"] is None
    assert page["status"] == "failed" and "HTML" in page["reason"]
    assert empty["status"] == "failed" and "empty" in empty["reason"]
    assert missing["status"] == "failed" and "not found" in missing["reason"]
    for row in rows:
        assert row["scorer_version"]


def test_json_is_deterministic_and_parallel_matches_serial(library: Path) -> None:
    args = ["score", "--json", str(library)]
    serial = runner.invoke(app, [*args, "--workers", "1"]).output
    parallel = runner.invoke(app, [*args, "--workers", "2"]).output
    assert serial == parallel
    assert len(_json_lines(serial)) == 5  # the folder's five files, sorted


def test_band_thresholds_are_configurable(library: Path) -> None:
    path = str(library / "good.jpg")
    default = _json_lines(runner.invoke(app, ["score", "--json", path]).output)[0]
    strict = _json_lines(runner.invoke(
        app, ["score", "--json", "--high", "99", "--medium", "98", path]).output)[0]
    assert default["band"] == "high" and strict["band"] == "low"
    assert default["score"] == strict["score"]


def test_human_output_and_exit_codes(library: Path) -> None:
    result = runner.invoke(app, ["score", str(library)])
    assert result.exit_code == 0
    assert "blurry: nothing is in focus" in result.output
    assert "limited by sharpness (" in result.output and "total: " in result.output
    assert "N/A" in result.output and "vector image" in result.output
    assert "5 images:" in result.output
    assert runner.invoke(app, ["score"]).exit_code == 2  # usage error
    bad = runner.invoke(app, ["score", "--high", "30", "--medium", "50", str(library)])
    assert bad.exit_code == 2 and "band thresholds" in bad.output


def test_max_bytes_refuses_without_reading(library: Path) -> None:
    result = runner.invoke(app, ["score", "--json", "--max-bytes", "100",
                                 str(library / "good.jpg")])
    row = _json_lines(result.output)[0]
    assert row["status"] == "failed" and "100-byte limit" in row["reason"]


def test_demo_runs_the_whole_procedure_on_sqlite(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--dir", str(folder)])
    assert result.exit_code == 0, result.output
    output = result.output
    # The commands run in the README's order, each echoed before its output.
    steps = [output.index(marker) for marker in (
        "$ pixelgrade backfill --dry-run", "Dry run complete - no changes made",
        "$ pixelgrade backfill --db", "$ pixelgrade verify", "Featured images")]
    assert steps == sorted(steps)
    for expected in ("astronaut-blurry.png", "N/A", "vector image", "HTML page",
                     "heavy compression", "underexposed"):
        assert expected in output
    with sqlite3.connect(folder / "library.db") as conn:
        total, unscored, pending = conn.execute(
            "SELECT count(*), count(*) - count(quality_score), "
            "sum(quality_status IS NULL) FROM images").fetchone()
    assert total == 331 and pending == 0
    # Exactly the bad files stay unscored: 2 vector, 2 unreadable, 2 missing.
    assert unscored == 6
    kinds = [json.loads(line)["kind"]
             for line in (folder / "backfill-errors.log").read_text().splitlines()]
    assert sorted(kinds).count("not_found") == 2 and len(kinds) == 4


# -- backfill and watch: --checkpoint and --error-log paths that cannot work -------------------


@pytest.fixture
def one_missing_image(tmp_path: Path) -> str:
    """A SQLite table with one row whose file is missing: it fails, so the error log is
    written (before the row) and the checkpoint after it."""
    database = tmp_path / "app.db"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE images (id INTEGER PRIMARY KEY, url TEXT, "
                     "quality_score INTEGER)")
        conn.execute("INSERT INTO images (url) VALUES ('gone.jpg')")
    conn.close()
    return f"sqlite:///{database}"


def _backfill(db: str, checkpoint: Path, error_log: Path, command: str = "backfill"
              ) -> tuple[int, str]:
    files = (["--checkpoint", str(checkpoint)] if command == "backfill" else ["--once"])
    result = runner.invoke(app, [command, "--db", db, "--workers", "1", *files,
                                 "--error-log", str(error_log)])
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        result.exception  # a traceback otherwise
    return result.exit_code, result.output


def _one_line_error(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1 and "Traceback" not in output, output
    return errors[0]


def _score(db: str) -> object:
    with sqlite3.connect(db.removeprefix("sqlite:///")) as conn:
        value = conn.execute("SELECT quality_score FROM images").fetchone()[0]
    conn.close()
    return value


def test_backfill_refuses_a_directory_as_checkpoint_or_error_log(
        one_missing_image: str, tmp_path: Path) -> None:
    folder = tmp_path / "runs"
    folder.mkdir()
    code, output = _backfill(one_missing_image, folder, tmp_path / "e.log")
    assert code == 1
    line = _one_line_error(output)
    assert f"--checkpoint {folder} is a directory; pass a file path such as " in line
    assert str(folder / "backfill-checkpoint.json") in line
    code, output = _backfill(one_missing_image, tmp_path / "c.json", folder)
    assert code == 1
    line = _one_line_error(output)
    assert f"--error-log {folder} is a directory" in line
    assert str(folder / "backfill-errors.log") in line
    assert not (tmp_path / "e.log").exists() and not (tmp_path / "c.json").exists()
    assert list(folder.iterdir()) == []  # refused before any work


def test_watch_refuses_a_directory_as_error_log(one_missing_image: str, tmp_path: Path
                                                ) -> None:
    code, output = _backfill(one_missing_image, tmp_path, tmp_path, command="watch")
    assert code == 1
    assert str(tmp_path / "watch-errors.log") in _one_line_error(output)


def test_backfill_refuses_a_folder_that_cannot_be_created(
        one_missing_image: str, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    code, output = _backfill(one_missing_image, tmp_path / "notes.txt" / "c.json",
                             tmp_path / "e.log")
    assert code == 1
    line = _one_line_error(output)
    assert "cannot be created because" in line and "notes.txt is a file" in line
    code, output = _backfill(one_missing_image, tmp_path / "c.json",
                             tmp_path / "notes.txt" / "sub" / "e.log")
    assert code == 1 and "--error-log" in _one_line_error(output)
    assert _score(one_missing_image) is None  # nothing was done


def test_backfill_creates_a_folder_that_does_not_exist_yet(
        one_missing_image: str, tmp_path: Path) -> None:
    checkpoint, error_log = tmp_path / "new" / "c.json", tmp_path / "logs" / "today" / "e.log"
    code, output = _backfill(one_missing_image, checkpoint, error_log)
    assert code == 1, output  # its only row failed: the run scored nothing
    assert "Nothing was scored" in output
    assert json.loads(checkpoint.read_text())["failed"] == 1
    assert json.loads(error_log.read_text())["kind"] == "not_found"


def test_a_write_the_checks_cannot_foresee_fails_in_one_line(
        one_missing_image: str, tmp_path: Path) -> None:
    """/proc takes no new folders, even from root, whom permission checks let through: the
    failure surfaces at the first write (the error log, before the row), in one line."""
    if not Path("/proc/self").is_dir():
        pytest.skip("needs Linux's /proc")
    code, output = _backfill(one_missing_image, tmp_path / "c.json",
                             Path("/proc/pixelgrade-test/e.log"))
    assert code == 1
    line = _one_line_error(output)
    assert "--error-log /proc/pixelgrade-test/e.log" in line
    assert ("pass a file path in a writable folder such as" in line  # root: at the write
            or "cannot be created in /proc, which is not writable" in line)  # others: at start
