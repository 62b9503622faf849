"""Score rows when the database says they arrived: the Supabase Database Webhook receiver and
the generic "score this row now" route, both over :class:`~pixelgrade.autoscore.ScoreService`.

``POST /api/hooks/supabase`` takes what a Supabase Database Webhook (the trigger function
``supabase_functions.http_request``) sends, ``{"type": "INSERT" | "UPDATE" | "DELETE",
"table", "schema", "record", "old_record"}``, with ``Authorization: Bearer <secret>``, the
secret being ``PIXELGRADE_WEBHOOK_SECRET`` (compared in constant time). It answers at once
(202) and the row is scored in the background:

* ``INSERT``: the row whose key is ``record[<id column>]`` is scored (if it still has no score
  when its turn comes: a row the app scored meanwhile is kept);
* ``UPDATE``: scored again when the URL column changed and the record has no score (the
  re-score trigger of ``pixelgrade migrate`` clears the score of a row whose URL changes);
  a changed URL whose record still carries a score is left alone, and the log says that
  trigger is missing; any other update is ignored;
* ``DELETE``: ignored.

Refused: no secret configured (503: the route is never open), a missing or wrong secret (401),
a body that is not JSON (400), another table than the one served (422), a full queue (503 with
``Retry-After``; the row keeps no score, so ``watch``'s sweep or a backfill finds it later).

``POST /api/images/{id}/score`` does the same for any application, by key, guarded by the
write token (``PIXELGRADE_API_TOKEN``): 202, or with ``?wait=true`` the result.

:func:`create_hook_app` is an application with only these routes (``pixelgrade hook``);
``pixelgrade serve`` includes them in the gallery's (:func:`pixelgrade.web.create_app`).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from pixelgrade import __version__
from pixelgrade.autoscore import ScoreService, ServiceBusy, ServiceStopped
from pixelgrade.autoscore.service import QUEUE_SIZE
from pixelgrade.backfill.errorlog import ErrorLog
from pixelgrade.backfill.images import Locator
from pixelgrade.envvars import read_variable
from pixelgrade.errors import StoreError
from pixelgrade.pool import scoring_pool
from pixelgrade.scoring import ScoringConfig
from pixelgrade.service.counters import Counters
from pixelgrade.service.health import HealthCheck
from pixelgrade.service.metrics import ServiceMetrics
from pixelgrade.service.routes import add_service_routes
from pixelgrade.sources.http import HttpFetcher, HttpPolicy
from pixelgrade.sources.storage import StorageBucket
from pixelgrade.stores.base import DEFAULT_CREATED_COLUMN, GalleryStore, TableSpec

log = logging.getLogger("pixelgrade.hooks")

SECRET_VARIABLE = "PIXELGRADE_WEBHOOK_SECRET"
#: A webhook payload is one row as JSON: anything larger is refused (413).
MAX_PAYLOAD = 1024 * 1024
HOOK_PATH = "/api/hooks/supabase"


@dataclass
class HookContext:
    """What the hook routes need, on ``app.state.hooks``; ``service`` is set while the app
    runs (its lifespan)."""

    store: GalleryStore
    #: ``PIXELGRADE_WEBHOOK_SECRET``; None: the webhook answers 503 (never open).
    secret: str | None = field(default=None, repr=False)
    service: ScoreService | None = None

    @property
    def spec(self) -> TableSpec:
        return self.store.spec


def hook_context(request: Request) -> HookContext:
    hooks: HookContext = request.app.state.hooks
    return hooks


def running_service(request: Request) -> ScoreService:
    service = hook_context(request).service
    if service is None or not service.alive():
        raise HTTPException(503, "the scoring service is not running (the server is starting "
                                 "or stopping); try again in a moment")
    return service


# -- the Supabase Database Webhook ------------------------------------------------------------

router = APIRouter(tags=["scoring"])


@router.post(HOOK_PATH, status_code=202)
async def supabase_webhook(request: Request) -> JSONResponse:
    """A Supabase Database Webhook: score the inserted (or re-pointed) row in the background."""
    hooks = hook_context(request)
    _check_secret(request, hooks.secret)
    payload = await _json_body(request)
    spec = hooks.spec
    event = str(payload.get("type", "")).upper()
    table, schema = payload.get("table"), payload.get("schema") or "public"
    served_schema = spec.schema or "public"
    if (table, schema) != (spec.name, served_schema):
        raise HTTPException(422, f"this receiver scores the table {served_schema}.{spec.name}, "
                                 f"not {schema}.{table}: point the webhook of that table at "
                                 "a pixelgrade started with --table for it")
    if event == "DELETE":
        return _answer(200, "ignored", "a deleted row has nothing to score")
    if event not in ("INSERT", "UPDATE"):
        raise HTTPException(422, f"unknown webhook type {payload.get('type')!r}: expected "
                                 "INSERT, UPDATE or DELETE")
    record = payload.get("record")
    if not isinstance(record, dict) or record.get(spec.id_column) is None:
        raise HTTPException(422, f"the payload's record has no {spec.id_column!r} (the "
                                 "--id-column): is this the webhook of the table served?")
    raw_key = record[spec.id_column]
    if event == "UPDATE":
        old = payload.get("old_record")
        old_url = old.get(spec.url_column) if isinstance(old, dict) else None
        url_changed = not isinstance(old, dict) or old_url != record.get(spec.url_column)
        if not url_changed:
            return _answer(200, "ignored", f"the update did not change {spec.url_column}",
                           raw_key)
        if record.get(spec.score_column) is not None:
            log.warning(
                "row %s of %s: %s changed but the row kept its score, so it was not scored "
                "again: the re-score trigger that `pixelgrade migrate` installs (it clears the "
                "score when the URL changes) is missing; run `pixelgrade migrate` (Supabase: "
                "`pixelgrade migrate --supabase --sql`)", raw_key, spec.table, spec.url_column)
            return _answer(200, "ignored", f"{spec.url_column} changed but the row still has "
                           "a score: the re-score trigger of `pixelgrade migrate` is missing "
                           "on this table", raw_key)
    key = _key(hooks.store, raw_key)
    inserted = _created(record, spec) if event == "INSERT" else None
    service = running_service(request)
    try:
        service.submit(key, "webhook", inserted_at=inserted or time.time())
    except ServiceBusy as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": str(exc.retry_after)}
                            ) from exc
    except ServiceStopped as exc:
        raise HTTPException(503, f"{exc}; try again in a moment") from exc
    return _answer(202, "accepted", "queued to be scored", raw_key)


def _check_secret(request: Request, secret: str | None) -> None:
    if not secret:
        raise HTTPException(503, f"the webhook is off: set {SECRET_VARIABLE} (environment or "
                                 "./.env) where pixelgrade runs, and send it as "
                                 "'Authorization: Bearer <secret>' (pixelgrade migrate "
                                 "--supabase --sql --webhook-url URL prints the trigger that "
                                 "does)")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                             secret.encode()):
        raise HTTPException(401, "this webhook needs 'Authorization: Bearer <secret>' with "
                                 f"the {SECRET_VARIABLE} pixelgrade was started with",
                            headers={"WWW-Authenticate": "Bearer"})


async def _json_body(request: Request) -> dict[str, Any]:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_PAYLOAD:
            raise HTTPException(413, f"a webhook payload is one row: over {MAX_PAYLOAD:,} "
                                     "bytes is refused")
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise HTTPException(400, f"the body is not JSON ({exc}): expected a Supabase "
                                 "Database Webhook payload {\"type\", \"table\", \"schema\", "
                                 "\"record\", \"old_record\"}") from exc
    if not isinstance(payload, dict):
        raise HTTPException(400, "the body is JSON but not an object: expected a Supabase "
                                 "Database Webhook payload {\"type\", \"table\", \"schema\", "
                                 "\"record\", \"old_record\"}")
    return payload


def _key(store: GalleryStore, value: Any) -> Any:
    try:
        return store.key_from_json(value)
    except (TypeError, ValueError) as exc:
        raise HTTPException(422, f"{value!r} is not a key of {store.spec.table} "
                                 f"({store.spec.id_column})") from exc


def _created(record: dict[str, Any], spec: TableSpec) -> float | None:
    """When the row was inserted, from its creation-time column, if the record has one."""
    value = record.get(spec.created_column or DEFAULT_CREATED_COLUMN)
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None  # a local time of unknown zone: the arrival time is used instead
    return moment.timestamp()


def _answer(status: int, state: str, message: str, key: Any = None) -> JSONResponse:
    return JSONResponse({"status": state, "id": key, "message": message}, status)


# -- POST /api/images/{id}/score ------------------------------------------------------------


def score_router(guard: Callable[..., Any]) -> APIRouter:
    """The generic route, guarded by ``guard`` (a FastAPI dependency: the write token)."""
    images = APIRouter(prefix="/api", tags=["scoring"])

    @images.post("/images/{key}/score", status_code=202, dependencies=[Depends(guard)],
                 responses={200: {"description": "With ?wait=true: the result."},
                            404: {"description": "No such row."},
                            503: {"description": "The queue is full (Retry-After)."}})
    async def score_image(request: Request, key: str, wait: bool = Query(
            False, description="Wait for the result instead of answering 202 at once.")
            ) -> JSONResponse:
        """Score the row ``key`` now (only if it has no score: use ``/rescore`` to replace
        one), through the same service as the webhook."""
        hooks = hook_context(request)
        store = hooks.store
        typed = _key(store, key)
        try:
            record = await asyncio.to_thread(store.get_image, key)
        except StoreError as exc:
            raise HTTPException(503, f"the database cannot be used right now: {exc}") from exc
        if record is None:
            raise HTTPException(404, f"no image with id {key}")
        if record.score is not None:
            return _answer(200, "not_needed", "the image has a score already (POST "
                           f"/api/images/{key}/rescore replaces it)", record.id)
        service = running_service(request)
        try:
            future = service.submit(typed, "api")
        except ServiceBusy as exc:
            raise HTTPException(503, str(exc), headers={"Retry-After": str(exc.retry_after)}
                                ) from exc
        except ServiceStopped as exc:
            raise HTTPException(503, f"{exc}; try again in a moment") from exc
        if not wait:
            return _answer(202, "accepted", "queued to be scored", record.id)
        done = await asyncio.shield(future)
        return JSONResponse(done.to_dict(), 200)

    return images


# -- the service's lifetime, and the app of `pixelgrade hook` ----------------------------------


@dataclass(frozen=True)
class HookSettings:
    """How ``pixelgrade hook`` runs."""

    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    #: ``PIXELGRADE_WEBHOOK_SECRET`` (None: the webhook answers 503).
    secret: str | None = field(default=None, repr=False)
    #: ``PIXELGRADE_API_TOKEN``, for ``POST /api/images/{id}/score`` (None: refused).
    token: str | None = field(default=None, repr=False)
    workers: int = 1
    concurrency: int = 8
    queue_size: int = QUEUE_SIZE
    error_log: Path | None = None
    root: Path | None = None
    url_template: str | None = None
    storage: StorageBucket | None = None
    http: HttpPolicy | None = None


@asynccontextmanager
async def service_running(store: GalleryStore, pool: Executor, workers: int,
                          config: ScoringConfig, fetcher: HttpFetcher | None,
                          locator: Locator, *, error_log: Path | None = None,
                          counters: Counters | None = None, queue_size: int = QUEUE_SIZE,
                          example: str = "hook-errors.log") -> AsyncIterator[ScoreService]:
    """A started :class:`ScoreService` for the duration of an app's lifespan."""
    service = ScoreService.create(
        store, pool, workers, config, fetcher, locator, counters=counters,
        error_log=ErrorLog(error_log, example=example) if error_log is not None else None,
        queue_size=queue_size)
    async with service:
        yield service


def create_hook_app(store: GalleryStore, settings: HookSettings | None = None, *,
                    pool: Executor | None = None, counters: Counters | None = None,
                    metrics: ServiceMetrics | None = None, health: HealthCheck | None = None
                    ) -> FastAPI:
    """An app with only the scoring routes (``pixelgrade hook``), and ``/metrics`` and
    ``/healthz`` as ``serve`` has them. ``pool``: a scoring pool to use (else one of
    ``settings.workers`` processes, stopped with the app). ``counters``: what scoring reports
    to (default: ``metrics``, else new ones for ``store``)."""
    settings = settings or HookSettings()
    hooks = HookContext(store, settings.secret)
    metrics = metrics or ServiceMetrics(getattr(store, "dialect_name", ""))
    health = health or HealthCheck(store)
    counters = counters or metrics

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        policy = (settings.http or HttpPolicy(max_bytes=settings.scoring.max_bytes)).trusting(
            settings.url_template, settings.storage.project_url if settings.storage else None)
        origin = settings.storage.credentials() if settings.storage is not None else {}
        executor = pool or scoring_pool(settings.workers)
        try:
            async with HttpFetcher(policy, concurrency=settings.concurrency,
                                   origin_headers=origin) as fetcher, service_running(
                    store, executor, settings.workers, settings.scoring, fetcher,
                    Locator(settings.url_template, settings.root or Path.cwd(),
                            settings.storage),
                    error_log=settings.error_log, counters=counters,
                    queue_size=settings.queue_size) as service:
                hooks.service = service
                health.register("scoring", lambda: None if service.alive else
                                "the scoring service's workers are not running")
                try:
                    yield
                finally:
                    health.unregister("scoring")
                    hooks.service = None
        finally:
            if pool is None:
                executor.shutdown(wait=True, cancel_futures=True)

    app = FastAPI(title="pixelgrade hook", version=__version__, lifespan=lifespan,
                  description="Scores rows of an images table as the database announces them "
                  "(Supabase Database Webhooks), or on request.",
                  docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.state.hooks = hooks
    token = settings.token

    def require_token(request: Request) -> None:
        from pixelgrade.web.app import TOKEN_VARIABLE

        check_write_token(request, token, f"scoring on request is off: start pixelgrade "
                                          f"with {TOKEN_VARIABLE} set to enable it")

    app.include_router(router)
    app.include_router(score_router(require_token))
    add_service_routes(app, metrics, health)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"detail": str(exc.detail)}, exc.status_code, headers=exc.headers)

    return app


def check_write_token(request: Request, expected: str | None, disabled: str) -> None:
    """The rule for writes (``serve``'s uploads and re-scores, score on request): a Bearer
    token equal to ``expected``, compared in constant time. 403 with ``disabled`` when no
    token is configured, 401 without one, 403 for a wrong one."""
    if not expected:
        raise HTTPException(403, disabled)
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise HTTPException(401, "this needs the API token: send 'Authorization: Bearer "
                                 "<token>'", headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise HTTPException(403, "wrong API token")


def secret_from_environment(env_file: Path | None = None) -> str | None:
    """``PIXELGRADE_WEBHOOK_SECRET`` from the environment, else from ``./.env``."""
    return read_variable(SECRET_VARIABLE, env_file)
