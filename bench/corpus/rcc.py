"""Read the files packed in a Qt resource bundle (``.rcc``), as GCompris ships its photos.

The format is Qt's own (``QResourceRoot`` in qtbase's ``src/corelib/io/qresource.cpp``): the
magic ``qres``, then big-endian u32 version, tree offset, data offset and names offset (and,
from version 3, a u32 of feature flags). The tree is an array of entries of 14 bytes (version
1) or 22 (version 2 and later, which add a u64 modification time): a u32 name offset, u16
flags, then for a directory (flag 2) a u32 child count and the u32 index of its first child,
else a u16 country, u16 language and the u32 offset of its data. A name is a u16 length, a u32
hash and that many UTF-16BE code units; a data blob is a u32 size and the bytes, which are
zlib-compressed after a 4-byte length when flag 1 is set (flag 4, zstd, is not used by the
bundles read here and is refused).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

_DIRECTORY, _ZLIB, _ZSTD = 2, 1, 4


def _u16(data: bytes, at: int) -> int:
    return struct.unpack_from(">H", data, at)[0]


def _u32(data: bytes, at: int) -> int:
    return struct.unpack_from(">I", data, at)[0]


def rcc_files(path: Path) -> Iterator[tuple[str, bytes]]:
    """Yield ``(member path, bytes)`` for every file in the bundle at ``path``."""
    data = path.read_bytes()
    if data[:4] != b"qres":
        raise ValueError(f"{path}: not a Qt resource bundle (no 'qres' magic)")
    version, tree, payload, names = struct.unpack_from(">IIII", data, 4)
    entry_size = 14 if version == 1 else 22

    def name(index: int) -> str:
        at = names + _u32(data, tree + index * entry_size)
        length = _u16(data, at)
        return data[at + 6 : at + 6 + 2 * length].decode("utf-16-be")

    def walk(index: int, prefix: str) -> Iterator[tuple[str, bytes]]:
        at = tree + index * entry_size
        flags = _u16(data, at + 4)
        if flags & _DIRECTORY:
            count, first = _u32(data, at + 6), _u32(data, at + 10)
            for child in range(first, first + count):
                yield from walk(child, f"{prefix}{name(child)}/")
            return
        blob = payload + _u32(data, at + 10)
        size = _u32(data, blob)
        body = data[blob + 4 : blob + 4 + size]
        if flags & _ZSTD:
            raise ValueError(f"{path}: {prefix.rstrip('/')} is zstd-compressed (not supported)")
        if flags & _ZLIB:
            body = zlib.decompress(body[4:])
        yield prefix.rstrip("/"), body

    yield from walk(0, "")
