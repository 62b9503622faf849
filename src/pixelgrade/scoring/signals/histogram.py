"""The 256-level luma histogram that several signals read, computed once per image."""

from __future__ import annotations

import cv2
import numpy as np


def luma_histogram(grey: np.ndarray) -> np.ndarray:
    """Pixel counts of each level 0-255 of a uint8 luma image, as float64."""
    return cv2.calcHist([grey], [0], None, [256], [0, 256]).ravel().astype(np.float64)
