"""The backfill: give every row whose score is NULL a score, safely, resumably and fast.

:mod:`~pixelgrade.backfill.engine` is the generic engine (cursor, batches, pipeline, signals);
:mod:`~pixelgrade.backfill.images` is the per-row work, done in chunks by the workers
(:mod:`~pixelgrade.backfill.work`) that an executor runs (:mod:`~pixelgrade.backfill.executors`:
local processes or Dask); :mod:`~pixelgrade.backfill.run` puts them together with a store, the
checkpoint and the error log.
"""

from pixelgrade.backfill.engine import Engine, EngineOptions
from pixelgrade.backfill.run import (
    BackfillOptions,
    BackfillReport,
    DryRunReport,
    dry_run,
    run_backfill,
)

__all__ = ["BackfillOptions", "BackfillReport", "DryRunReport", "Engine", "EngineOptions",
           "dry_run", "run_backfill"]
