"""The FastAPI application: settings, shared state, authentication and error pages.

Pages (:mod:`pixelgrade.web.pages`) and the JSON API (:mod:`pixelgrade.web.api`) are two
renderings of the same :class:`~pixelgrade.gallery.Gallery` calls.

Authentication: writes (upload, re-score) need ``Authorization: Bearer <token>`` with the
server's token (``PIXELGRADE_API_TOKEN``); without a token configured they are refused (403).
Reads are open unless ``protect_reads`` is set; then they need the same token, as a Bearer
header, or once as ``?token=`` in a page address or through the sign-in form at ``/sign-in``
(:mod:`pixelgrade.web.sign_in`), either of which leaves an HttpOnly cookie behind, so the
pictures of the pages load too. A page refused for want of the token says what is needed and
holds the sign-in form.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pixelgrade import __version__
from pixelgrade.autoscore.service import QUEUE_SIZE
from pixelgrade.backfill.images import Locator
from pixelgrade.errors import StoreError
from pixelgrade.gallery import BAND_LABELS, Gallery, GalleryQueryError
from pixelgrade.pool import scoring_pool
from pixelgrade.scoring import Bands, ScoringConfig
from pixelgrade.scoring.explain import FINE_FROM
from pixelgrade.service.counters import Counters
from pixelgrade.service.health import HealthCheck
from pixelgrade.service.metrics import ServiceMetrics
from pixelgrade.service.routes import SERVICE_PATHS, add_service_routes
from pixelgrade.sources.http import HttpFetcher, HttpPolicy
from pixelgrade.sources.storage import StorageBucket
from pixelgrade.stores.base import GalleryStore
from pixelgrade.web.actions import ActionError, Actions
from pixelgrade.web.hooks import HOOK_PATH, check_write_token
from pixelgrade.web.media import SourceReader, ThumbnailCache
from pixelgrade.web.refusals import PreviewRefusals, Refusal, sample_refusals
from pixelgrade.web.wording import formula_parts, limiting_parts, sentence

HERE = Path(__file__).parent
TOKEN_VARIABLE = "PIXELGRADE_API_TOKEN"
COOKIE = "pixelgrade_token"
#: Room for the multipart envelope around an upload's bytes.
MULTIPART_OVERHEAD = 64 * 1024


@dataclass(frozen=True)
class WebSettings:
    """How ``pixelgrade serve`` runs. Paths default from the database (see
    ``pixelgrade.cli.serve``)."""

    bands: Bands = field(default_factory=Bands)
    #: Limits for scoring and for uploads (``max_bytes`` is the upload cap).
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    #: The write token; None: uploads and re-scores are refused.
    token: str | None = None
    #: Reads need the token too.
    protect_reads: bool = False
    #: Where the token comes from, in words, for the pages that ask for it.
    token_hint: str = f"the {TOKEN_VARIABLE} that pixelgrade serve was started with"
    #: Where uploads are saved.
    uploads: Path = Path("uploads")
    #: Local paths in the URL column must lead inside this folder (None: the working
    #: directory); see :func:`pixelgrade.sources.files.resolve_local`.
    root: Path | None = None
    #: Where thumbnails are cached.
    cache: Path = Path(".pixelgrade/thumbnails")
    #: Supabase Storage bucket that stored paths are objects of.
    storage: StorageBucket | None = None
    #: Scoring processes.
    workers: int = 1
    #: SSRF guard opt-ins for URLs in the table (``--allow-private-network``,
    #: ``--allow-host``); the Storage project is trusted as configured.
    allow_private_network: bool = False
    allowed_hosts: frozenset[str] = frozenset()
    page_size: int = 48
    #: Record uploads as URLs made from this template (``--uploads-url``, ``{path}``: the
    #: file's path inside ``uploads``); None: as paths relative to ``root``.
    uploads_url: str | None = None
    #: ``PIXELGRADE_WEBHOOK_SECRET`` for ``POST /api/hooks/supabase`` (None: it answers 503).
    webhook_secret: str | None = field(default=None, repr=False)
    #: Where scoring failures are appended (JSON Lines, as ``watch``'s); None: nowhere.
    error_log: Path | None = None
    #: Rows the webhook and ``/api/images/{id}/score`` queue, at most (then 503).
    queue_size: int = QUEUE_SIZE


@dataclass
class WebContext:
    """Everything a request handler needs, on ``app.state.web``."""

    settings: WebSettings
    gallery: Gallery
    actions: Actions
    cache: ThumbnailCache
    templates: Jinja2Templates
    thumbnail_pool: Executor
    #: Hosts whose previews the SSRF guard refused (said once on the gallery).
    refusals: PreviewRefusals = field(default_factory=PreviewRefusals)
    reader: SourceReader | None = None


def context(request: Request) -> WebContext:
    web: WebContext = request.app.state.web
    return web


def require_token(request: Request) -> None:
    """Dependency of every write: a Bearer token equal to the server's."""
    check_write_token(request, context(request).settings.token,
                      f"writes are disabled: start the server with {TOKEN_VARIABLE} set to "
                      "enable uploads and re-scores")


def http_policy(settings: WebSettings) -> HttpPolicy:
    """How the gallery fetches the URLs of rows: the upload cap, the guard's opt-ins, and
    trust in the origins the operator configured (the Storage project, ``--uploads-url``)."""
    return HttpPolicy(
        max_bytes=settings.scoring.max_bytes, retries=1, read_timeout=15,
        allow_private_network=settings.allow_private_network,
        allowed_hosts=settings.allowed_hosts,
    ).trusting(settings.storage.project_url if settings.storage else None,
               settings.uploads_url)


def locator(settings: WebSettings) -> Locator:
    """Where the rows' images are: local paths under the root (the working directory when
    none is set), URLs, or objects of the Storage bucket."""
    return Locator(None, settings.root if settings.root is not None else Path.cwd(),
                   settings.storage)


def check_previews(store: GalleryStore, settings: WebSettings) -> list[Refusal]:
    """The hosts of the gallery's first rows that the SSRF guard refuses (for ``serve`` to
    say so at start; see :mod:`pixelgrade.web.refusals`). Nothing is downloaded."""
    return sample_refusals(store, locator(settings), http_policy(settings).guard())


def create_app(store: GalleryStore, settings: WebSettings | None = None, *,
               pool: Executor | None = None, refused: Iterable[Refusal] = (),
               counters: Counters | None = None, metrics: ServiceMetrics | None = None,
               health: HealthCheck | None = None) -> FastAPI:
    """The gallery and API for ``store``. ``pool``: a scoring pool to use (else one of
    ``settings.workers`` processes, whose processes start with the first image scored, stopped
    with the app). ``refused``: previews found refused before the start
    (:func:`check_previews`), shown from the first page on. ``metrics``, ``health``: what
    ``/metrics`` and ``/healthz`` answer (:mod:`pixelgrade.service`; else new ones for
    ``store``), open without the token. ``counters``: what scoring reports to (uploads,
    re-scores, the webhook; default: ``metrics``)."""
    from pixelgrade.web import hooks
    metrics = metrics or ServiceMetrics(getattr(store, "dialect_name", ""))
    health = health or HealthCheck(store)
    counters = counters or metrics
    settings = settings or WebSettings()
    gallery = Gallery(store, settings.bands)
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals.update(band_labels=BAND_LABELS, sort_labels=gallery.sort_labels,
                                 version=__version__, bands=settings.bands,
                                 writes_enabled=bool(settings.token), fine_from=FINE_FROM)
    templates.env.filters["filesize"] = _filesize
    templates.env.filters["formula_parts"] = formula_parts
    templates.env.filters["sentence"] = sentence
    templates.env.filters["limiting_parts"] = limiting_parts
    # One root for reading rows and for recording uploads, so an upload reads back as stored.
    where = locator(settings)
    root = where.root
    own_pool = pool is None
    thumbnail_pool = ThreadPoolExecutor(max(2, os.cpu_count() or 1),
                                        thread_name_prefix="pixelgrade-thumbnail")
    web = WebContext(
        settings=settings, gallery=gallery, templates=templates,
        cache=ThumbnailCache(settings.cache, store.identity()), thumbnail_pool=thumbnail_pool,
        refusals=PreviewRefusals(refused),
        actions=Actions(
            gallery=gallery, config=settings.scoring, uploads=settings.uploads,
            root=root, uploads_url=settings.uploads_url,
            uploads_in_flight=max(2, 2 * settings.workers)))
    hook_state = hooks.HookContext(store, settings.webhook_secret)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        policy = http_policy(settings)
        origin = settings.storage.credentials() if settings.storage is not None else {}
        executor = pool or scoring_pool(settings.workers)  # processes start on first use
        async with HttpFetcher(policy, concurrency=8, origin_headers=origin) as fetcher:
            web.reader = SourceReader(where, fetcher, settings.scoring.max_bytes,
                                      web.refusals)
            try:
                async with hooks.service_running(
                        store, executor, settings.workers, settings.scoring, fetcher, where,
                        error_log=settings.error_log, counters=counters,
                        queue_size=settings.queue_size, example="serve-errors.log"
                        ) as service:
                    web.actions.service = hook_state.service = service
                    health.register("scoring", lambda: None if service.alive else
                                    "the scoring service's workers are not running")
                    yield
            finally:
                health.unregister("scoring")
                web.actions.service = hook_state.service = None
                web.reader = None
                thumbnail_pool.shutdown(wait=False, cancel_futures=True)
                if own_pool:
                    executor.shutdown(wait=True, cancel_futures=True)

    app = FastAPI(
        title="pixelgrade", version=__version__, lifespan=lifespan,
        description="Image quality scores (0-100) of an images table: list by band and "
        "score, one image with its components and issues, upload (scored on arrival), "
        "re-score, statistics. Writes need `Authorization: Bearer <PIXELGRADE_API_TOKEN>`.",
        docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.state.web = web
    app.state.hooks = hook_state
    from pixelgrade.web import api, docs, pages, sign_in

    docs.add_docs(app, "/api/openapi.json", app.title)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    app.include_router(api.router)
    app.include_router(hooks.router)
    app.include_router(hooks.score_router(require_token))
    app.include_router(pages.router)
    app.include_router(sign_in.router)
    add_service_routes(app, metrics, health)
    _error_handlers(app)
    app.add_middleware(BodyLimit, limit=settings.scoring.max_bytes + MULTIPART_OVERHEAD,
                       paths=("/api/images",))
    app.add_middleware(SecurityHeaders)
    if settings.protect_reads:
        app.add_middleware(ReadGuard, token=settings.token or "")
    return app


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _error_handlers(app: FastAPI) -> None:
    def render(request: Request, status: int, message: str,
               headers: dict[str, str] | None = None) -> Response:
        if _is_api(request):
            return JSONResponse({"detail": message}, status, headers=headers)
        return context(request).templates.TemplateResponse(
            request, "error.html", {"status": status, "message": message}, status_code=status,
            headers=headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return render(request, exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(GalleryQueryError)
    async def query_error(request: Request, exc: GalleryQueryError) -> Response:
        return render(request, 400, str(exc))

    @app.exception_handler(ActionError)
    async def action_error(request: Request, exc: ActionError) -> Response:
        return render(request, exc.status, str(exc))

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError) -> Response:
        return render(request, 503, f"the database cannot be used right now: {exc}")

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        if _is_api(request):
            return JSONResponse({"detail": _jsonable(exc.errors())}, 422)
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}"
                             for e in exc.errors())
        return render(request, 400, problems)


def _jsonable(errors: Any) -> Any:
    from fastapi.encoders import jsonable_encoder

    return jsonable_encoder(errors, custom_encoder={Exception: str})


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes on ``paths`` with 413, by the announced
    length before reading anything, and by the bytes actually received otherwise (chunked
    uploads), before the multipart parser spools more to disk."""

    def __init__(self, app: ASGIApp, limit: int, paths: tuple[str, ...]) -> None:
        self.app = app
        self.limit = limit
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        message = (f"the upload is over the {self.limit - MULTIPART_OVERHEAD:,}-byte limit "
                   "per image")
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await JSONResponse({"detail": message}, 413,
                               headers={"Connection": "close"})(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            incoming = await receive()
            if incoming["type"] == "http.request":
                received += len(incoming.get("body", b""))
                if received > self.limit:
                    raise HTTPException(413, message)
            return incoming

        await self.app(scope, limited, send)


#: Pages load scripts, styles and pictures from this server only; the interactive API docs
#: send their own policy (:func:`pixelgrade.web.docs.docs_policy`: an inline start-up script).
CONTENT_SECURITY_POLICY = (b"default-src 'self'; img-src 'self' data:; object-src 'none'; "
                           b"base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


class SecurityHeaders:
    """nosniff and a referrer policy on every answer, a content security policy on pages."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope["path"] == "/api/docs"

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [(b"x-content-type-options", b"nosniff"),
                         (b"referrer-policy", b"same-origin")]
                if not docs:
                    extra.append((b"content-security-policy", CONTENT_SECURITY_POLICY))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


class ReadGuard:
    """With ``protect_reads``: every request but ``/static``, the icon, the sign-in form,
    ``/metrics`` and ``/healthz`` needs the token (Bearer header, the cookie, or ``?token=``
    on a page, which sets the cookie). A page refused is the 401 error page with the sign-in
    form on it."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    def _valid(self, value: str | None) -> bool:
        return bool(self.token) and value is not None and secrets.compare_digest(
            value.encode(), self.token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/static/") or (
                scope["path"] in ("/favicon.ico", "/sign-in", HOOK_PATH, *SERVICE_PATHS)):
            # the webhook has its own secret; /metrics and /healthz hold none
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        from_query = request.query_params.get("token")
        if (scheme.lower() == "bearer" and self._valid(bearer.strip())) or self._valid(
                request.cookies.get(COOKIE)):
            await self.app(scope, receive, send)
            return
        if self._valid(from_query):
            await self.app(scope, receive, _setting_cookie(send, from_query or ""))
            return
        await self._refusal(request)(scope, receive, send)

    def _refusal(self, request: Request) -> Response:
        """401, saying what is needed and how to get it: for a page, the error page with the
        sign-in form (back to this page once signed in)."""
        web: WebContext | None = getattr(request.app.state, "web", None)
        hint = web.settings.token_hint if web else f"the server's {TOKEN_VARIABLE}"
        if request.url.path.startswith("/api/") or web is None:
            detail = (f"this gallery is private: send 'Authorization: Bearer <token>' with "
                      f"{hint}, or sign in at /sign-in in a browser")
            return JSONResponse({"detail": detail}, 401, headers={"WWW-Authenticate": "Bearer"})
        query = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        here = request.url.path + (f"?{urlencode(query)}" if query else "")
        wrong = "token" in request.query_params
        message = ("this gallery is private: " + (
            "the token in this address is not the server's; " if wrong else "") +
            f"this browser needs the API token, {hint}")
        return web.templates.TemplateResponse(
            request, "error.html", {"status": 401, "message": message, "sign_in": True,
                                    "next": safe_next(here), "token_hint": hint,
                                    "has_token": bool(self.token)},
            status_code=401)


def token_cookie(token: str) -> str:
    """The Set-Cookie value that signs a browser in (read by :class:`ReadGuard`)."""
    return f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"


def safe_next(target: str) -> str:
    """``target`` if it is a path on this server (where to go after signing in), else ``/``:
    never another site (``//evil.example``, ``https://...``) nor the sign-in form itself."""
    if (not target.startswith("/") or target.startswith(("//", "/\\"))
            or target.split("?")[0] == "/sign-in" or any(c in target for c in "\r\n\\")):
        return "/"
    return target


def _setting_cookie(send: Send, token: str) -> Callable[[Message], Awaitable[None]]:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []),
                                              (b"set-cookie", token_cookie(token).encode())]}
        await send(message)
    return wrapped


def _filesize(value: int | None) -> str:
    if value is None:
        return "?"
    size = float(value)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{value} bytes"
