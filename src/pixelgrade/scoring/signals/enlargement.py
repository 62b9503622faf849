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
spectrum (the strongest peak may be a harmonic of the enlargement: see
:func:`_agreed_period`).

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
#: Interpolation, not a pattern: first- over second-derivative periodic power below this.
MAX_CONTENT_RATIO = 0.5
#: A JPEG block grid resized by up to this share is excluded, with its harmonics, for files that
#: are not JPEG (a PNG saved from a resized JPEG keeps its old grid).
RESIZED_JPEG_GRID = 0.06
#: ... and a file whose 8 px grid peak stands this high in both directions was a JPEG once.
JPEG_HISTORY_RATIO = 2000.0
#: Local trend removed from the second-derivative profile (a moving average this wide, px).
TREND_WIDTH = 33
#: A multiple of the strongest period is the fundamental when its peak is this share of it.
HARMONIC_SHARE = 0.2
#: Pixel repetition: mean |difference| inside repeated blocks below this share of the mean
#: across block boundaries, in at least one direction (on the corpus: 0.02-0.48 for pixel
#: repetition after JPEG or WebP, 0.77-0.99 for interpolation).
REPETITION_RATIO = 0.55
#: Profiles shorter than this (px) are not searched.
MIN_PROFILE = 128
#: The search runs on a centre crop of at most this many pixels a side.
MAX_CROP = 1280


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


@dataclass(frozen=True, slots=True)
class _Spectrum:
    """Power spectrum of a derivative profile's variation around its local trend."""

    profile: np.ndarray
    freqs: np.ndarray
    power: np.ndarray

    @classmethod
    def of(cls, profile: np.ndarray) -> _Spectrum:
        n = profile.size
        trend = cv2.blur(profile.reshape(1, -1), (TREND_WIDTH, 1)).ravel()
        relative = profile / np.maximum(trend, 1e-6) - 1.0
        return cls(profile, np.fft.rfftfreq(n),
                   np.abs(np.fft.rfft(relative * np.hanning(n))) ** 2)

    def band(self, coder_periods: tuple[float, ...], resized_grid: bool) -> np.ndarray:
        """The searched frequencies: periods MIN_PERIOD-MAX_PERIOD, coder periods excluded."""
        freqs = self.freqs
        band = (freqs > 1.0 / MAX_PERIOD) & (freqs < 1.0 / MIN_PERIOD)
        band &= ~_excluded(freqs, coder_periods, freqs.size * 2)
        if resized_grid:
            for harmonic in (1, 2, 3):
                centre = harmonic / 8.0
                band &= np.abs(freqs - centre) > centre * RESIZED_JPEG_GRID
        return band

    def peak(self, band: np.ndarray) -> tuple[float, float]:
        """(peak power over the band's median, its period)."""
        if int(band.sum()) < 8:
            return 0.0, 0.0
        values = self.power[band]
        k = int(np.argmax(values))
        return (float(values[k] / max(float(np.median(values)), 1e-12)),
                float(1.0 / self.freqs[band][k]))

    def power_at(self, band: np.ndarray, period: float) -> float:
        """Power at ``period`` (the strongest of the 3 nearest bins) over the band's median."""
        k = int(np.argmin(np.abs(self.freqs - 1.0 / period)))
        return float(self.power[max(0, k - 1) : k + 2].max()
                     / max(float(np.median(self.power[band])), 1e-12))


def _repetition_ratio(diffs: np.ndarray, period: float) -> float:
    """Mean |difference| inside blocks of ``period`` over that across their boundaries (min over
    phases), from the column means of |first derivative|; near 0 for pixel repetition, near 1
    for interpolation."""
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


_FIRST = np.array([[-1.0, 1.0]], np.float32)
_SECOND = np.array([[1.0, -2.0, 1.0]], np.float32)


def _profiles(grid: np.ndarray) -> tuple[_Spectrum, _Spectrum]:
    """Spectra of the column means of |first| and |second| derivative along the rows (int16
    derivatives, summed in int32: the same numbers as float, at half the memory traffic)."""
    first = np.abs(cv2.filter2D(grid, cv2.CV_16S, _FIRST, anchor=(0, 0),
                                borderType=cv2.BORDER_REPLICATE))[:, :-1]
    second = np.abs(cv2.filter2D(grid, cv2.CV_16S, _SECOND, anchor=(0, 0),
                                 borderType=cv2.BORDER_REPLICATE))[:, :-2]
    rows = float(grid.shape[0])
    return (_Spectrum.of(first.sum(axis=0, dtype=np.int32) / rows),
            _Spectrum.of(second.sum(axis=0, dtype=np.int32) / rows))


def _jpeg_history(profiles: list[tuple[_Spectrum, _Spectrum]]) -> bool:
    """True when both directions carry a strong 8 px grid (within the resize tolerance)."""
    strong = 0
    for _, second in profiles:
        search = (second.freqs > 1.0 / MAX_PERIOD) & (second.freqs < 1.0 / MIN_PERIOD)
        near = np.abs(second.freqs - 0.125) <= 0.125 * RESIZED_JPEG_GRID
        if near.any() and (second.power[near].max()
                           >= JPEG_HISTORY_RATIO * np.median(second.power[search])):
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
    # The trace is the same everywhere: a centre crop is enough, and keeps a 100 MP PNG cheap.
    top = max(0, (grid.shape[0] - MAX_CROP) // 2)
    left = max(0, (grid.shape[1] - MAX_CROP) // 2)
    crop = np.ascontiguousarray(grid[top : top + MAX_CROP, left : left + MAX_CROP])
    profiles = [_profiles(crop), _profiles(cv2.transpose(crop))]
    scale = file_long_side / max(grid.shape)

    # Pixel repetition first: its own test (equal pixels inside blocks) needs no exclusions.
    period = _agreed_period(profiles, coder_periods, resized_grid=False)
    if period is not None:
        # (Blocks of a non-integer size alternate, 2, 3, 2, 3 px for 2.5x: the trace's period
        # is then the pattern's, 5 px, and the factor reads twice too large.)
        repetition = min(_repetition_ratio(first.profile, period[0]) for first, _ in profiles)
        if repetition < REPETITION_RATIO:
            return Enlargement(factor=period[0] * scale, kind="repeated", strength=period[1])
    if resized_grid and _jpeg_history(profiles):
        # A PNG made from a JPEG (resized or not): its old block grid and the grid's aliased
        # harmonics fill the band, and nothing tells an enlargement among them.
        return None
    period = _agreed_period(profiles, coder_periods, resized_grid)
    if period is None:
        return None
    content = max(first.power_at(first.band(coder_periods, resized_grid), period[0])
                  / second.power_at(second.band(coder_periods, resized_grid), period[0])
                  for first, second in profiles)
    if content >= MAX_CONTENT_RATIO:
        return None
    return Enlargement(factor=period[0] * scale, kind="interpolated", strength=period[1])


def _agreed_period(profiles: list[tuple[_Spectrum, _Spectrum]],
                   coder_periods: tuple[float, ...], resized_grid: bool
                   ) -> tuple[float, float] | None:
    """(period, weaker peak ratio) of a periodic trace that both directions show, else None.

    Each direction's strongest peak may be a harmonic (k/2 or k/3 of an enlargement by k, and
    the two directions need not pick the same one): the candidates are the peaks and their
    multiples, longest first, and the first that stands out in both directions (at least
    MIN_PEAK_RATIO and HARMONIC_SHARE of that direction's own peak) is the period.
    """
    bands = [second.band(coder_periods, resized_grid) for _, second in profiles]
    peaks = [second.peak(band) for (_, second), band in zip(profiles, bands, strict=True)]
    if min(ratio for ratio, _ in peaks) < MIN_PEAK_RATIO:
        return None
    candidates = sorted({period * multiple for _, period in peaks for multiple in (1, 2, 3)
                         if 0 < period * multiple <= MAX_PERIOD}, reverse=True)
    for candidate in candidates:
        strengths = [second.power_at(band, candidate)
                     for (_, second), band in zip(profiles, bands, strict=True)]
        if all(strength >= max(MIN_PEAK_RATIO, HARMONIC_SHARE * ratio)
               for strength, (ratio, _) in zip(strengths, peaks, strict=True)):
            return candidate, min(strengths)
    return None
