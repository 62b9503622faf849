"""Explanations that are always right, checked over the whole real-photo corpus.

Every scored file of ``bench/corpus`` (the files as shipped, the library renditions and every
damaged copy: about 1,600 files) is scored, and every report is checked:

* each issue explains a component that lost points, in the words of its severity, quoting the
  very measurement the component reports (a sentence never contradicts its component);
* issues come in order of what they cost the total, and every component without which the
  picture would be in a better band is named, as is every one under 70;
* the summary names what limits the total in the same order, and the formula's result is the
  score;
* no sentence offers a share of "0%" as evidence.

The corpus is fetched from Debian's archive on first use (``apt-get download``, about 260 MB into
``.cache/corpus``) and reused afterwards. Without apt-get or the archive the test is skipped on
a laptop and FAILS in CI (``CI=true``).
"""

from __future__ import annotations

import itertools
import os
import re
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from pixelgrade.scoring import ScoringConfig, score_bytes
from pixelgrade.scoring.combine import COMPONENTS, ISSUE_BELOW
from pixelgrade.scoring.explain import FINE_FROM, ISSUE_COMPONENT, megapixels
from pixelgrade.scoring.subscores import overall_score

BENCH = Path(__file__).resolve().parents[2] / "bench"

#: Lead words allowed for an issue, by code and by tier of its component's sub-score.
LEAD = {
    "blurry": {"severe": ("blurry",), "visible": ("soft",), "slight": ("slightly soft",)},
    "pixelated": {tier: ("pixelated",) for tier in ("severe", "visible", "slight")},
    "noisy": {"severe": ("very noisy",), "visible": ("noisy",), "slight": ("slightly grainy",)},
    "underexposed": {"severe": ("badly underexposed",), "visible": ("underexposed",),
                     "slight": ("a little dark",)},
    "overexposed": {"severe": ("badly overexposed",), "visible": ("overexposed",),
                    "slight": ("a little bright",)},
    "low_contrast": {"severe": ("very flat", "washed out"), "visible": ("flat", "washed out"),
                     "slight": ("a little flat", "a little hazy")},
    "nearly_blank": {tier: ("nearly blank",) for tier in ("severe", "visible", "slight")},
    "low_resolution": {"severe": ("very low resolution",), "visible": ("low resolution",),
                       "slight": ("small",)},
    "enlarged": {tier: ("enlarged",) for tier in ("severe", "visible", "slight")},
    "heavy_compression": {"severe": ("heavy compression",), "visible": ("visible compression",),
                          "slight": ("mild compression",)},
    "impulse_noise": {tier: ("specks",) for tier in ("severe", "visible", "slight")},
    "banding": {tier: ("banding",) for tier in ("severe", "visible", "slight")},
}


def _tier(score: int) -> str:
    return "severe" if score < 40 else "visible" if score < 70 else "slight"


def _number(pattern: str, message: str) -> str | None:
    found = re.search(pattern, message)
    return found.group(1) if found else None


def _close(quoted: str | None, value: float, scale: float = 1.0) -> bool:
    """Whether ``quoted`` (as printed, maybe with a %) is ``value * scale`` rounded to the digits
    printed; the report's value itself is rounded to 4 decimals, hence the small slack."""
    if quoted is None:
        return False
    number = float(quoted.rstrip("%"))
    decimals = len(quoted.rstrip("%").partition(".")[2])
    return abs(number - value * scale) <= 0.5 * 10 ** -decimals + 1e-4 * scale + 1e-9


def _quotes_its_measurement(code: str, message: str, value: float,
                            report: dict[str, Any]) -> bool:
    """Whether the number the sentence quotes is the component's measurement."""
    if code == "blurry":
        return _close(_number(r"~([\d.]+) px", message), value)
    if code == "pixelated":
        return bool(re.search(r"block of about [\d.]+ x [\d.]+ pixels", message))
    if code == "noisy":
        return _close(_number(r"about (\d+) grey levels", message), value)
    if code in ("underexposed", "overexposed"):
        for pattern in (r"reaches only (\d+)% of white", r"pushed up to (\d+)% of white",
                        r"(\S+)% of the picture is (?:blown|crushed)"):
            if re.search(pattern, message):
                return _close(_number(pattern, message), value, 100)
        return False
    if code == "low_contrast":
        for pattern in (r"darkest tones are (\d+)% grey", r"fit in (\d+)% of the range"):
            if re.search(pattern, message):
                return _close(_number(pattern, message), value, 100)
        return False
    if code == "nearly_blank":
        return _close(_number(r"span (\d+) grey level", message), value, 255)
    if code == "low_resolution":
        size = f"{report['width']}x{report['height']}"
        return size in message and megapixels(report["width"], report["height"]) in message
    if code == "enlarged":
        found = re.search(r"detail of about (\d+)x(\d+)", message)
        if found is None:
            return False
        w, h = (int(v) for v in found.groups())
        return abs(w * h / 1e6 - value) <= 0.01 + 0.02 * value
    if code == "heavy_compression":
        if "blockiness" in message:
            return _close(_number(r"blockiness ([\d.]+)", message), value)
        return _close(_number(r"quality ~(\d+)", message), value)
    if code == "impulse_noise":
        return _close(_number(r"(\S+)% of the pixels", message), value, 100)
    if code == "banding":
        return _close(_number(r"histogram comb ([\d.]+)", message), value)
    return False


def problems_of(name: str, report: dict[str, Any]) -> Iterator[str]:
    """Every way the report's words disagree with its numbers."""
    if report["status"] != "scored":
        return
    components = report["components"]
    sub = {k: None if c["score"] is None else float(c["score"]) for k, c in components.items()}
    total = report["score"]
    bands = ScoringConfig().bands
    if list(components) != list(COMPONENTS):
        yield f"{name}: components {list(components)}"
    if abs(round(overall_score(sub)) - total) > 0:
        yield f"{name}: total {total} is not the formula of its sub-scores ({overall_score(sub)})"
    if report["formula"] is None or not report["formula"].endswith(f" {total}"):
        yield f"{name}: formula {report['formula']!r} does not end with the score {total}"
    costs = {k: overall_score({**sub, k: 100.0}) - overall_score(sub)
             for k, v in sub.items() if v is not None and v < 100}
    named = [ISSUE_COMPONENT.get(issue["code"]) for issue in report["issues"]]
    for issue in report["issues"]:
        code, message = issue["code"], issue["message"]
        component = ISSUE_COMPONENT.get(code)
        if component is None:
            yield f"{name}: unknown issue code {code}"
            continue
        c = components[component]
        if c["score"] is None or c["score"] >= 100:
            yield f"{name}: {code} names {component}, which scored {c['score']}"
            continue
        if not message.startswith(tuple(w + ":" for w in LEAD[code][_tier(c["score"])])):
            yield f"{name}: {code} reads {message!r} for a {component} of {c['score']}"
        if not _quotes_its_measurement(code, message, c["value"], report):
            yield f"{name}: {message!r} does not quote {component}'s {c['value']} {c['unit']}"
        if re.search(r"(?<![\d.])0(\.0+)?% of", message):
            yield f"{name}: {message!r} offers 0% as evidence"
    ordered = [costs.get(component, 0.0) for component in named if component]
    if any(a < b - 1e-9 for a, b in itertools.pairwise(ordered)):
        yield f"{name}: issues not in order of cost {named} {ordered}"
    for component, cost in costs.items():
        changes_band = bands.band(round(overall_score(sub) + cost)) != bands.band(total)
        if (changes_band or (sub[component] or 0) < ISSUE_BELOW) and component not in named:
            yield f"{name}: {component} ({sub[component]}) limits the score but is not named"
    limiting = [k for k in sorted(costs, key=lambda k: -costs[k]) if (sub[k] or 0) < FINE_FROM]
    expected = [f"{k} ({components[k]['score']})" for k in limiting][:3]
    summary = report["summary"] or ""
    if [part for part in expected if part not in summary] or (expected and summary.find(
            expected[0]) > min(summary.find(p) for p in expected)):
        yield f"{name}: summary {summary!r}, expected {expected}"


def _score(path: str) -> tuple[str, dict[str, Any]]:
    return path, score_bytes(Path(path).read_bytes()).to_dict()


@pytest.fixture(scope="module")
def corpus_reports() -> list[tuple[str, dict[str, Any]]]:
    sys.path.insert(0, str(BENCH))
    try:
        from corpus import build
        from corpus.packages import FetchError
        try:
            files = build(log=False)
        except (FetchError, OSError) as exc:
            message = f"the real-photo corpus could not be built: {exc}"
            if os.environ.get("CI") == "true":
                pytest.fail(message, pytrace=False)
            pytest.skip(message)
    finally:
        sys.path.remove(str(BENCH))
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(_score, [f.path for f in files], chunksize=8))


def test_every_explanation_over_the_corpus_agrees_with_its_component(
        corpus_reports: list[tuple[str, dict[str, Any]]]) -> None:
    scored = [(Path(p).name, r) for p, r in corpus_reports if r["status"] == "scored"]
    assert len(scored) > 1500
    assert sum(len(r["issues"]) for _, r in scored) > 1000  # the check has work to do
    problems = [p for name, report in scored for p in problems_of(name, report)]
    assert not problems, f"{len(problems)} problems, first 20:\n" + "\n".join(problems[:20])


def test_the_checker_catches_a_contradiction() -> None:
    """The check above must be able to fail: a report whose sentence quotes another number."""
    report = score_bytes((BENCH.parent / "src" / "pixelgrade" / "__init__.py").read_bytes())
    assert report.status == "failed"  # not an image: nothing to check
    from pixelgrade import samples

    good = score_bytes(samples.DISTORTIONS["gaussian_noise"](samples.load_photo("coffee.png"),
                                                              4)).to_dict()
    assert not list(problems_of("noisy", good))
    first = good["issues"][0]
    wrong = {**good, "issues": [{**first, "message": first["message"].replace("about", "~99 +")}]}
    assert list(problems_of("noisy", wrong))
    silent = {**good, "issues": []}
    assert any("not named" in p for p in problems_of("noisy", silent))
