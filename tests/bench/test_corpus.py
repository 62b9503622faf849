"""The real-photo corpus tooling: manifest, Qt resource reader, damage families (no download)."""

from __future__ import annotations

import struct
import sys
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from corpus import FAMILIES, load_manifest
from corpus.build import _seed
from corpus.rcc import rcc_files

from pixelgrade import samples


def test_manifest_has_enough_varied_pictures_in_both_halves() -> None:
    pictures = load_manifest()
    by_class = Counter((p.cls, p.split) for p in pictures)
    assert by_class[("photo", "calibration")] + by_class[("photo", "heldout")] >= 40
    for cls in ("photo", "graphic", "flawed"):
        for split in ("calibration", "heldout"):
            assert by_class[(cls, split)] >= 4, (cls, split)
    contents = {p.content for p in pictures if p.cls == "photo"}
    assert {"landscape", "macro", "lowkey", "highkey", "architecture", "animal",
            "texture"} <= contents
    # Split by picture: no picture in both halves, and the excluded packages stay unused.
    assert len({p.id for p in pictures}) == len(pictures)
    assert not {p.package for p in pictures} & {"mate-backgrounds", "ukui-wallpapers",
                                                  "opencv-doc"}


def _rcc(files: dict[str, bytes], version: int = 2) -> bytes:
    """A Qt resource bundle holding ``files`` in one folder ("images"), zlib-compressed."""
    names = b""
    name_offsets = {}
    for name in ["images", *files]:
        name_offsets[name] = len(names)
        encoded = name.encode("utf-16-be")
        names += struct.pack(">HI", len(name), 0) + encoded
    data = b""
    data_offsets = {}
    for name, content in files.items():
        data_offsets[name] = len(data)
        packed = struct.pack(">I", len(content)) + zlib.compress(content)
        data += struct.pack(">I", len(packed)) + packed
    extra = b"\0" * 8 if version >= 2 else b""
    entries = [struct.pack(">IHII", 0, 2, 1, 1) + extra,  # root: 1 child (index 1)
               struct.pack(">IHII", name_offsets["images"], 2, len(files), 2) + extra]
    for name in files:
        entries.append(struct.pack(">IHHHI", name_offsets[name], 1, 0, 0, data_offsets[name])
                       + extra)
    tree = b"".join(entries)
    header = 20 if version < 3 else 24
    tree_at, data_at = header, header + len(tree)
    names_at = data_at + len(data)
    head = b"qres" + struct.pack(">IIII", version, tree_at, data_at, names_at)
    if version >= 3:
        head += struct.pack(">I", 0)
    return head + tree + data + names


@pytest.mark.parametrize("version", [1, 2, 3])
def test_rcc_reader_returns_every_file_with_its_path(tmp_path: Path, version: int) -> None:
    files = {"a.webp": b"RIFF....WEBPVP8 hello", "b.png": bytes(range(256)) * 3}
    bundle = tmp_path / "bundle.rcc"
    bundle.write_bytes(_rcc(files, version))
    assert dict(rcc_files(bundle)) == {f"images/{name}": data for name, data in files.items()}


def test_rcc_reader_refuses_what_is_not_a_bundle(tmp_path: Path) -> None:
    other = tmp_path / "x.rcc"
    other.write_bytes(b"PK\3\4 not qt")
    with pytest.raises(ValueError, match="not a Qt resource bundle"):
        list(rcc_files(other))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_damage_family_changes_the_picture_reproducibly(family: str) -> None:
    rgb = samples.load_photo("astronaut.png")
    first = FAMILIES[family](rgb, np.random.default_rng(_seed("x", family)), 1.0)
    second = FAMILIES[family](rgb, np.random.default_rng(_seed("x", family)), 1.0)
    assert first.level == second.level and first.level
    if first.data is not None:
        assert first.data == second.data and first.fmt in ("JPEG", "WEBP")
        return
    assert first.pixels is not None and second.pixels is not None
    assert np.array_equal(first.pixels, second.pixels)
    assert first.pixels.shape == rgb.shape and first.pixels.dtype == np.uint8
    assert np.abs(first.pixels.astype(int) - rgb).mean() > 1.0
