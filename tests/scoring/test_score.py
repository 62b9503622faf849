"""The combined score: bands, ordering of damage, issues in words, the total's formula."""

from __future__ import annotations

import re

import numpy as np
import pytest

from pixelgrade import samples
from pixelgrade.scoring import Bands, ScoringConfig, score_bytes
from pixelgrade.scoring.combine import COMPONENTS
from pixelgrade.scoring.curves import curve
from pixelgrade.scoring.explain import ISSUE_COMPONENT, megapixels, share
from pixelgrade.scoring.subscores import GROUPS, SECONDARY_WEIGHT, overall_score


def test_bands_thresholds_and_validation() -> None:
    bands = Bands()
    assert [bands.band(s) for s in (100, 70, 69, 40, 39, 0, None)] == [
        "high", "high", "medium", "medium", "low", "low", None]
    custom = Bands(high_from=80, medium_from=50)
    assert custom.band(75) == "medium"
    with pytest.raises(ValueError, match="band thresholds"):
        Bands(high_from=40, medium_from=60)


def test_curve_interpolates_and_clamps() -> None:
    points = ((0.0, 0.0), (10.0, 100.0))
    assert curve(points, 5.0) == 50.0
    assert curve(points, -3.0) == 0.0
    assert curve(points, 30.0) == 100.0


def test_overall_score_is_led_by_the_worst_group() -> None:
    perfect: dict[str, float | None] = dict.fromkeys(COMPONENTS, 100.0)
    assert overall_score(perfect) == pytest.approx(100.0)
    # One defect decides alone.
    assert overall_score({**perfect, "sharpness": 50.0}) == pytest.approx(50.0)
    # Two components of one group (a dark picture is also flat): the worse counts.
    assert overall_score({**perfect, "exposure": 50.0, "contrast": 60.0}) == pytest.approx(50.0)
    # Two groups: the worse counts fully, the other by its square root.
    both = overall_score({**perfect, "sharpness": 50.0, "noise": 64.0})
    assert both == pytest.approx(50.0 * 0.64**SECONDARY_WEIGHT)
    assert overall_score({**perfect, "contrast": 0.0}) == 0.0
    assert overall_score({**perfect, "sharpness": None}) == pytest.approx(100.0)
    assert set().union(*GROUPS.values()) == set(COMPONENTS)


@pytest.mark.parametrize("photo", ["astronaut.png", "coffee.png", "motorcycle_left.png"])
def test_pristine_photos_are_high_with_no_issues(photo: str) -> None:
    report = score_bytes(samples.encode(samples.load_photo(photo)))
    assert report.status == "scored"
    assert report.band == "high", report.to_dict()
    assert report.issues == ()


@pytest.mark.parametrize(
    ("distortion", "code", "worst_band"),
    [
        ("gaussian_blur", "blurry", "low"),
        ("motion_blur", "blurry", "low"),
        ("gaussian_noise", "noisy", "low"),
        ("jpeg", "heavy_compression", "low"),
        ("webp", "heavy_compression", "low"),
        ("underexposure", "underexposed", "low"),
        # Blown highlights and flat tones are design in some graphics (a white page, a pale
        # wallpaper), so alone they make a picture Medium, not Low.
        ("overexposure", "overexposed", "medium"),
        ("contrast_loss", "low_contrast", "medium"),
        ("downscale", "low_resolution", "low"),
        ("upscaled_low_res", "blurry", "low"),
    ],
)
def test_each_damage_lowers_the_score_and_is_named(distortion: str, code: str,
                                                   worst_band: str) -> None:
    rgb = samples.load_photo("coffee.png")
    pristine = score_bytes(samples.encode(rgb)).score
    scores = [score_bytes(samples.DISTORTIONS[distortion](rgb, s)).score for s in (1, 3, 5)]
    assert pristine is not None and None not in scores
    assert pristine >= scores[0] > scores[1] >= scores[2], (pristine, scores)
    worst = score_bytes(samples.DISTORTIONS[distortion](rgb, 5))
    assert worst.band in ("low", worst_band)
    assert code in [issue.code for issue in worst.issues], worst.issues


def test_blank_image_is_nearly_blank_and_its_brightness_is_not_an_issue() -> None:
    report = score_bytes(samples.encode(np.full((600, 800, 3), 240, np.uint8)))
    assert report.score == 0
    assert [i.code for i in report.issues] == ["nearly_blank"]
    assert report.components["exposure"].score is None
    assert report.components["banding"].score is None


def test_a_heavily_compressed_jpeg_names_its_compression() -> None:
    """v1 called a JPEG saved at quality 5 'nearly blank' and left its compression out."""
    data = samples.encode(samples.load_photo("astronaut.png"), "JPEG", quality=5)
    report = score_bytes(data)
    assert "heavy_compression" in [i.code for i in report.issues]
    assert report.components["compression"].score < 10


def test_issues_summary_and_formula_agree_with_the_components() -> None:
    rgb = samples.load_photo("astronaut.png")
    report = score_bytes(samples.DISTORTIONS["gaussian_blur"](rgb, 3))
    assert report.issues[0].code == "blurry"
    assert report.summary is not None and report.summary.startswith("limited by sharpness (")
    assert f"({report.components['sharpness'].score})" in report.summary
    assert report.formula is not None and report.formula.endswith(f" {report.score}")
    for issue in report.issues:
        assert ISSUE_COMPONENT[issue.code] in COMPONENTS


def test_numbers_read_well() -> None:
    assert megapixels(64, 64) == "under 0.01 MP"
    assert megapixels(600, 400) == "0.24 MP"
    assert megapixels(1920, 1080) == "2.1 MP"
    assert megapixels(4000, 3000) == "12 MP"
    assert [share(v) for v in (0.25, 0.031, 0.003, 0.0004)] == ["25%", "3.1%", "0.3%", "0.04%"]
    report = score_bytes(samples.encode(samples.load_photo("astronaut.png")[:64, :64]))
    message = next(i.message for i in report.issues if i.code == "low_resolution")
    assert "64x64, under 0.01 MP" in message


def test_report_contract_and_determinism() -> None:
    data = samples.DISTORTIONS["gaussian_noise"](samples.load_photo("astronaut.png"), 2)
    first, second = score_bytes(data).to_dict(), score_bytes(data).to_dict()
    assert first == second
    assert set(first) >= {"score", "band", "status", "reason", "components", "issues", "summary",
                          "formula", "width", "height", "format", "bytes", "scorer_version"}
    assert first["scorer_version"] == "2"
    assert isinstance(first["score"], int) and 0 <= first["score"] <= 100
    assert list(first["components"]) == list(COMPONENTS)
    for component in first["components"].values():
        assert component["score"] is None or 0 <= component["score"] <= 100
        assert set(component) == {"score", "value", "unit", "weight"}
    assert first["bytes"] == len(data)
    assert (first["width"], first["height"], first["format"]) == (512, 512, "PNG")
    assert re.search(r"= \d+$", first["formula"])


def test_resolution_target_is_configurable() -> None:
    data = samples.encode(samples.load_photo("astronaut.png"))
    lenient = score_bytes(data, ScoringConfig(target_megapixels=0.25))
    strict = score_bytes(data, ScoringConfig(target_megapixels=12))
    assert lenient.components["resolution"].score == 100
    assert strict.components["resolution"].score < 70
    assert strict.score < lenient.score
