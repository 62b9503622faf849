"""Enlargement: was this picture blown up from a smaller original, and from how small?

An image enlarged by interpolation (bilinear, bicubic, Lanczos) is a smooth function of the
original samples: between two original samples the interpolated values follow a fixed kernel,
so the strength of the second derivative varies *periodically* across the image, with the period
of the enlargement factor. Gallagher showed that the column-wise mean of ``|second derivative|``
carries a sharp spectral peak at that period, and that the peak survives JPEG compression; Popescu
and Farid derived the same periodic correlations for resampling in general. Pixel repetition
(nearest-neighbour enlargement) leaves the same periodicity, and in addition the pixels inside
each repeated block are equal, which tells the two apart.

The search runs on the decoder's grid (the image itself, or its libjpeg DCT-scaled reduction for
a large JPEG), in both directions, over periods of 2.1 to 12 grid pixels; the block periods of
the coder itself (JPEG's 8 x 8 blocks and their harmonics, VP8's 4 x 4 and 16 x 16 blocks) are
excluded, since every JPEG and WebP carries them (and, for any other file, the 8 px grid of a
JPEG it may once have been, resized by a few percent). A peak is accepted when both directions
show it at the same period and it stands :data:`MIN_PEAK_RATIO` times above the median of the
spectrum.

Periodic *content* (tiles, a grid pattern, a fence, rows of windows) makes the same peak. It is
told apart by the first derivative: an interpolating kernel leaves the mean ``|gradient|`` of
each column nearly flat (it only reshapes how the gradient bends between samples), while a
pattern puts its edges, hence its gradient, at the period too. An interpolated enlargement is
accepted only when the first-derivative profile's power at the period is under
:data:`MAX_CONTENT_RATIO` of the second derivative's, in both directions (on the corpus: 0.01-0.45
for enlarged photographs, 0.56 and more for the tiled and gridded wallpapers).

The enlargement factor is the period in the file's own pixels, and the picture's real detail is
the file's size divided by it.

References
----------
A. C. Gallagher, "Detection of linear and cubic interpolation in JPEG compressed images", Proc.
2nd Canadian Conference on Computer and Robot Vision, 65-72, 2005. doi:10.1109/CRV.2005.33
A. C. Popescu, H. Farid, "Exposing digital forgeries by detecting traces of resampling", IEEE
Transactions on Signal Processing 53(2), 758-767, 2005. doi:10.1109/TSP.2004.839932
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: Periods (grid px) searched: from just above Nyquist's 2 px to 12 px.
MIN_PERIOD, MAX_PERIOD = 2.1, 12.0
#: A periodic peak must stand this many times above the median power of the searched band.
MIN_PEAK_RATIO = 60.0
#: The two directions must agree on the period within this relative tolerance.
PERIOD_TOLERANCE = 0.04
#: Interpolation, not a pattern: first- over second-derivative periodic power below this.
MAX_CONTENT_RATIO = 0.5
#: A JPEG block grid resized by up to this share is excluded, with its harmonics, for files that
#: are not JPEG (a PNG saved from a resized JPEG keeps its old grid).
RESIZED_JPEG_GRID = 0.06
#: ... and a file whose 8 px grid peak stands this high in both directions was a JPEG once.
JPEG_HISTORY_RATIO = 2000.0
#: Local trend removed from the second-derivative profile (a moving average this wide, px).
TREND_WIDTH = 33
#: Pixel repetition: mean |difference| inside repeated blocks below this share of the mean
#: across block boundaries, in at least one direction (on the corpus: 0.02-0.48 for pixel
#: repetition after JPEG or WebP, 0.77-0.99 for interpolation).
REPETITION_RATIO = 0.55
#: Profiles shorter than this (px) are not searched.
MIN_PROFILE = 128


@dataclass(frozen=True, slots=True)
class Enlargement:
    """A detected enlargement: ``factor`` in the file's pixels, ``kind`` how it was made.

    ``kind`` is ``"interpolated"`` (bilinear, bicubic...) or ``"repeated"`` (pixel repetition);
    ``strength`` is the spectral peak ratio of the weaker direction.
    """

    factor: float
    kind: str
    strength: float


def _excluded(freqs: np.ndarray, coder_periods: tuple[float, ...], n: int) -> np.ndarray:
    """Mask of frequencies near a coder block period or one of its harmonics (and aliases)."""
    mask = np.zeros(freqs.size, bool)
    for period in coder_periods:
        harmonic = 1
        while harmonic / period <= 0.5 + 1e-9:
            f = harmonic / period
            mask |= np.abs(freqs - f) <= 3.0 / n
            mask |= np.abs(freqs - (1.0 - f)) <= 3.0 / n
            harmonic += 1
    return mask


def _spectrum(profile: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies, power) of a derivative profile's variation around its local trend."""
    n = profile.size
    trend = cv2.blur(profile.reshape(1, -1), (TREND_WIDTH, 1)).ravel()
    relative = profile / np.maximum(trend, 1e-6) - 1.0
    return np.fft.rfftfreq(n), np.abs(np.fft.rfft(relative * np.hanning(n))) ** 2


def _band(freqs: np.ndarray, coder_periods: tuple[float, ...], resized_grid: bool) -> np.ndarray:
    band = (freqs > 1.0 / MAX_PERIOD) & (freqs < 1.0 / MIN_PERIOD)
    band &= ~_excluded(freqs, coder_periods, freqs.size * 2)
    if resized_grid:
        for harmonic in (1, 2, 3):
            centre = harmonic / 8.0
            band &= np.abs(freqs - centre) > centre * RESIZED_JPEG_GRID
    return band


def _peak(profile: np.ndarray, band_of: np.ndarray) -> tuple[float, float]:
    """(peak ratio, period) of the periodic part of a second-derivative profile."""
    freqs, power = _spectrum(profile)
    if int(band_of.sum()) < 8:
        return 0.0, 0.0
    values = power[band_of]
    k = int(np.argmax(values))
    median = float(np.median(values))
    return float(values[k] / max(median, 1e-12)), float(1.0 / freqs[band_of][k])


def _power_at(profile: np.ndarray, band_of: np.ndarray, period: float) -> float:
    """Power at ``period`` (the strongest of the three nearest bins) over the band's median."""
    freqs, power = _spectrum(profile)
    k = int(np.argmin(np.abs(freqs - 1.0 / period)))
    return float(power[max(0, k - 1) : k + 2].max() / max(float(np.median(power[band_of])),
                                                           1e-12))


def _repetition_ratio(grid: np.ndarray, period: float) -> float:
    """Mean |difference| inside blocks of ``period`` over that across their boundaries (min over
    phases); near 0 for pixel repetition, near 1 for interpolation."""
    diffs = np.abs(np.diff(grid.astype(np.int16), axis=1)).mean(axis=0)
    positions = np.arange(diffs.size)
    best = 1.0
    for phase in np.linspace(0.0, period, 8, endpoint=False):
        # Block j spans [phase + j*period, phase + (j+1)*period): a boundary lies between
        # samples x and x + 1 when floor((x - phase) / period) changes.
        block = np.floor((positions - phase) / period)
        boundary = np.floor((positions + 1 - phase) / period) != block
        if boundary.all() or not boundary.any():
            continue
        across = float(diffs[boundary].mean())
        if across > 0:
            best = min(best, float(diffs[~boundary].mean()) / across)
    return best


def _jpeg_history(profiles: list[tuple[np.ndarray, np.ndarray]]) -> bool:
    """True when both directions carry a strong 8 px grid (within the resize tolerance)."""
    strong = 0
    for _, second in profiles:
        freqs, power = _spectrum(second)
        search = (freqs > 1.0 / MAX_PERIOD) & (freqs < 1.0 / MIN_PERIOD)
        near = np.abs(freqs - 0.125) <= 0.125 * RESIZED_JPEG_GRID
        if near.any() and power[near].max() >= JPEG_HISTORY_RATIO * np.median(power[search]):
            strong += 1
    return strong == 2


def detect_enlargement(grid: np.ndarray, file_long_side: int,
                       coder_periods: tuple[float, ...] = (),
                       resized_grid: bool = False) -> Enlargement | None:
    """The enlargement of ``grid`` (uint8 luma on the decoder's grid), or None.

    Parameters
    ----------
    grid : 2-D uint8 array; not resized after decoding, so interpolation traces survive.
    file_long_side : the file's long side in pixels (``grid`` may be a DCT-scaled reduction).
    coder_periods : block periods of the coder on this grid, excluded from the search.
    resized_grid : also exclude a resized 8 px grid (see :data:`RESIZED_JPEG_GRID`).
    """
    if grid.ndim != 2 or min(grid.shape) < MIN_PROFILE:
        return None
    g = grid.astype(np.float32)
    profiles = []
    for lines in (g, g.T):
        first = np.abs(lines[:, 1:] - lines[:, :-1]).mean(axis=0)
        second = np.abs(lines[:, 2:] - 2.0 * lines[:, 1:-1] + lines[:, :-2]).mean(axis=0)
        profiles.append((first, second))
    scale = file_long_side / max(grid.shape)

    # Pixel repetition first: its own test (equal pixels inside blocks) needs no exclusions.
    period = _agreed_period(profiles, coder_periods, resized_grid=False)
    if period is not None:
        repetition = min(_repetition_ratio(grid, period[0]), _repetition_ratio(grid.T, period[0]))
        if repetition < REPETITION_RATIO:
            return Enlargement(factor=period[0] * scale, kind="repeated", strength=period[1])
    if resized_grid and _jpeg_history(profiles):
        # A PNG made from a JPEG (resized or not): its old block grid and the grid's aliased
        # harmonics fill the band, and nothing tells an enlargement among them.
        return None
    period = _agreed_period(profiles, coder_periods, resized_grid)
    if period is None:
        return None
    content = 0.0
    for first, second in profiles:
        band_first = _band(np.fft.rfftfreq(first.size), coder_periods, resized_grid)
        band_second = _band(np.fft.rfftfreq(second.size), coder_periods, resized_grid)
        content = max(content, _power_at(first, band_first, period[0])
                      / _power_at(second, band_second, period[0]))
    if content >= MAX_CONTENT_RATIO:
        return None
    return Enlargement(factor=period[0] * scale, kind="interpolated", strength=period[1])


def _agreed_period(profiles: list[tuple[np.ndarray, np.ndarray]],
                   coder_periods: tuple[float, ...], resized_grid: bool
                   ) -> tuple[float, float] | None:
    """(period, weaker peak ratio) when both directions peak at the same period, else None."""
    found = []
    for _, second in profiles:
        band = _band(np.fft.rfftfreq(second.size), coder_periods, resized_grid)
        found.append(_peak(second, band))
    (ratio_a, period_a), (ratio_b, period_b) = found
    if min(ratio_a, ratio_b) < MIN_PEAK_RATIO:
        return None
    if abs(period_a - period_b) > PERIOD_TOLERANCE * max(period_a, period_b):
        return None
    return (period_a + period_b) / 2.0, min(ratio_a, ratio_b)
