"""No-reference quality peers for ``bench/validity.py``: each maps image bytes to a number where
higher is better, so every column of the tables reads the same way.

* ``PIQE`` (``pypiqe`` 1.2): Venkatanath N., Praneeth D., Bh. M. Chandrasekhar, S. S. Channappayya,
  S. S. Medasani, "Blind image quality evaluation using perception based features", NCC 2015,
  doi:10.1109/NCC.2015.7084843; opinion-unaware (no training), a port of MATLAB's ``piqe``.
  Shown as ``100 - PIQE``. MATLAB's documentation reads PIQE 0-20 as excellent, 21-35 good,
  36-50 fair, 51-100 poor or bad.
* ``BRISQUE`` (``brisque`` 0.2.0): Mittal, Moorthy, Bovik, "No-reference image quality
  assessment in the spatial domain", IEEE TIP 21(12), 2012, doi:10.1109/TIP.2012.2214050, with
  the LIVE-trained SVR model the package ships. Shown as ``100 - BRISQUE``.
* ``image-quality-ai`` 0.1.0: a 0-100 score from Laplacian sharpness, exposure, contrast, noise
  and framing.

All three are run on the full file, as a user would run them. ``pypiqe`` is installed by
``make bench`` without its dependencies: it asks for ``opencv-python``, which would shadow the
headless OpenCV that pixelgrade pins.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image


def _image(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def piqe_score(data: bytes) -> float:
    """100 - PIQE, on the luma (what MATLAB's ``piqe`` computes for an RGB input)."""
    from pypiqe import piqe

    grey = np.asarray(_image(data).convert("L"))
    return 100.0 - float(piqe(grey)[0])


_BRISQUE_MODEL: dict[str, object] = {}


def brisque_score(data: bytes) -> float:
    """100 - BRISQUE. The package's own ``score()`` fails on NumPy >= 2.4 because each feature
    comes back as a 1-element array; its steps are called here with the features flattened."""
    import cv2
    import skimage.color
    from brisque import BRISQUE

    model = _BRISQUE_MODEL.get("model")
    if model is None:
        model = _BRISQUE_MODEL["model"] = BRISQUE(url=False)
    grey = skimage.color.rgb2gray(np.asarray(_image(data).convert("RGB")))
    features = model.calculate_brisque_features(grey, kernel_size=7, sigma=7 / 6)
    half = cv2.resize(grey, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_CUBIC)
    half_features = model.calculate_brisque_features(half, kernel_size=7, sigma=7 / 6)
    flat = np.array([np.asarray(f, dtype=np.float64).ravel()[0]
                     for f in (*features, *half_features)])
    return 100.0 - float(model.calculate_image_quality_score(flat))


def image_quality_ai_score(data: bytes) -> float:
    import image_quality_ai

    return float(image_quality_ai.assess(_image(data).convert("RGB")).score)


#: name -> scorer, in the order the tables show them.
PEERS: dict[str, Callable[[bytes], float]] = {
    "PIQE": piqe_score,
    "BRISQUE": brisque_score,
    "image-quality-ai": image_quality_ai_score,
}
