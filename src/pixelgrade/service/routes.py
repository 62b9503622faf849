"""``GET /metrics`` and ``GET /healthz`` on any FastAPI app: ``serve``'s gallery, the small
server of ``watch --metrics-port`` (:func:`metrics_app`), the webhook receiver.

    metrics, health = ServiceMetrics(store.dialect_name), HealthCheck(store)
    add_service_routes(app, metrics, health)     # then hand metrics to what counts
    health.register("watch", watcher.liveness)   # and the probes to the check

Both answer without the sign-in token (an app that guards its reads must let
:data:`SERVICE_PATHS` through): a load balancer or Prometheus has no token, and neither
answer holds a secret or a row (metrics name the kind of database only; health problems pass
through :func:`pixelgrade.service.logs.redact`).
"""

from __future__ import annotations

import socket
import threading

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from pixelgrade.errors import PixelgradeError
from pixelgrade.service.health import HealthCheck
from pixelgrade.service.metrics import CONTENT_TYPE, ServiceMetrics

#: The paths :func:`add_service_routes` adds (open to all, see the module docstring).
SERVICE_PATHS = ("/metrics", "/healthz")


def add_service_routes(app: FastAPI, metrics: ServiceMetrics, health: HealthCheck) -> None:
    """Add ``GET /metrics`` (``metrics`` in Prometheus' text format) and ``GET /healthz``
    (200 ``{"status": "ok", ...}``, or 503 ``{"status": "failing", "problems": [...]}``) to
    ``app``. They are kept on ``app.state.metrics`` and ``app.state.health`` too, for the
    code that counts and registers probes."""
    app.state.metrics = metrics
    app.state.health = health

    # Plain ``def``: run in the threadpool, so a slow check never blocks the event loop.
    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        answer = health.check()
        return JSONResponse(answer.to_dict(), answer.status_code,
                            headers={"Cache-Control": "no-store"})


def metrics_app(metrics: ServiceMetrics, health: HealthCheck) -> FastAPI:
    """A FastAPI app with only the service routes (``watch --metrics-port``)."""
    app = FastAPI(title="pixelgrade", docs_url=None, redoc_url=None, openapi_url=None)
    add_service_routes(app, metrics, health)
    return app


class ServiceServer:
    """``app`` served by uvicorn in a daemon thread on ``host:port`` (``watch
    --metrics-port``). The socket is bound here, so a port in use is an error before the watch
    starts, not a warning lost in a thread; :meth:`stop` ends it."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 9108) -> None:
        import uvicorn

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self.socket = socket.create_server((host, port), family=family)
        except OSError as exc:
            raise PixelgradeError(f"cannot listen on {host}:{port} for /metrics and /healthz: "
                                  f"{exc.strerror or exc}; pick another --metrics-port"
                                  ) from exc
        self.host, self.port = host, self.socket.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="off", log_level="warning"))
        self._thread = threading.Thread(target=self.server.run, kwargs={
            "sockets": [self.socket]}, name="pixelgrade-metrics", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> ServiceServer:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.socket.close()

    def __enter__(self) -> ServiceServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
