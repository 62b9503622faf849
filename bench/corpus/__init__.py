"""The real-photo corpus of ``bench/validity.py``: Debian-packaged photographs and graphics.

``python bench/corpus`` fetches the packages, builds the files and lists them with their class
(``photo``, ``graphic``, ``flawed``) and split (``calibration``, ``heldout``); see
:mod:`corpus.build` for what is built and :mod:`corpus.damage` for the damaged copies.
"""

from corpus.build import CLASSES, SPLITS, CorpusFile, Picture, build, load_manifest
from corpus.damage import FAMILIES

__all__ = ["CLASSES", "FAMILIES", "SPLITS", "CorpusFile", "Picture", "build", "load_manifest"]
