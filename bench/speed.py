"""How fast is one image scored, and how much of that is decoding? Single process, one run.

For each test file: the median time of ``pixelgrade.scoring.score_bytes`` beside the median
time of the decode alone (``pixelgrade.scoring.decode``: the same sniffing, header checks,
shrink-on-load and grey conversion, no analysis), and, for scale, a plain full-size Pillow
decode to RGB, which is what a tool without shrink-on-load pays.

Test files are made here from the photos scikit-image ships: a mosaic of them resized to 12 MP
(4000 x 3000) or 2 MP (1732 x 1155) with light grain (sigma 2 levels, like a sensor at base ISO)
so the files have the entropy of real photos (an upscaled photo alone compresses too well and
decodes unrealistically fast). JPEG quality 85, WebP quality 80, PNG compression level 6.

When the real-photo corpus is built (``python bench/corpus``), the same columns are measured on
its camera JPEGs of 10 MP or more, as shipped: real sensor noise, real optics and real encoder
settings, where the mosaic above is itself an enlarged picture.

Targets: a 12 MP JPEG scores in under 40 ms on one core and in at most 1.5x its shrink-on-load
decode (issue 13, scorer version 2); every file in at most 1.5x its decode-only time (issue 2).

Usage::

    python bench/speed.py [--repeat 15] [--write docs/performance.md]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from corpus.build import RECIPE
from corpus.build import ROOT as CORPUS_ROOT
from docblock import write_block
from PIL import Image

from pixelgrade import __version__, samples
from pixelgrade.scoring import SCORER_VERSION, decode, score_bytes

CORPUS_INDEX = CORPUS_ROOT / f"files-v{RECIPE}" / "index.json"
REAL_PHOTO_MIN_PIXELS = 10_000_000
SIZES = {"12 MP": (4000, 3000), "2 MP": (1732, 1155)}
FORMATS = {"JPEG": {"quality": 85}, "WEBP": {"quality": 80, "method": 4},
           "PNG": {"compress_level": 6}}


def photo_mosaic(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A width x height RGB mosaic of the sample photos, with light sensor-like grain."""
    tiles = [samples.load_photo(name) for name in samples.PHOTOS]
    rows, cols = 2, 3
    tile_w, tile_h = width // cols + 1, height // rows + 1
    canvas = np.zeros((rows * tile_h, cols * tile_w, 3), np.uint8)
    for index in range(rows * cols):
        r, c = divmod(index, cols)
        tile = cv2.resize(tiles[index % len(tiles)], (tile_w, tile_h),
                          interpolation=cv2.INTER_CUBIC)
        canvas[r * tile_h:(r + 1) * tile_h, c * tile_w:(c + 1) * tile_w] = tile
    rng = np.random.default_rng(seed)
    grain = rng.normal(0.0, 2.0, (height, width, 3)).astype(np.float32)
    return np.clip(canvas[:height, :width].astype(np.float32) + grain, 0, 255).astype(np.uint8)


def full_decode(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as im:
        im.convert("RGB").load()


def median_ms(function: Callable[[bytes], object], data: bytes, repeat: int) -> float:
    """Median CPU time of ``function(data)``, in ms. CPU time of this process (one thread:
    OpenCV is limited to one), so that other work on a shared machine, which preempts the
    benchmark, does not count; wall time on a quiet machine is the same."""
    function(data)  # warm caches and lazy imports
    times = []
    for _ in range(repeat):
        started = time.process_time()
        function(data)
        times.append(time.process_time() - started)
    return 1000.0 * statistics.median(times)


def real_photos(index: Path = CORPUS_INDEX) -> list[tuple[str, bytes]]:
    """Shipped camera JPEGs of the corpus with at least ``REAL_PHOTO_MIN_PIXELS``; [] if the
    corpus is not built."""
    if not index.exists():
        return []
    found = []
    for row in json.loads(index.read_text()):
        if (row["variant"] == "shipped" and row["cls"] == "photo" and row["format"] == "JPEG"
                and row["width"] * row["height"] >= REAL_PHOTO_MIN_PIXELS):
            label = f"{row['id']} {row['width']}x{row['height']} JPEG"
            found.append((label, Path(row["path"]).read_bytes()))
    return sorted(found)


def time_row(label: str, data: bytes, repeat: int) -> tuple[str, float, float]:
    """One table row for ``data``, its score time and its score / decode-only ratio."""
    print(f"timing {label} ...", file=sys.stderr, flush=True)
    full = median_ms(full_decode, data, max(3, repeat // 3))
    decode_ms = median_ms(decode, data, repeat)
    score_ms = median_ms(score_bytes, data, repeat)
    row = (f"| {label} | {len(data):,} | {full:.1f} | {decode_ms:.1f} | "
           f"{score_ms:.1f} | {score_ms / decode_ms:.2f}x | {1000 / score_ms:.0f} |")
    return row, score_ms, score_ms / decode_ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=15, help="timed runs per file")
    parser.add_argument("--write", type=Path, help="also write the table into this Markdown file")
    args = parser.parse_args()
    cv2.setNumThreads(1)  # one core: OpenCV would otherwise spread resizes over every core

    rows = ["| file | bytes | full Pillow decode ms | pixelgrade decode-only ms | "
            "score_bytes ms | score / decode-only | images/s (one core) |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    ratios: dict[str, float] = {}
    jpeg_12mp_ms = float("nan")
    for size_name, (width, height) in SIZES.items():
        rgb = photo_mosaic(width, height)
        for fmt, params in FORMATS.items():
            label = f"{size_name} {fmt}"
            row, score_ms, ratios[label] = time_row(
                label, samples.encode(rgb, fmt, **params), args.repeat)
            rows.append(row)
            if label == "12 MP JPEG":
                jpeg_12mp_ms = score_ms
    real_ratios: list[float] = []
    for label, data in real_photos():
        row, _, ratio = time_row(label, data, args.repeat)
        rows.append(row)
        real_ratios.append(ratio)
    worst = max(ratios, key=ratios.__getitem__)
    jpeg_ratio = ratios["12 MP JPEG"]
    verdict = [
        f"- {'met' if jpeg_12mp_ms < 40 else 'MISSED'}: 12 MP JPEG scores in under 40 ms "
        f"({jpeg_12mp_ms:.1f} ms)",
        f"- {'met' if jpeg_ratio <= 1.5 else 'MISSED'}: 12 MP JPEG scores in at most 1.5x its "
        f"shrink-on-load decode ({jpeg_ratio:.2f}x)",
        f"- {'met' if ratios[worst] <= 1.5 else 'MISSED'}: score <= 1.5x decode-only on every "
        f"file (worst: {worst}, {ratios[worst]:.2f}x)",
    ]
    if real_ratios:
        verdict.append(
            f"- {'met' if max(real_ratios) <= 1.5 else 'MISSED'}: real camera JPEGs of 10 MP or "
            f"more score in at most 1.5x their decode ({len(real_ratios)} photos, "
            f"{min(real_ratios):.2f}x to {max(real_ratios):.2f}x)")
    else:
        verdict.append("- real camera JPEGs: not measured (build the corpus: "
                       "`python bench/corpus`)")
    header = (f"pixelgrade {__version__} (scorer version {SCORER_VERSION}), Python "
              f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores "
              f"(one used); medians of {args.repeat} runs, CPU time; "
              "command: `python bench/speed.py`")
    report = "\n".join([header, "", *rows, "", *verdict])
    print(report)
    if args.write:
        write_block(args.write, "speed", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
