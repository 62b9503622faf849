"""The ``pixelgrade`` command line: one module per command group, each a thin layer over the
library (parse, call, print). Options are declared once in :mod:`pixelgrade.cli.options` and
resolved by Click in one order: flags, ``PIXELGRADE_*`` environment variables,
``pixelgrade.toml`` (:mod:`pixelgrade.cli.project`), the checkpoint on ``backfill --resume``,
defaults."""

from pixelgrade.cli.main import app, main

__all__ = ["app", "main"]
