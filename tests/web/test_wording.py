"""The image page's wording of what the scorer wrote."""

from __future__ import annotations

from pixelgrade.web.wording import formula_parts, limiting_parts, sentence


def test_formula_sets_the_sum_apart() -> None:
    words, arithmetic = formula_parts(
        "each group counts its worst sub-score; the worst group (tone: exposure 39) counts "
        "fully, each other group by the square root (detail: resolution 67): 39 x 0.67^0.5 = 32")
    assert words.endswith("(detail: resolution 67)")
    assert arithmetic == "39 × 0.67^0.5 = 32"
    no_sum = "each group counts its worst sub-score; ... counts fully, the others are perfect: 0"
    assert formula_parts(no_sum) == (no_sum, None)
    assert formula_parts("nothing could be judged: total 100") == (
        "nothing could be judged: total 100", None)


def test_limits_and_sentences() -> None:
    assert limiting_parts("limited by exposure (39) and contrast (46)") == (
        "exposure (39) and contrast (46)")
    assert limiting_parts("something else") == "something else"
    assert sentence("exposure (39)") == "Exposure (39)."
    assert sentence("JPEG quality 10.") == "JPEG quality 10."
    assert sentence("") == ""
