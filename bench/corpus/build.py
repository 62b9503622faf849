"""Build the real-photo corpus: fetch the packages, cut out the pictures, make damaged copies.

For every row of ``manifest.csv``:

* the file **as shipped** (its own bytes, format and size), for "does a good photo land in
  High" on exactly what a user would upload;
* a **library rendition**: the file itself when its long side is at most 2560 px, else an
  area-downscaled copy at 2560 px (WordPress's ``big_image_size_threshold``: what a CMS keeps
  of a larger upload), saved in its own format family (JPEG quality 92, PNG, WebP quality 90);
* for good photos, one **damaged copy** per family of :mod:`corpus.damage`, made from the
  rendition and saved like it (the compression families save their own low-quality file).

Everything lands in ``.cache/corpus/`` at the repository root (ignored by git); a second run
reuses what is there. Damage levels are drawn from a generator seeded by (picture, family), so
every machine builds the same files.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from corpus.damage import FAMILIES, Damaged
from corpus.packages import PACKAGES, fetch_packages
from corpus.rcc import rcc_files

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "manifest.csv"
ROOT = HERE.parent.parent / ".cache" / "corpus"
#: Bump when renditions or damage change: files are rebuilt under a new folder.
RECIPE = 2
#: Long side of the library rendition (WordPress's big-image threshold).
LIBRARY_LONG_SIDE = 2560
#: Damage sizes are given in pixels of a screen this wide (see corpus.damage).
DISPLAY_LONG_SIDE = 1024
CLASSES = ("photo", "graphic", "flawed")
SPLITS = ("calibration", "heldout")


@dataclass(frozen=True, slots=True)
class Picture:
    """One row of the manifest: a picture inside a Debian package, with its class and split."""

    id: str
    cls: str
    content: str
    split: str
    package: str
    member: str
    note: str


@dataclass(frozen=True, slots=True)
class CorpusFile:
    """One file of the built corpus. ``damage`` is None for the shipped file and rendition."""

    id: str
    cls: str
    content: str
    split: str
    variant: str  # "shipped", "library" or the damage family's name
    level: str
    path: str
    width: int
    height: int
    format: str

    @property
    def damaged(self) -> bool:
        return self.variant not in ("shipped", "library")


def load_manifest(path: Path = MANIFEST) -> list[Picture]:
    with path.open(newline="") as fh:
        rows = [Picture(r["id"], r["class"], r["content"], r["split"], r["package"],
                        r["member"], r["note"]) for r in csv.DictReader(fh)]
    for row in rows:
        if row.cls not in CLASSES or row.split not in SPLITS or row.package not in PACKAGES:
            raise ValueError(f"manifest row {row.id}: class, split or package not known")
    if len({r.id for r in rows}) != len(rows):
        raise ValueError("manifest ids are not unique")
    return rows


def read_member(unpacked: Path, member: str) -> bytes:
    """The bytes of ``member``: a path in the unpacked package, or ``bundle.rcc!path``."""
    if "!" not in member:
        return (unpacked / member).read_bytes()
    bundle, inner = member.split("!", 1)
    for name, data in rcc_files(unpacked / bundle):
        if name == inner:
            return data
    raise FileNotFoundError(f"{inner} is not in {bundle}")


_FORMAT_SUFFIX = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
_SAVE = {"JPEG": {"quality": 92}, "PNG": {"compress_level": 1},
         "WEBP": {"quality": 90, "method": 4}}


def _rgb(data: bytes) -> tuple[np.ndarray, str]:
    with Image.open(io.BytesIO(data)) as im:
        fmt = im.format or "PNG"
        im = ImageOps.exif_transpose(im)
        if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
            flat = Image.new("RGB", im.size, (128, 128, 128))
            flat.paste(im.convert("RGBA"), mask=im.convert("RGBA").getchannel("A"))
            im = flat
        return np.asarray(im.convert("RGB")), fmt


def _encode(rgb: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=fmt, **_SAVE[fmt])
    return buffer.getvalue()


def _seed(picture_id: str, family: str) -> int:
    return int(hashlib.sha256(f"{picture_id}:{family}".encode()).hexdigest()[:12], 16)


def _build_one(picture: Picture, data: bytes, out: Path) -> list[CorpusFile]:
    """Write the shipped file, the rendition and (for photos) the damaged copies."""
    rgb, shipped_fmt = _rgb(data)
    fmt = shipped_fmt if shipped_fmt in _SAVE else "PNG"
    files: list[CorpusFile] = []

    def keep(variant: str, level: str, payload: bytes, file_fmt: str, shape: tuple[int, ...]
             ) -> None:
        path = out / f"{picture.id}__{variant}.{_FORMAT_SUFFIX.get(file_fmt, 'bin')}"
        path.write_bytes(payload)
        files.append(CorpusFile(picture.id, picture.cls, picture.content, picture.split, variant,
                                level, str(path), shape[1], shape[0], file_fmt))

    keep("shipped", "", data, shipped_fmt, rgb.shape)
    library = rgb
    if max(rgb.shape[:2]) > LIBRARY_LONG_SIDE:
        factor = LIBRARY_LONG_SIDE / max(rgb.shape[:2])
        size = (round(rgb.shape[1] * factor), round(rgb.shape[0] * factor))
        library = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        keep("library", f"downscaled to {size[0]}x{size[1]}", _encode(library, fmt), fmt,
             library.shape)
    else:
        keep("library", "as shipped", data, shipped_fmt, rgb.shape)
    if picture.cls != "photo":
        return files
    scale = max(1.0, max(library.shape[:2]) / DISPLAY_LONG_SIDE)
    for family, damage in FAMILIES.items():
        rng = np.random.default_rng(_seed(picture.id, family))
        done: Damaged = damage(library, rng, scale)
        if done.data is not None:
            with Image.open(io.BytesIO(done.data)) as im:
                shape = (im.height, im.width)
            keep(family, done.level, done.data, done.fmt, shape)
        else:
            assert done.pixels is not None
            keep(family, done.level, _encode(done.pixels, fmt), fmt, library.shape)
    return files


def _build_task(args: tuple[Picture, str, str]) -> list[dict[str, object]]:
    picture, unpacked, out = args
    data = read_member(Path(unpacked), picture.member)
    return [asdict(f) for f in _build_one(picture, data, Path(out))]


def build(root: Path = ROOT, workers: int | None = None, log: bool = True) -> list[CorpusFile]:
    """Fetch, unpack and build the whole corpus (cached); return every file of it."""
    pictures = load_manifest()
    folders = fetch_packages(root, sorted({p.package for p in pictures}))
    out = root / f"files-v{RECIPE}"
    index = out / "index.json"
    if index.exists():
        return [CorpusFile(**row) for row in json.loads(index.read_text())]
    out.mkdir(parents=True, exist_ok=True)
    tasks = [(p, str(folders[p.package]), str(out)) for p in pictures]
    rows: list[dict[str, object]] = []
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for done, result in enumerate(pool.map(_build_task, tasks), start=1):
            rows.extend(result)
            if log and done % 20 == 0:
                print(f"corpus: {done}/{len(tasks)} pictures built", flush=True)
    index.write_text(json.dumps(rows, indent=0))
    return [CorpusFile(**row) for row in rows]  # type: ignore[arg-type]
