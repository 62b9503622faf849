"""Does the score fall as the damage grows? pixelgrade beside no-reference peers, one run.

Corpus: every photo of :data:`pixelgrade.samples.PHOTOS` (real photographs that scikit-image
ships), untouched (severity 0, lossless PNG) and degraded by each distortion of
:data:`pixelgrade.samples.DISTORTIONS` at severities 1-5.

Per distortion type, three figures for each scorer:

* **SRCC**: Spearman rank correlation between severity (0-5) and score within one photo, sign
  flipped so 1.0 means the score falls strictly as the damage grows; the mean over photos.
  (Within a photo, because comparing a damaged cat with a pristine brick wall says little.)
* **pairwise**: the share of (photo, severity >= 3) where score(original) > score(damaged).
* over all types, **pristine in High**: the share of untouched photos scoring >= 70.

Peers (run on the same bytes in the same run):

* ``brisque`` 0.2.0 (PyPI): BRISQUE (Mittal, Moorthy, Bovik 2012, doi:10.1109/TIP.2012.2214050)
  with the LIVE-trained SVR model the package ships. Lower is better; it is shown as
  ``100 - BRISQUE`` so that higher is better for every column, and "High" is that >= 70.
* ``image-quality-ai`` 0.1.0 (PyPI): a 0-100 score from Laplacian sharpness, exposure,
  contrast, noise and framing.

Tried and not usable offline: ``piq`` and ``pyiqa`` download weights at first use.

**Calibration vs held out.** pixelgrade's curve knees were set on this same corpus, so the
main table is a training-set figure. The *held-out* table uses distortions implemented
differently from anything the curves were fitted on (a defocus disk instead of a Gaussian,
photon shot noise instead of additive Gaussian noise, JPEGs with non-IJG quantization tables,
a gamma curve instead of an exposure change, blur and noise together) on the same photos.

Usage::

    python bench/validity.py                     # print the tables
    python bench/validity.py --write docs/validity.md
    python bench/validity.py --no-peers          # pixelgrade only (seconds, not minutes)
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from docblock import write_block
from PIL import Image
from scipy.stats import spearmanr

from pixelgrade import __version__, samples
from pixelgrade.scoring import SCORER_VERSION, score_bytes

CACHE = Path(__file__).parent / ".cache"
HIGH_FROM = 70

Item = tuple[str, str, int]  # photo, distortion ("none" for the original), severity


def defocus_blur(rgb: np.ndarray, severity: int) -> bytes:
    import cv2

    radius = (1.5, 2.5, 4.0, 6.0, 9.0)[severity - 1]
    size = 2 * int(np.ceil(radius)) + 1
    yy, xx = np.mgrid[:size, :size] - size // 2
    disk = (xx**2 + yy**2 <= radius**2).astype(np.float32)
    return samples.encode(cv2.filter2D(rgb, -1, disk / disk.sum(),
                                       borderType=cv2.BORDER_REFLECT))


def shot_noise(rgb: np.ndarray, severity: int) -> bytes:
    photons = (200.0, 60.0, 25.0, 10.0, 4.0)[severity - 1]  # photons at full scale / 255
    rng = np.random.default_rng(99 + severity)
    noisy = rng.poisson(rgb.astype(np.float64) * photons / 16.0) * 16.0 / photons
    return samples.encode(np.clip(np.round(noisy), 0, 255).astype(np.uint8))


def flat_table_jpeg(rgb: np.ndarray, severity: int) -> bytes:
    """JPEG with a flat (non-IJG) quantization table, as some cameras and tools write."""
    step = (8, 16, 30, 50, 80)[severity - 1]
    return samples.encode(rgb, "JPEG", qtables=[[step] * 64, [min(255, 2 * step)] * 64])


def gamma_darkening(rgb: np.ndarray, severity: int) -> bytes:
    gamma = (1.4, 2.0, 2.8, 3.8, 5.0)[severity - 1]
    out = 255.0 * (rgb.astype(np.float32) / 255.0) ** gamma
    return samples.encode(np.round(out).astype(np.uint8))


def blur_and_noise(rgb: np.ndarray, severity: int) -> bytes:
    import cv2

    sigma = (0.7, 1.2, 2.0, 3.0, 4.5)[severity - 1]
    noise = (3.0, 6.0, 10.0, 15.0, 22.0)[severity - 1]
    rng = np.random.default_rng(7 + severity)
    blurred = cv2.GaussianBlur(rgb, (0, 0), sigma).astype(np.float32)
    noisy = blurred + rng.normal(0.0, noise, rgb.shape).astype(np.float32)
    return samples.encode(np.clip(np.round(noisy), 0, 255).astype(np.uint8))


HELD_OUT = {
    "defocus_blur": defocus_blur,
    "shot_noise": shot_noise,
    "flat_table_jpeg": flat_table_jpeg,
    "gamma_darkening": gamma_darkening,
    "blur_and_noise": blur_and_noise,
}


def corpus(distortions: dict[str, Callable[[np.ndarray, int], bytes]]) -> dict[Item, bytes]:
    """Encoded bytes of every (photo, distortion, severity), originals under ("none", 0)."""
    items: dict[Item, bytes] = {}
    for photo in samples.PHOTOS:
        rgb = samples.load_photo(photo)
        items[(photo, "none", 0)] = samples.encode(rgb)
        for name, distort in distortions.items():
            for severity in samples.SEVERITIES:
                items[(photo, name, severity)] = distort(rgb, severity)
    return items


# --- scorers: bytes -> higher-is-better number -------------------------------------------


def pixelgrade_score(data: bytes) -> float:
    report = score_bytes(data)
    return float("nan") if report.score is None else float(report.score)


def _rgb(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def brisque_score(data: bytes) -> float:
    """100 - BRISQUE. The package's own ``score()`` fails on NumPy >= 2.4 because each feature
    comes back as a 1-element array; its steps are called here with the features flattened."""
    from brisque import BRISQUE

    model = _BRISQUE_MODEL.get("model")
    if model is None:
        model = _BRISQUE_MODEL["model"] = BRISQUE(url=False)
    import cv2
    import skimage.color

    grey = skimage.color.rgb2gray(_rgb(data))
    features = model.calculate_brisque_features(grey, kernel_size=7, sigma=7 / 6)
    half = cv2.resize(grey, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_CUBIC)
    half_features = model.calculate_brisque_features(half, kernel_size=7, sigma=7 / 6)
    flat = np.array([np.asarray(f, dtype=np.float64).ravel()[0]
                     for f in (*features, *half_features)])
    return 100.0 - float(model.calculate_image_quality_score(flat))


_BRISQUE_MODEL: dict[str, object] = {}


def image_quality_ai_score(data: bytes) -> float:
    import image_quality_ai

    with Image.open(io.BytesIO(data)) as im:
        return float(image_quality_ai.assess(im.convert("RGB")).score)


SCORERS: dict[str, Callable[[bytes], float]] = {
    "pixelgrade": pixelgrade_score,
    "BRISQUE": brisque_score,
    "image-quality-ai": image_quality_ai_score,
}


def _run(scorer: str, data: bytes) -> float:
    return SCORERS[scorer](data)


def score_all(scorer: str, items: dict[Item, bytes], workers: int,
              cache: bool) -> tuple[dict[Item, float], float]:
    """Scores of every item (peers are cached by content hash: BRISQUE takes minutes)."""
    cache_file = CACHE / f"{scorer}.json"
    known: dict[str, float] = {}
    if cache and cache_file.exists():
        known = json.loads(cache_file.read_text())
    keys = {item: hashlib.sha256(data).hexdigest()[:24] for item, data in items.items()}
    todo = [item for item in items if keys[item] not in known]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = pool.map(_run, [scorer] * len(todo), [items[i] for i in todo], chunksize=4)
        for item, value in zip(todo, results, strict=True):
            known[keys[item]] = value
    elapsed = time.perf_counter() - started
    if cache:
        CACHE.mkdir(exist_ok=True)
        cache_file.write_text(json.dumps(known))
    return {item: known[keys[item]] for item in items}, elapsed


# --- figures ------------------------------------------------------------------------------


def srcc(scores: dict[Item, float], photo: str, distortion: str) -> float:
    severities = [0, *samples.SEVERITIES]
    values = [scores[(photo, "none", 0)]] + [scores[(photo, distortion, s)]
                                             for s in samples.SEVERITIES]
    if len(set(values)) == 1 or any(np.isnan(values)):
        return 0.0  # a score that does not move (or fails) says nothing about the damage
    return float(-spearmanr(severities, values).statistic)


def figures(scores: dict[Item, float], distortions: list[str]) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    for distortion in distortions:
        per_photo = [srcc(scores, photo, distortion) for photo in samples.PHOTOS]
        wins = [scores[(photo, "none", 0)] > scores[(photo, distortion, s)]
                for photo in samples.PHOTOS for s in samples.SEVERITIES if s >= 3]
        table[distortion] = {"srcc": float(np.mean(per_photo)), "min_photo": min(per_photo),
                             "pairwise": float(np.mean(wins))}
    pristine = [scores[(photo, "none", 0)] for photo in samples.PHOTOS]
    table["_all"] = {
        "srcc": float(np.mean([table[d]["srcc"] for d in distortions])),
        "min_type": min(table[d]["srcc"] for d in distortions),
        "pairwise": float(np.mean([table[d]["pairwise"] for d in distortions])),
        "pristine_high": float(np.mean([value >= HIGH_FROM for value in pristine])),
    }
    return table


def quality_tables(results: dict[str, dict[str, dict[str, float]]],
                   distortions: list[str]) -> list[str]:
    """SRCC and pairwise tables (Markdown) for ``distortions``, one column per scorer."""
    names = list(results)
    head = ["| distortion | " + " | ".join(names) + " |",
            "| --- | " + " | ".join("---:" for _ in names) + " |"]
    lines = ["SRCC (mean over photos; 1.0 = the score falls strictly with every step of damage):",
             "", *head]
    for distortion in distortions:
        cells = [f"{results[n][distortion]['srcc']:.3f}" for n in names]
        lines.append(f"| {distortion} | " + " | ".join(cells) + " |")
    lines += [
        "| **mean** | " + " | ".join(f"**{results[n]['_all']['srcc']:.3f}**" for n in names)
        + " |",
        "| worst type | " + " | ".join(f"{results[n]['_all']['min_type']:.3f}" for n in names)
        + " |",
        "",
        "Pairwise accuracy: score(original) > score(same photo at severity >= 3):",
        "",
        *head,
    ]
    for distortion in distortions:
        cells = [f"{results[n][distortion]['pairwise']:.1%}" for n in names]
        lines.append(f"| {distortion} | " + " | ".join(cells) + " |")
    lines.append("| **all** | " + " | ".join(
        f"**{results[n]['_all']['pairwise']:.1%}**" for n in names) + " |")
    return lines


def per_photo_table(scores: dict[Item, float], distortions: list[str]) -> list[str]:
    lines = ["| photo | original | " + " | ".join(distortions) + " |",
             "| --- | ---: | " + " | ".join("---" for _ in distortions) + " |"]
    for photo in samples.PHOTOS:
        cells = [" ".join(f"{scores[(photo, d, s)]:.0f}" for s in samples.SEVERITIES)
                 for d in distortions]
        lines.append(f"| {photo} | {scores[(photo, 'none', 0)]:.0f} | " + " | ".join(cells)
                     + " |")
    return lines


def targets(table: dict[str, dict[str, float]], peers: list[dict[str, dict[str, float]]]
            ) -> list[str]:
    summary = table["_all"]
    checks = [
        ("mean SRCC >= 0.95", summary["srcc"] >= 0.95),
        ("every type SRCC >= 0.85", summary["min_type"] >= 0.85),
        ("pairwise >= 0.98", summary["pairwise"] >= 0.98),
        ("pristine in High >= 90%", summary["pristine_high"] >= 0.90),
    ]
    if peers:
        checks.append(("mean SRCC ahead of every peer",
                       all(summary["srcc"] > p["_all"]["srcc"] for p in peers)))
    return [f"- {'met' if ok else 'MISSED'}: {label}" for label, ok in checks]


def evaluate(distortions: dict[str, Callable[[np.ndarray, int], bytes]], scorers: list[str],
             workers: int, use_cache: bool
             ) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, float],
                        dict[str, dict[Item, float]], int]:
    items = corpus(distortions)
    results: dict[str, dict[str, dict[str, float]]] = {}
    timings: dict[str, float] = {}
    all_scores: dict[str, dict[Item, float]] = {}
    for scorer in scorers:
        print(f"scoring {len(items)} images with {scorer} ...", file=sys.stderr, flush=True)
        scores, elapsed = score_all(scorer, items, workers,
                                    cache=scorer != "pixelgrade" and use_cache)
        all_scores[scorer] = scores
        results[scorer] = figures(scores, list(distortions))
        timings[scorer] = elapsed
    return results, timings, all_scores, len(items)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-peers", action="store_true", help="score with pixelgrade only")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-cache", action="store_true", help="re-score the peers too")
    parser.add_argument("--write", type=Path, help="also write the report (Markdown) here")
    args = parser.parse_args()

    scorers = ["pixelgrade"] if args.no_peers else list(SCORERS)
    results, timings, scores, count = evaluate(samples.DISTORTIONS, scorers, args.workers,
                                               not args.no_cache)
    held_results, _, held_scores, held_count = evaluate(HELD_OUT, scorers, args.workers,
                                                        not args.no_cache)
    names = list(results)
    lines = [
        f"pixelgrade {__version__} (scorer version {SCORER_VERSION}), "
        f"Python {platform.python_version()}, {os.cpu_count()} cores; "
        f"command: `python bench/validity.py{' --no-peers' if args.no_peers else ''}`",
        "",
        "### Calibration corpus",
        "",
        f"{len(samples.PHOTOS)} photos x {len(samples.DISTORTIONS)} distortions x "
        f"{len(samples.SEVERITIES)} severities + originals = {count} images.",
        "",
        *quality_tables(results, list(samples.DISTORTIONS)),
        "",
        f"Originals in High (>= {HIGH_FROM}; peers: their higher-is-better number "
        f">= {HIGH_FROM}), and time to score the corpus:",
        "",
        "| | " + " | ".join(names) + " |",
        "| --- | " + " | ".join("---:" for _ in names) + " |",
        "| pristine in High | " + " | ".join(
            f"{results[n]['_all']['pristine_high']:.0%}" for n in names) + " |",
        "| seconds (this run, all cores) | " + " | ".join(
            f"{timings[n]:.1f}" if timings[n] > 0.05 else "cached" for n in names) + " |",
        "",
        "Targets (pixelgrade, calibration corpus):",
        "",
        *targets(results["pixelgrade"], [results[s] for s in scorers[1:]]),
        "",
        "### Held-out distortions",
        "",
        f"Distortions the curves were not fitted on, same photos: {held_count} images.",
        "",
        *quality_tables(held_results, list(HELD_OUT)),
        "",
        "Targets (pixelgrade, held out):",
        "",
        *targets(held_results["pixelgrade"], [held_results[s] for s in scorers[1:]])[:3],
        "",
        "### pixelgrade's scores, photo by photo",
        "",
        "Original, then each distortion at severities 1-5.",
        "",
        *per_photo_table(scores["pixelgrade"], list(samples.DISTORTIONS)),
        "",
        *per_photo_table(held_scores["pixelgrade"], list(HELD_OUT)),
    ]
    report = "\n".join(lines)
    print(report)
    if args.write:
        write_block(args.write, "validity", report)
        print(f"\nwritten to {args.write}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
