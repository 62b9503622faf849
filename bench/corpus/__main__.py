"""``python bench/corpus [--list]``: build the real-photo corpus and print what it holds."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from corpus import build


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--list", action="store_true", help="print every file, one per line")
    args = parser.parse_args()
    files = build()
    if args.list:
        for f in files:
            print(f"{f.split:11} {f.cls:7} {f.content:12} {f.variant:13} {f.width}x{f.height} "
                  f"{f.format:4} {f.path}  {f.level}")
    pictures = Counter((f.cls, f.split) for f in files if f.variant == "library")
    damaged = Counter(f.split for f in files if f.damaged)
    for (cls, split), count in sorted(pictures.items()):
        print(f"{cls:8} {split:11} {count:3} pictures")
    for split, count in sorted(damaged.items()):
        print(f"damaged  {split:11} {count:3} copies of good photos")
    return 0


if __name__ == "__main__":
    sys.exit(main())
