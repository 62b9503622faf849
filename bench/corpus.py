"""The validity corpus: the sample photos and graded distortions of :mod:`pixelgrade.samples`."""

from pixelgrade.samples import (
    DISTORTIONS,
    PHOTOS,
    SEVERITIES,
    encode,
    load_photo,
    photo_dir,
)

__all__ = ["DISTORTIONS", "PHOTOS", "SEVERITIES", "encode", "load_photo", "photo_dir"]
