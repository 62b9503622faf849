"""Score rows as they arrive, on request: the service shared by the webhook receiver, the
``POST /api/images/{id}/score`` route, uploads and re-scores (:mod:`.service`)."""

from pixelgrade.autoscore.service import Done, ScoreService, ServiceBusy, ServiceStopped

__all__ = ["Done", "ScoreService", "ServiceBusy", "ServiceStopped"]
