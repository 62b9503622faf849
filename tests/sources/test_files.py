"""Local paths from the table: only regular files under the root, whatever the spelling."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from pixelgrade.errors import FetchError
from pixelgrade.sources.files import read_file, resolve_local


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    (folder / "photos").mkdir(parents=True)
    (folder / "photos" / "a.jpg").write_bytes(b"\xff\xd8\xff jpeg-ish")
    (tmp_path / "secret.txt").write_text("not for you")
    return folder


def _refused(value: str, root: Path | None, kind: str) -> str:
    with pytest.raises(FetchError) as caught:
        resolve_local(value, root)
    assert caught.value.kind == kind and not caught.value.transient, caught.value
    message = str(caught.value)
    if root is not None and str(root.parent) not in value:
        # the server's own folders are not shown to whoever wrote the row (or reads the page)
        assert str(root) not in message and str(root.parent) not in message
    return message


def test_paths_under_the_root(root: Path) -> None:
    expected = os.path.realpath(root / "photos" / "a.jpg")
    assert resolve_local("photos/a.jpg", root) == expected
    assert resolve_local("./photos/../photos/a.jpg", root) == expected
    assert resolve_local(str(root / "photos" / "a.jpg"), root) == expected  # absolute, inside


@pytest.mark.parametrize("value", ["../secret.txt", "photos/../../secret.txt",
                                   "photos/../../../../../../etc/passwd", "/etc/passwd",
                                   "//etc/passwd"])
def test_traversal_and_absolute_paths_outside_are_refused(root: Path, value: str) -> None:
    message = _refused(value, root, "outside_root")
    assert "--root" in message


def test_absolute_path_to_a_sibling_folder_with_the_same_prefix(root: Path) -> None:
    sibling = root.parent / (root.name + "-other")
    sibling.mkdir()
    (sibling / "x.jpg").write_bytes(b"x")
    _refused(str(sibling / "x.jpg"), root, "outside_root")


def test_symlinks_are_followed_before_the_check(root: Path) -> None:
    (root / "escape.jpg").symlink_to(root.parent / "secret.txt")
    (root / "dir-escape").symlink_to(root.parent)
    (root / "inside.jpg").symlink_to(root / "photos" / "a.jpg")
    _refused("escape.jpg", root, "outside_root")
    _refused("dir-escape/secret.txt", root, "outside_root")
    assert resolve_local("inside.jpg", root) == os.path.realpath(root / "photos" / "a.jpg")


@pytest.mark.parametrize("value", ["file:///etc/passwd", "FILE://localhost/etc/passwd",
                                   "ftp://example.com/a.jpg", "gopher://x/_",
                                   "data:image/png;base64,iVBORw0KGgo=",
                                   "javascript:alert(1)", "jar:file:///a.jar!/b.jpg"])
def test_other_schemes_are_refused(root: Path, value: str) -> None:
    message = _refused(value, root, "unsupported_scheme")
    assert "only http:// and https://" in message


def test_without_a_root_local_paths_are_refused(root: Path) -> None:
    message = _refused("photos/a.jpg", None, "no_root")
    assert "pass --root DIR" in message


def test_not_found_names_the_value_as_stored(root: Path) -> None:
    assert _refused("photos/gone.jpg", root, "not_found") == "file not found: photos/gone.jpg"


def test_directories_devices_fifos_and_kernel_files_are_refused(root: Path) -> None:
    assert "a directory" in _refused("photos", root, "not_a_file")
    os.mkfifo(root / "pipe.jpg")
    assert "FIFO" in _refused("pipe.jpg", root, "not_a_file")
    assert "device" in _refused("/dev/zero", Path("/dev"), "not_a_file")
    assert "kernel" in _refused("/proc/self/environ", Path("/"), "not_a_file")
    assert "kernel" in _refused("self/environ", Path("/proc"), "not_a_file")


def test_read_file_refuses_a_fifo_without_waiting_for_a_writer(tmp_path: Path) -> None:
    """Checked on the open file: a path swapped for a FIFO after the check cannot stall."""
    os.mkfifo(tmp_path / "pipe")
    result: list[BaseException | bytes] = []

    def read() -> None:
        try:
            result.append(read_file(str(tmp_path / "pipe"), 1000))
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=read, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(5)
    assert not thread.is_alive(), "read_file blocked on a FIFO"
    assert time.monotonic() - started < 5
    assert isinstance(result[0], FetchError) and result[0].kind == "not_a_file"


def test_read_file_refuses_devices(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="a device, not a regular file") as caught:
        read_file("/dev/zero", 1000)
    assert caught.value.kind == "not_a_file"
    with pytest.raises(FetchError, match="a directory"):
        read_file(str(tmp_path), 1000)
