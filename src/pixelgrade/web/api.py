"""The JSON API under ``/api/`` (schema at ``/api/openapi.json``, browsable at ``/api/docs``).

Same filters, orders and cursors as the gallery page, from the same :class:`Gallery` calls.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from pixelgrade.gallery import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, ImageView
from pixelgrade.web.app import context, require_token

router = APIRouter(prefix="/api", tags=["images"])

State = Literal["scored", "skipped", "failed", "pending"]


class ImageSummary(BaseModel):
    id: int | str
    location: str | None = Field(description="The URL or path stored in the table.")
    file_name: str = Field(description="The last part of that path or URL (what the gallery "
                           "names the image by).")
    score: int | None = Field(description="0-100; null when the image has no score.")
    band: Literal["high", "medium", "low"] | None
    state: State = Field(description="scored; skipped (e.g. a vector image: nothing wrong); "
                         "failed (see reason); pending (not scored yet).")
    reason: str | None = Field(description="Why there is no score (null when scored).")
    main_issue: str | None = Field(description="What costs a scored image most: its worst "
                                   "issue, else what limits the total (null when unscored, "
                                   "or nothing was recorded).")
    format: str | None
    width: int | None
    height: int | None
    thumbnail: str = Field(description="A small JPEG rendition (never the original).")
    page: str


class Component(BaseModel):
    name: str
    score: int | None
    value: float | None
    unit: str
    weight: float | None


class Issue(BaseModel):
    code: str
    message: str = Field(description='In words, e.g. "blurry: nothing is in focus; even where '
                         'the picture is sharpest, edges spread over ~5.1 px at 1024 px".')


class ImageDetail(ImageSummary):
    components: list[Component]
    issues: list[Issue] = Field(description="In order of what they cost the score.")
    limited_by: str | None = Field(None, description='What limits the total, e.g. "limited by '
                                   'exposure (39) and contrast (46)"; null when nothing does or '
                                   "for rows scored before scorer version 2.")
    formula: str | None = Field(None, description="How the total is made from the sub-scores, "
                                "with this image's numbers.")
    bytes: int | None
    scorer_version: str | None
    scored_at: str | None


class ImageUploaded(ImageDetail):
    note: str | None = Field(None, description="Set when the new row was scored by another "
                             "process (e.g. `pixelgrade watch`) before the upload wrote its "
                             "score: that first result is kept and shown.")


class ImageList(BaseModel):
    band: str
    sort: str
    limit: int
    items: list[ImageSummary]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null "
                                    "on the last page.")


class Counts(BaseModel):
    all: int
    high: int
    medium: int
    low: int
    unscored: int


class Stats(BaseModel):
    total_images: int
    images_with_scores: int
    images_without_scores: int
    avg_quality_score: float | None
    min_quality_score: int | None
    max_quality_score: int | None
    bands: dict[str, int]
    statuses: dict[str, int]
    histogram: dict[str, int]
    complete: bool
    warnings: list[str]
    thresholds: dict[str, int]


class Problem(BaseModel):
    detail: str


def summary(view: ImageView) -> dict[str, Any]:
    return {**view.summary(), "thumbnail": f"/thumbs/{view.key}/thumb.jpg",
            "page": f"/images/{view.key}"}


def detail(view: ImageView) -> dict[str, Any]:
    return {**view.to_dict(), "thumbnail": f"/thumbs/{view.key}/thumb.jpg",
            "page": f"/images/{view.key}"}


BandParam = Annotated[Literal["all", "high", "medium", "low", "unscored"], Query(
    description="high: score >= the High threshold (70); medium: >= Medium (40); low: below; "
    "unscored: no score (skipped, failed or pending).")]
SortParam = Annotated[Literal["score_desc", "score_asc", "newest"], Query(
    description="score_desc/score_asc: by score, ties by id (same direction), unscored images "
    "last; newest: by the table's creation-time column (`serve --created-column`, or "
    "created_at when the table has one), latest first, ties by id, rows without a time last; "
    "on a table without one, by id, highest first (key order: meaningless for UUID keys).")]


@router.get("/images", response_model=ImageList, responses={400: {"model": Problem}})
async def list_images(request: Request, band: BandParam = "all",
                      sort: SortParam = "score_desc",
                      cursor: Annotated[str | None, Query(
                          description="next_cursor of the previous page.")] = None,
                      limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
                      ) -> dict[str, Any]:
    """A page of images, keyset-paginated (stable: no repeats or gaps between pages)."""
    page = await asyncio.to_thread(context(request).gallery.list, band, sort, cursor, limit)
    return {"band": page.band, "sort": page.sort, "limit": page.limit,
            "items": [summary(v) for v in page.items], "next_cursor": page.next_cursor}


@router.get("/images/{key}", response_model=ImageDetail, responses={404: {"model": Problem}})
async def get_image(request: Request, key: str) -> Any:
    """One image: score, band, each component's sub-score, the issues in words."""
    view = await asyncio.to_thread(context(request).gallery.get, key)
    if view is None:
        return JSONResponse({"detail": f"no image with id {key}"}, 404)
    return detail(view)


@router.post("/images", response_model=ImageUploaded, status_code=201,
             dependencies=[Depends(require_token)],
             responses={401: {"model": Problem}, 403: {"model": Problem},
                        413: {"model": Problem, "description": "Over the size cap."},
                        415: {"model": Problem, "description": "Not a raster image."},
                        422: {"model": Problem, "description": "Cannot be scored (corrupt, "
                              "truncated, or a decompression bomb)."}})
async def upload_image(request: Request, file: Annotated[UploadFile, File(
        description="One image; its bytes decide what it is, not its name.")]) -> Any:
    """Add an image: checked, stored under a generated name, scored before the answer."""
    web = context(request)
    async with web.actions.upload_slots:
        data = await file.read(web.settings.scoring.max_bytes + 1)
        await file.close()
        uploaded = await web.actions.upload(data)
    view = uploaded.view
    return JSONResponse({**detail(view), "note": uploaded.note}, 201,
                        headers={"Location": f"/api/images/{view.key}"})


@router.post("/images/{key}/rescore", response_model=ImageDetail,
             dependencies=[Depends(require_token)],
             responses={401: {"model": Problem}, 403: {"model": Problem},
                        404: {"model": Problem},
                        503: {"model": Problem, "description": "The source could not be "
                              "read this time (timeout, 5xx): nothing was written."}})
async def rescore_image(request: Request, key: str) -> dict[str, Any]:
    """Score the image again from its source, overwriting the stored result."""
    return detail(await context(request).actions.rescore(key))


@router.get("/counts", response_model=Counts, tags=["stats"])
async def counts(request: Request) -> dict[str, int]:
    """Images per band (the gallery's filter chips)."""
    return await asyncio.to_thread(context(request).gallery.counts)


@router.get("/stats", response_model=Stats, tags=["stats"])
async def stats(request: Request) -> dict[str, Any]:
    """The `pixelgrade verify` figures."""
    web = context(request)
    figures = (await asyncio.to_thread(web.gallery.stats)).to_dict()
    bands = web.settings.bands
    return {**figures, "thresholds": {"high": bands.high_from, "medium": bands.medium_from}}
