"""The combined score: bands, ordering of damage, issues in words, determinism."""

from __future__ import annotations

import pytest

from pixelgrade import samples
from pixelgrade.scoring import Bands, ScoringConfig, score_bytes
from pixelgrade.scoring.combine import WEIGHTS, curve, overall_score


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


def test_overall_score_is_a_weighted_geometric_product() -> None:
    perfect = {name: 100.0 for name in WEIGHTS}
    assert overall_score(perfect) == pytest.approx(100.0)
    half_sharp = dict(perfect, sharpness=50.0)
    assert overall_score(half_sharp) == pytest.approx(100 * 0.5 ** WEIGHTS["sharpness"])
    assert overall_score(dict(perfect, information=0.0)) == 0.0
    assert overall_score(dict(perfect, sharpness=None)) == pytest.approx(100.0)


@pytest.mark.parametrize("photo", ["astronaut.png", "coffee.png", "motorcycle_left.png"])
def test_pristine_photos_are_high_with_no_issues(photo: str) -> None:
    report = score_bytes(samples.encode(samples.load_photo(photo)))
    assert report.status == "scored"
    assert report.band == "high", report.to_dict()
    assert report.issues == ()


@pytest.mark.parametrize(
    ("distortion", "code"),
    [
        ("gaussian_blur", "blurry"),
        ("motion_blur", "blurry"),
        ("gaussian_noise", "noisy"),
        ("jpeg", "heavy_compression"),
        ("underexposure", "underexposed"),
        ("overexposure", "overexposed"),
        ("contrast_loss", "low_contrast"),
        ("downscale", "low_resolution"),
        ("upscaled_low_res", "blurry"),
    ],
)
def test_each_damage_lowers_the_score_and_is_named(distortion: str, code: str) -> None:
    rgb = samples.load_photo("coffee.png")
    pristine = score_bytes(samples.encode(rgb)).score
    scores = [score_bytes(samples.DISTORTIONS[distortion](rgb, s)).score for s in (1, 3, 5)]
    assert pristine is not None and None not in scores
    assert pristine >= scores[0] > scores[1] >= scores[2], (pristine, scores)
    worst = score_bytes(samples.DISTORTIONS[distortion](rgb, 5))
    assert worst.band == "low"
    assert code in [issue.code for issue in worst.issues], worst.issues
    message = next(i.message for i in worst.issues if i.code == code)
    assert message.startswith(code.replace("_", " ").split(" ")[0])


def test_blank_image_is_nearly_blank_only() -> None:
    import numpy as np

    report = score_bytes(samples.encode(np.full((300, 400, 3), 240, np.uint8)))
    assert report.score == 0
    assert [i.code for i in report.issues] == ["nearly_blank"]


def test_report_contract_and_determinism() -> None:
    data = samples.DISTORTIONS["gaussian_noise"](samples.load_photo("astronaut.png"), 2)
    first, second = score_bytes(data).to_dict(), score_bytes(data).to_dict()
    assert first == second
    assert set(first) >= {"score", "band", "status", "reason", "components", "issues", "width",
                          "height", "format", "bytes", "scorer_version"}
    assert isinstance(first["score"], int) and 0 <= first["score"] <= 100
    assert set(first["components"]) == set(WEIGHTS)
    for component in first["components"].values():
        assert component["score"] is None or 0 <= component["score"] <= 100
        assert set(component) == {"score", "value", "unit", "weight"}
    assert first["bytes"] == len(data)
    assert (first["width"], first["height"], first["format"]) == (512, 512, "PNG")


def test_resolution_target_is_configurable() -> None:
    data = samples.encode(samples.load_photo("astronaut.png"))
    lenient = score_bytes(data, ScoringConfig(target_megapixels=0.25))
    strict = score_bytes(data, ScoringConfig(target_megapixels=12))
    assert lenient.components["resolution"].score == 100
    assert strict.components["resolution"].score < 70
    assert strict.score < lenient.score
