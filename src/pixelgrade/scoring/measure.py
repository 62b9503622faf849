"""Every signal of one decoded image, measured once: the facts the sub-scores and the sentences
quote. Pure: a :class:`~pixelgrade.scoring.decode.DecodedImage` in, :class:`Measurements` out.
"""

from __future__ import annotations

from dataclasses import dataclass

from pixelgrade.scoring.curves import BANDING
from pixelgrade.scoring.decode import DecodedImage
from pixelgrade.scoring.signals import (
    Enlargement,
    Focus,
    ToneStats,
    banding_index,
    blockiness,
    detect_enlargement,
    flat_share,
    focus,
    histogram_comb,
    impulse_share,
    jpeg_quality,
    noise_sigma,
    tone_stats,
)
from pixelgrade.scoring.signals.histogram import luma_histogram
from pixelgrade.scoring.vp8 import webp_quality

#: The comb under which banding scores 100 whatever the flat share (the BANDING curve's knee).
BANDING_FROM = BANDING[0][0]
#: An interpolated enlargement is believed only when the picture also looks a little soft (focus
#: width at least this, px at working size; crisp photographs measure 1.2-1.8).
ENLARGEMENT_MIN_FOCUS = 1.9
#: ... and when the enlargement is still visible at the working size (factor there >= this).
ENLARGEMENT_MIN_VISIBLE = 1.25


@dataclass(frozen=True, slots=True)
class Measurements:
    """Every raw measurement of one image, in the units its sentence quotes."""

    focus: Focus
    noise: float
    tones: ToneStats
    impulses: float
    comb: float
    flat: float
    enlargement: Enlargement | None
    width: int
    height: int
    working_long_side: int
    jpeg_quality: float | None
    webp_quality: float | None
    blockiness: float | None

    @property
    def banding(self) -> float:
        """The histogram comb, in proportion to how much of the picture is flat."""
        return banding_index(self.comb, self.flat)

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6

    @property
    def detail_size(self) -> tuple[int, int]:
        """The picture's real detail in pixels: its size, or its size before enlargement."""
        if self.enlargement is None:
            return self.width, self.height
        return (max(1, round(self.width / self.enlargement.factor)),
                max(1, round(self.height / self.enlargement.factor)))

    @property
    def effective_megapixels(self) -> float:
        w, h = self.detail_size
        return w * h / 1e6

    @property
    def working_scale(self) -> float:
        """Working size over file size (at most 1)."""
        return min(1.0, self.working_long_side / max(self.width, self.height))


def _coder_periods(decoded: DecodedImage) -> tuple[float, ...]:
    """Block periods of the coder on the decoder's grid (excluded from the enlargement search).

    JPEG: 8 px blocks and 16 px chroma MCUs, divided by the DCT scaling; VP8: 4 px transforms in
    16 px macroblocks. Any other file may have been a JPEG once, and may have been resized
    since: 8 px is excluded for them too.
    """
    if decoded.format in ("JPEG", "MPO"):
        denominator = max(1, round(max(decoded.width, decoded.height) / max(decoded.grid.shape)))
        return (8.0 / denominator, 16.0 / denominator)
    if decoded.format == "WEBP":
        return (4.0, 8.0, 16.0)
    return (8.0,)


def measure(decoded: DecodedImage) -> Measurements:
    """Measure every signal of ``decoded``."""
    grey = decoded.grey
    sigma = noise_sigma(grey)
    hist = luma_histogram(grey)
    tones = tone_stats(grey, hist)
    comb = histogram_comb(grey, hist)
    sharp = focus(grey, sigma, tones.dynamic_range)
    enlargement = detect_enlargement(decoded.grid, max(decoded.width, decoded.height),
                                     _coder_periods(decoded),
                                     resized_grid=decoded.format not in ("JPEG", "MPO"))
    working_long = max(grey.shape)
    if enlargement is not None:
        visible = enlargement.factor * min(1.0, working_long / max(decoded.width, decoded.height))
        soft = sharp.width is not None and sharp.width >= ENLARGEMENT_MIN_FOCUS
        if enlargement.kind != "repeated" and not (soft and visible >= ENLARGEMENT_MIN_VISIBLE):
            enlargement = None
    blocks = None
    if decoded.format not in ("JPEG", "MPO", "WEBP") and decoded.grid_period:
        blocks = blockiness(decoded.grid, decoded.grid_period)
    return Measurements(
        focus=sharp,
        noise=sigma,
        tones=tones,
        impulses=impulse_share(grey),
        comb=comb,
        # Banding is only judged from a comb of BANDING_FROM: the flat share is not needed under.
        flat=flat_share(grey, hist) if comb > BANDING_FROM else 0.0,
        enlargement=enlargement,
        width=decoded.width,
        height=decoded.height,
        working_long_side=working_long,
        jpeg_quality=jpeg_quality(decoded.quantization),
        webp_quality=None if decoded.webp_quantizer is None else webp_quality(
            decoded.webp_quantizer),
        blockiness=blocks,
    )
