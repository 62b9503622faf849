"""HTML pages: the gallery grid, one image, statistics; the pictures they show, an image's
original file on request, and the site's icon."""

from __future__ import annotations

import asyncio
import hashlib
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from pixelgrade.gallery import BAND_LABELS, DEFAULT_PAGE_SIZE, file_name
from pixelgrade.scoring.sniff import DECODED_FORMATS, sniff
from pixelgrade.stores.base import BANDS
from pixelgrade.web import charts
from pixelgrade.web.app import context
from pixelgrade.web.favicon import favicon_ico
from pixelgrade.web.media import PLACEHOLDER_SVG, RENDITIONS, SourceError, render

router = APIRouter(include_in_schema=False)

STATUS_CLASSES = {"scored": "band-high", "skipped": "neutral", "failed": "band-low",
                  "pending": "band-medium"}


@router.get("/", response_class=HTMLResponse)
async def gallery_page(request: Request, band: str = "all", sort: str = "score_desc",
                       cursor: str | None = None, fragment: bool = False) -> Response:
    """The grid. ``fragment=1``: only the cards and the next link (infinite scroll)."""
    web = context(request)
    limit = web.settings.page_size or DEFAULT_PAGE_SIZE
    page = await asyncio.to_thread(web.gallery.list, band, sort, cursor, limit)
    values = {"page": page, "band_names": BANDS, "sorts": web.gallery.sort_choices(page.sort)}
    if fragment:
        return web.templates.TemplateResponse(request, "_cards.html", values)
    counts = await asyncio.to_thread(web.gallery.counts)
    return web.templates.TemplateResponse(request, "gallery.html", {
        **values, "counts": counts, "max_bytes": web.settings.scoring.max_bytes,
        "continued": cursor is not None, "preview_notice": web.refusals.notice()})


@router.get("/images/{key}", response_class=HTMLResponse)
async def image_page(request: Request, key: str, band: str = "all",
                     sort: str = "score_desc") -> Response:
    """One image; ``band`` and ``sort``: the gallery order its previous/next links follow."""
    web = context(request)
    view = await asyncio.to_thread(web.gallery.get, key)
    if view is None:
        raise HTTPException(404, f"no image with id {key}")
    neighbours = await asyncio.to_thread(web.gallery.neighbours, view, band, sort)
    return web.templates.TemplateResponse(request, "image.html", {
        "image": view, "neighbours": neighbours})


#: Original files are sent as what their bytes are, for the browser to show only when they are
#: a raster image pixelgrade decodes; anything else (an SVG with script, an HTML page) is a
#: download, and no original may run anything on this site.
ORIGINAL_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"


@router.get("/originals/{key}")
async def original(request: Request, key: str) -> Response:
    """The image's own bytes, from where its row points (the same guards as the thumbnails:
    the root folder, the network guard, the size cap)."""
    web = context(request)
    record = await asyncio.to_thread(web.gallery.get_record, key)
    if record is None:
        raise HTTPException(404, f"no image with id {key}")
    reader = web.reader
    assert reader is not None, "the app's lifespan has not started"
    try:
        data = await reader.read(record)
    except SourceError as exc:  # its message may name this server's folders: not shown
        raise HTTPException(404, f"the original of image {key} cannot be read (missing, "
                                 "unreadable, refused or over the size limit): check that "
                                 f"{record.location!r} still leads to the file") from exc
    name = file_name(record.location) or f"image-{key}"
    found = sniff(data)
    viewable = found.kind == "raster" and found.format in DECODED_FORMATS
    media_type = f"image/{str(found.format).lower()}" if viewable else "application/octet-stream"
    disposition = "inline" if viewable else "attachment"
    return Response(data, media_type=media_type, headers={
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(name)}",
        "Content-Security-Policy": ORIGINAL_CSP,
        "Cache-Control": ("private" if web.settings.protect_reads else "public")
        + ", max-age=300"})


@router.get("/favicon.ico")
async def favicon() -> Response:
    return Response(favicon_ico(), media_type="image/x-icon",
                    headers={"Cache-Control": "public, max-age=86400"})


@router.get("/stats", response_class=HTMLResponse)
async def stats_page(request: Request) -> Response:
    web = context(request)
    verification = await asyncio.to_thread(web.gallery.stats)
    stats = verification.stats
    bands = {BAND_LABELS[name]: count for name, count in stats.bands.items()}
    order = ("scored", "skipped", "failed", "pending")
    statuses = {name: stats.statuses.get(name, 0) for name in order}
    statuses.update({k: v for k, v in stats.statuses.items() if k not in order})
    return web.templates.TemplateResponse(request, "stats.html", {
        "figures": verification.to_dict(), "warnings": verification.warnings,
        "histogram": charts.histogram(stats.histogram, web.settings.bands),
        "band_chart": charts.bar_chart("Images per band", bands, {
            "High": "band-high", "Medium": "band-medium", "Low": "band-low",
            "Unscored": "neutral"}),
        "status_chart": charts.bar_chart("Images per status", statuses, STATUS_CLASSES)})


@router.get("/thumbs/{key}/{rendition}.jpg")
async def picture(request: Request, key: str, rendition: str) -> Response:
    """A JPEG rendition of the image (cached on disk), or a placeholder when there is none
    to make: a missing or unreadable file never makes the page fail."""
    web = context(request)
    size = RENDITIONS.get(rendition)
    if size is None:
        raise HTTPException(404, f"no rendition {rendition!r}: use thumb or large")
    record = await asyncio.to_thread(web.gallery.get_record, key)
    if record is None:
        return _placeholder(404)
    reader = web.reader
    assert reader is not None, "the app's lifespan has not started"
    version = await asyncio.to_thread(reader.version, record)
    path = web.cache.path(record, version, size)
    etag = f'"{path.stem}"'
    cache_control = ("private" if web.settings.protect_reads else "public") + ", max-age=3600"
    headers = {"Cache-Control": cache_control, "ETag": etag}
    if request.headers.get("if-none-match") == etag and path.exists():
        return Response(status_code=304, headers=headers)
    if path.exists():
        return FileResponse(path, media_type="image/jpeg", headers=headers)
    try:
        data = await reader.read(record)
        jpeg = await asyncio.get_running_loop().run_in_executor(
            web.thumbnail_pool, render, data, size, web.settings.scoring.max_pixels)
    except SourceError:
        return _placeholder(200)
    await asyncio.to_thread(web.cache.save, path, jpeg)
    return Response(jpeg, media_type="image/jpeg", headers=headers)


def _placeholder(status: int) -> Response:
    return Response(PLACEHOLDER_SVG, status_code=status, media_type="image/svg+xml",
                    headers={"Cache-Control": "no-cache",
                             "ETag": f'"{hashlib.sha256(PLACEHOLDER_SVG).hexdigest()[:16]}"',
                             "X-Pixelgrade-Placeholder": "1"})
