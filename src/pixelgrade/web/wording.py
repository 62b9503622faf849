"""How the image page words what the scorer wrote (template filters)."""

from __future__ import annotations


def formula_parts(formula: str) -> tuple[str, str | None]:
    """The scorer's formula as (the sentence, the arithmetic): "each group counts its worst
    sub-score; ...: 39 x 0.67^0.5 = 32" -> ("each group counts ...", "39 × 0.67^0.5 = 32"),
    so the page can set the sum on a line of its own. (formula, None) when there is no sum."""
    words, colon, arithmetic = formula.rpartition(": ")
    if not colon or "=" not in arithmetic:
        return formula, None
    return words, arithmetic.replace(" x ", " × ")


def sentence(text: str) -> str:
    """``text`` with its first letter capitalised (the rest left as it is) and a full stop."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def limiting_parts(limits: str) -> str:
    """"limited by exposure (39) and contrast (46)" -> "exposure (39) and contrast (46)", for a
    line that already says "What limits it:"."""
    prefix = "limited by "
    return limits[len(prefix):] if limits.lower().startswith(prefix) else limits
