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

Peers (run on the same bytes in the same run; :mod:`peers.quality`): PIQE, BRISQUE and
``image-quality-ai``, each shown so that higher is better. Tried and not usable offline:
``piq`` and ``pyiqa`` download weights at first use.

**Across pictures** (:mod:`crosspicture`), on the real-photo corpus (:mod:`corpus`: good
photos, clean graphics and authentically flawed photos from Debian packages, and damaged copies
of the good photos), for its calibration half and its held-out half: good photos in High,
graphics not Low, damaged copies not High, and the cross-picture AUC, with the same peers.

**Calibration vs held out.** pixelgrade's curve knees were set on this same corpus, so the
main table is a training-set figure. The *held-out* table uses distortions implemented
differently from anything the curves were fitted on (a defocus disk instead of a Gaussian,
photon shot noise instead of additive Gaussian noise, JPEGs with non-IJG quantization tables,
a gamma curve instead of an exposure change, blur and noise together) on the same photos.

Usage::

    python bench/validity.py                     # print the tables
    python bench/validity.py --write docs/validity.md
    python bench/validity.py --no-peers          # pixelgrade only (a minute, not an hour)

The peers' scores are cached in ``bench/.cache/`` by content hash (the first run with peers
takes about an hour on two cores: BRISQUE and PIQE need seconds per 4 MP image).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TypeVar

import crosspicture
import numpy as np
from corpus import SPLITS, CorpusFile, build
from docblock import write_block
from peers.quality import PEERS
from scipy.stats import spearmanr

from pixelgrade import __version__, samples
from pixelgrade.scoring import SCORER_VERSION, score_bytes

CACHE = Path(__file__).parent / ".cache"
HIGH_FROM = 70

Item = tuple[str, str, int]  # photo, distortion ("none" for the original), severity
K = TypeVar("K")


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


def sample_corpus(distortions: dict[str, Callable[[np.ndarray, int], bytes]]) -> dict[Item, bytes]:
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


SCORERS: dict[str, Callable[[bytes], float]] = {"pixelgrade": pixelgrade_score, **PEERS}

Source = bytes | Path  # image bytes, or a file to read them from (the corpus is ~1 GB)


def _read(source: Source) -> bytes:
    return source if isinstance(source, bytes) else source.read_bytes()


def _run(scorer: str, source: Source) -> float:
    try:
        return SCORERS[scorer](_read(source))
    except Exception as exc:  # a peer that cannot score one file must not stop the run
        print(f"{scorer} failed on {source if isinstance(source, Path) else 'bytes'}: {exc}",
              file=sys.stderr)
        return float("nan")


def score_all(scorer: str, items: Mapping[K, Source], workers: int,
              cache: bool) -> tuple[dict[K, float], float]:
    """Scores of every item; peers are cached by content hash (BRISQUE and PIQE take seconds
    per image), saved every few hundred images so an interrupted first run keeps its work."""
    cache_file = CACHE / f"{scorer}.json"
    known: dict[str, float] = {}
    if cache and cache_file.exists():
        known = json.loads(cache_file.read_text())
    keys = {item: hashlib.sha256(_read(source)).hexdigest()[:24]
            for item, source in items.items()}
    todo = list(dict.fromkeys(keys[item] for item in items if keys[item] not in known))
    first = {}
    for item, key in keys.items():
        first.setdefault(key, items[item])
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = pool.map(_run, [scorer] * len(todo), [first[k] for k in todo], chunksize=2)
        for done, (key, value) in enumerate(zip(todo, results, strict=True), start=1):
            known[key] = value
            if cache and done % 200 == 0:
                _save(cache_file, known)
                print(f"  {scorer}: {done}/{len(todo)}", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - started
    if cache:
        _save(cache_file, known)
    return {item: known[keys[item]] for item in items}, elapsed


def _save(cache_file: Path, known: dict[str, float]) -> None:
    CACHE.mkdir(exist_ok=True)
    cache_file.write_text(json.dumps(known))


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
    items = sample_corpus(distortions)
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


def _explain(path: str) -> tuple[float, str]:
    """pixelgrade's score of one corpus file and what it says limits it (for the miss list)."""
    report = score_bytes(Path(path).read_bytes())
    if report.score is None:
        return float("nan"), f"{report.status}: {report.reason}"
    return float(report.score), "; ".join(issue.message for issue in report.issues[:2])


def evaluate_corpus(files: list[CorpusFile], scorers: list[str], workers: int, use_cache: bool
                    ) -> tuple[dict[str, dict[str, float]], dict[str, str], dict[str, float]]:
    """Scores of every corpus file by every scorer (peers: the library files and damaged
    copies; pixelgrade: those and the files as shipped), pixelgrade's explanations, timings."""
    shared = [f for f in files if f.variant != "shipped"]
    scores: dict[str, dict[str, float]] = {}
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        explained = dict(zip([f.path for f in files],
                             pool.map(_explain, [f.path for f in files], chunksize=4),
                             strict=True))
    timings["pixelgrade"] = time.perf_counter() - started
    scores["pixelgrade"] = {path: value for path, (value, _) in explained.items()}
    issues = {path: text for path, (_, text) in explained.items()}
    for scorer in scorers:
        if scorer == "pixelgrade":
            continue
        print(f"scoring {len(shared)} corpus files with {scorer} ...", file=sys.stderr,
              flush=True)
        values, timings[scorer] = score_all(scorer, {f.path: Path(f.path) for f in shared},
                                            workers, cache=use_cache)
        scores[scorer] = values
    return scores, issues, timings


def corpus_report(files: list[CorpusFile], scores: dict[str, dict[str, float]],
                  issues: dict[str, str], timings: dict[str, float]) -> list[str]:
    names = list(scores)
    results = {n: {s: crosspicture.figures(scores[n], files, s) for s in SPLITS} for n in names}
    shipped = {s: crosspicture.figures(scores["pixelgrade"], files, s, variant="shipped")
               for s in SPLITS}
    per_family = {n: {s: crosspicture.by_family(scores[n], files, s) for s in SPLITS}
                  for n in names}
    counts = results["pixelgrade"]
    lines = [
        "### Across pictures: the real-photo corpus",
        "",
        "Pictures (calibration / held out): "
        + ", ".join(f"{counts['calibration'][k]} / {counts['heldout'][k]} {label}"
                    for k, label in (("photos", "good photos"), ("graphics", "graphics"),
                                     ("flawed", "flawed photos"),
                                     ("damaged", "damaged copies"))) + ".",
        "",
        *crosspicture.summary_table(results),
        "",
        "The same for pixelgrade on the files as shipped (their own size and format, up to "
        "6028 px): good photos in High "
        + " / ".join(f"{shipped[s]['good_high']:.1%}" for s in SPLITS)
        + ", clean graphics not Low "
        + " / ".join(f"{shipped[s]['graphics_not_low']:.1%}" for s in SPLITS)
        + ", flawed photos not High "
        + " / ".join(f"{shipped[s]['flawed_not_high']:.1%}" for s in SPLITS)
        + " (calibration / held out).",
        "",
        "Seconds to score the corpus (this run, all cores; peers cached by content hash): "
        + ", ".join(f"{n} {timings[n]:.0f}" if timings[n] > 0.5 else f"{n} cached"
                    for n in names) + ".",
        "",
        "Targets (pixelgrade, held-out half):",
        "",
        *crosspicture.targets(results["pixelgrade"]["heldout"],
                              [results[n]["heldout"] for n in names[1:]]),
        "",
        "Calibration half, for comparison (a training figure):",
        "",
        *crosspicture.targets(results["pixelgrade"]["calibration"],
                              [results[n]["calibration"] for n in names[1:]]),
        "",
    ]
    for split in SPLITS:
        lines += [f"Damaged copies not in High, by family ({split}):", "",
                  *crosspicture.family_table(per_family, split), ""]
    for split in SPLITS:
        content = crosspicture.by_content(scores["pixelgrade"], files, split)
        lines += [f"pixelgrade, good photos in High by content ({split}): "
                  + ", ".join(f"{k} {v}" for k, v in content.items()) + ".", ""]
    for split in SPLITS:
        wrong = crosspicture.misses(scores["pixelgrade"], files, split, issues)
        lines += [f"pixelgrade's misses ({split}, {len(wrong)}):", "", *wrong, ""]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-peers", action="store_true", help="score with pixelgrade only")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-cache", action="store_true", help="re-score the peers too")
    parser.add_argument("--write", type=Path, help="also write the report (Markdown) here")
    parser.add_argument("--corpus-only", action="store_true",
                        help="only the cross-picture tables (the real-photo corpus)")
    args = parser.parse_args()

    scorers = ["pixelgrade"] if args.no_peers else list(SCORERS)
    files = build()
    corpus_scores, corpus_issues, corpus_timings = evaluate_corpus(
        files, scorers, args.workers, not args.no_cache)
    corpus_lines = corpus_report(files, corpus_scores, corpus_issues, corpus_timings)
    if args.corpus_only:
        print("\n".join(corpus_lines))
        return 0
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
        *corpus_lines,
        "### Per image: the sample photos, graded damage",
        "",
        "#### Calibration corpus",
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
        "#### Held-out distortions",
        "",
        f"Distortions the curves were not fitted on, same photos: {held_count} images.",
        "",
        *quality_tables(held_results, list(HELD_OUT)),
        "",
        "Targets (pixelgrade, held out):",
        "",
        *targets(held_results["pixelgrade"], [held_results[s] for s in scorers[1:]])[:3],
        "",
        "#### pixelgrade's scores, photo by photo",
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
