"""The gallery's query layer: what the web page and the JSON API both show.

``pixelgrade serve`` renders HTML pages and answers ``/api/`` requests from the same
:class:`Gallery` calls, so the page and the API can never disagree about what "High" means, in
which order images come or why one has no score.

>>> from pixelgrade.gallery import Gallery
>>> from pixelgrade.stores import open_store
>>> gallery = Gallery(open_store("sqlite:///pixelgrade-demo/library.db"))  # doctest: +SKIP
>>> page = gallery.list(band="high", sort="score_desc", limit=24)       # doctest: +SKIP
>>> [(image.id, image.score) for image in page.items], page.next_cursor  # doctest: +SKIP

Pages are keyset pages: ``next_cursor`` is an opaque string naming the last row shown (its
score, or its creation time for "newest", and its id), and the next page starts right after
it, whatever was added or scored meanwhile; no ``OFFSET``, so page 2,000 costs what page 1
costs.

"Newest" is by the table's creation-time column (``--created-column``, or ``created_at`` when
the table has one), latest first, ties by id. A table without one has no notion of age: the
order is then the key's, labelled "Last added (by id)" for integer keys (which usually grow
as rows are added) and "Key order" for UUID or text keys (whose order says nothing about
age), which the gallery does not offer among its sorts (see :meth:`Gallery.sort_choices`).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import json
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pixelgrade.errors import PixelgradeError
from pixelgrade.scoring import Bands
from pixelgrade.scoring.subscores import GROUPS
from pixelgrade.stores.base import (
    BANDS,
    SORTS,
    Band,
    GalleryStore,
    ImageQuery,
    ImageRecord,
    Sort,
)
from pixelgrade.stores.sql import key_to_json
from pixelgrade.verify import Verification, verify

#: Images per page unless asked otherwise, and the most one page may hold.
DEFAULT_PAGE_SIZE = 48
MAX_PAGE_SIZE = 200

BAND_LABELS = {"all": "All", "high": "High", "medium": "Medium", "low": "Low",
               "unscored": "Unscored"}
SORT_LABELS = {"score_desc": "Score, high first", "score_asc": "Score, low first",
               "newest": "Newest"}
#: What "newest" means on a table: by its creation-time column, or by an integer key, or by
#: a key whose order says nothing about age (UUID, text).
NewestOrder = Literal["created", "id", "key"]
NEWEST_LABELS: dict[NewestOrder, str] = {"created": "Newest", "id": "Last added (by id)",
                                         "key": "Key order"}
#: The order components are listed in (the scorer's own order).
COMPONENT_ORDER = ("sharpness", "noise", "exposure", "contrast", "resolution", "compression",
                   "impulses", "banding")
#: Component -> the group the total judges it in (see pixelgrade.scoring.combine).
GROUP_OF = {name: group for group, names in GROUPS.items() for name in names}
PENDING_REASON = "not scored yet: run `pixelgrade backfill`, or re-score it here"


class GalleryQueryError(PixelgradeError, ValueError):
    """A list request that cannot be answered as asked: unknown band or sort, bad cursor."""



def utc_timestamp(value: Any) -> str | None:
    """One format for every backend: ``2026-12-02T09:55:27Z`` (UTC, whole seconds). SQLite
    holds text, PostgreSQL a ``timestamptz``, Supabase ISO text with an offset; a value without
    an offset is taken as UTC (that is how pixelgrade writes it)."""
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        try:
            value = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return str(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

@dataclass(frozen=True)
class ComponentView:
    """One component of a score: its sub-score and the measurement behind it."""

    name: str
    score: int | None
    value: float | None
    unit: str
    weight: float | None
    #: The group of components it is judged in for the total ("detail", "tone"...).
    group: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "score": self.score, "value": self.value, "unit": self.unit,
                "weight": self.weight}


@dataclass(frozen=True)
class ImageView:
    """One image as shown: score and band, or why there is none, and the evidence.

    ``state`` is ``scored``, ``skipped`` (nothing wrong: e.g. a vector image), ``failed``
    (``reason`` says why) or ``pending`` (not scored yet).
    """

    id: Any
    location: str | None
    score: int | None
    band: str | None
    state: str
    reason: str | None
    components: list[ComponentView] = field(default_factory=list)
    issues: list[dict[str, str]] = field(default_factory=list)
    #: What limits the total ("limited by exposure (39) and contrast (46)") and how the total is
    #: made, as the scorer wrote them (None for rows scored before scorer version 2).
    limits: str | None = None
    formula: str | None = None
    format: str | None = None
    width: int | None = None
    height: int | None = None
    bytes: int | None = None
    scorer_version: str | None = None
    scored_at: str | None = None
    #: The creation-time column's value, as the database gave it (the "newest" position).
    created: Any = None

    @property
    def key(self) -> str:
        """The id as it appears in URLs."""
        return str(key_to_json(self.id))

    @property
    def file_name(self) -> str:
        """The last part of the stored path or URL ("image 12" when the row has none)."""
        return file_name(self.location) or f"image {self.key}"

    @property
    def main_issue(self) -> str | None:
        """What costs a scored image most, in words: its worst issue, else what limits the
        total; None when neither was recorded (scored before scorer version 2) or unscored."""
        if self.issues:
            return self.issues[0]["message"]
        return self.limits

    @classmethod
    def from_record(cls, record: ImageRecord, bands: Bands) -> ImageView:
        details = record.details or {}
        state = record.state
        reason = details.get("reason")
        if state == "pending":
            reason = PENDING_REASON
        elif state == "failed" and not reason:
            reason = "failed (no reason was recorded)"
        raw = details.get("components") or {}
        names = [n for n in COMPONENT_ORDER if n in raw] + sorted(
            n for n in raw if n not in COMPONENT_ORDER)
        components = [ComponentView(name, _int(raw[name].get("score")),
                                    raw[name].get("value"), str(raw[name].get("unit") or ""),
                                    raw[name].get("weight"), GROUP_OF.get(name))
                      for name in names if isinstance(raw[name], dict)]
        issues = [{"code": str(i.get("code", "")), "message": str(i.get("message", ""))}
                  for i in details.get("issues") or [] if isinstance(i, dict)]
        scored_at = record.scored_at
        return cls(
            id=record.id, location=record.location, score=record.score,
            band=bands.band(record.score), state=state,
            reason=None if state == "scored" else reason, components=components,
            issues=issues if state == "scored" else [],
            limits=details.get("summary") if state == "scored" else None,
            formula=details.get("formula") if state == "scored" else None,
            format=details.get("format"), width=_int(details.get("width")),
            height=_int(details.get("height")), bytes=_int(details.get("bytes")),
            scorer_version=details.get("scorer_version"),
            scored_at=utc_timestamp(scored_at), created=record.created)

    def summary(self) -> dict[str, Any]:
        """The fields a list shows (the API's list items)."""
        return {"id": key_to_json(self.id), "location": self.location,
                "file_name": self.file_name, "score": self.score, "band": self.band,
                "state": self.state, "reason": self.reason, "main_issue": self.main_issue,
                "format": self.format, "width": self.width, "height": self.height}

    def to_dict(self) -> dict[str, Any]:
        """Everything (the API's single-image answer)."""
        return {**self.summary(), "components": [c.to_dict() for c in self.components],
                "issues": self.issues, "limited_by": self.limits, "formula": self.formula,
                "bytes": self.bytes,
                "scorer_version": self.scorer_version, "scored_at": self.scored_at}


@dataclass(frozen=True)
class Neighbours:
    """The images before and after one image in a band and sort (None: it is the first or
    the last)."""

    band: Band
    sort: Sort
    previous: ImageView | None
    next: ImageView | None


@dataclass(frozen=True)
class GalleryPage:
    band: Band
    sort: Sort
    limit: int
    items: list[ImageView]
    next_cursor: str | None


class Gallery:
    """Lists, counts and single images of a store, with one set of band thresholds."""

    def __init__(self, store: GalleryStore, bands: Bands | None = None) -> None:
        self.store = store
        self.bands = bands or Bands()

    @property
    def newest_order(self) -> NewestOrder:
        """What ``sort=newest`` orders this table by (see the module docstring)."""
        keys = self.store.sort_keys
        if keys.created_column is not None:
            return "created"
        return "id" if keys.integer_key else "key"

    @property
    def sort_labels(self) -> dict[str, str]:
        """Each sort's name as shown, "newest" saying what it really orders by."""
        return {**SORT_LABELS, "newest": NEWEST_LABELS[self.newest_order]}

    def sort_choices(self, current: str) -> list[str]:
        """The sorts the gallery offers: all of them, but key order of a UUID or text key
        (meaningless to a reader) only when it is the one asked for."""
        if self.newest_order == "key" and current != "newest":
            return [name for name in SORTS if name != "newest"]
        return list(SORTS)

    def list(self, band: str = "all", sort: str = "score_desc", cursor: str | None = None,
             limit: int = DEFAULT_PAGE_SIZE) -> GalleryPage:
        """One page of ``band`` in ``sort`` order, after ``cursor`` (a ``next_cursor``)."""
        _check_band_and_sort(band, sort)
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise GalleryQueryError(f"limit must be between 1 and {MAX_PAGE_SIZE}")
        after = self._decode_cursor(cursor, band, sort) if cursor else None
        page = self.store.list_images(ImageQuery(
            band=band, sort=sort, after=after, limit=limit,  # type: ignore[arg-type]
            high_from=self.bands.high_from, medium_from=self.bands.medium_from))
        next_cursor = None if page.next_after is None else encode_cursor(
            band, sort, page.next_after, self._order_of(sort))
        return GalleryPage(band, sort, limit,  # type: ignore[arg-type]
                           [ImageView.from_record(r, self.bands) for r in page.items],
                           next_cursor)

    def neighbours(self, image: ImageView, band: str = "all",
                   sort: str = "score_desc") -> Neighbours:
        """The images just before and just after ``image`` in the gallery's ``band`` and
        ``sort`` order (the image page's previous and next links): found from its (score, id)
        as a keyset page of one, so this costs what any page costs. An image outside ``band``
        (re-scored since) gets the band's images on either side of where it would be."""
        _check_band_and_sort(band, sort)
        if sort == "newest":
            by_created = self.store.sort_keys.created_column is not None
            position = (image.created if by_created else None, image.id)
        else:
            position = (image.score, image.id)

        def one(backward: bool) -> ImageView | None:
            page = self.store.list_images(ImageQuery(
                band=band, sort=sort, after=position, limit=1,  # type: ignore[arg-type]
                high_from=self.bands.high_from, medium_from=self.bands.medium_from,
                backward=backward))
            return ImageView.from_record(page.items[0], self.bands) if page.items else None

        return Neighbours(band, sort, one(backward=True), one(backward=False))  # type: ignore[arg-type]

    def counts(self) -> dict[str, int]:
        """Images per band (``all``, ``high``, ``medium``, ``low``, ``unscored``)."""
        return self.store.band_counts(self.bands.high_from, self.bands.medium_from)

    def get(self, key: str) -> ImageView | None:
        """The image whose id is ``key`` (as in a URL), or None."""
        record = self.store.get_image(key)
        return None if record is None else ImageView.from_record(record, self.bands)

    def get_record(self, key: str) -> ImageRecord | None:
        return self.store.get_image(key)

    def stats(self) -> Verification:
        """The ``pixelgrade verify`` figures."""
        return verify(self.store.stats(self.bands.high_from, self.bands.medium_from))

    def _order_of(self, sort: str) -> str | None:
        """What the first value of a ``sort`` cursor is: None for a score; the creation-time
        column's name for "newest" (so that a cursor made before a restart with another
        --created-column is refused instead of misread)."""
        if sort != "newest":
            return None
        return self.store.sort_keys.created_column or "id"

    def _decode_cursor(self, cursor: str, band: str, sort: str) -> tuple[Any, Any]:
        cursor_band, cursor_sort, value, key, order = decode_cursor(cursor)
        if (cursor_band, cursor_sort) != (band, sort):
            raise GalleryQueryError(
                f"this cursor continues band={cursor_band}&sort={cursor_sort}, not "
                f"band={band}&sort={sort}: start again without a cursor")
        if order != self._order_of(sort):
            raise GalleryQueryError("this cursor was made for another order of the table "
                                    "(the server was restarted with other options): start "
                                    "again without a cursor")
        if sort != "newest" and not (value is None or (isinstance(value, int)
                                                       and not isinstance(value, bool))):
            raise GalleryQueryError("the cursor is not one this server made")
        try:
            return value, self.store.key_from_json(key)
        except (TypeError, ValueError) as exc:
            raise GalleryQueryError("the cursor does not name a row of this table") from exc


def _check_band_and_sort(band: str, sort: str) -> None:
    if band not in BANDS:
        raise GalleryQueryError(f"unknown band {band!r}: use one of {', '.join(BANDS)}")
    if sort not in SORTS:
        raise GalleryQueryError(f"unknown sort {sort!r}: use one of {', '.join(SORTS)}")


def file_name(location: str | None) -> str | None:
    """The last part of a stored path or URL, as a person would name the file:
    ``"https://cdn.example.com/u/7/IMG_0042.JPG?w=800"`` -> ``"IMG_0042.JPG"`` (a URL's
    query dropped, %-escapes decoded), ``"photos/2019/beach.png"`` -> ``"beach.png"``, a URL
    without a path -> its host; None for an empty location."""
    value = (location or "").strip()
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme.lower() in ("http", "https") and parts.netloc:
        name = parts.path.rstrip("/").rsplit("/", 1)[-1]
        return unquote(name) if name else parts.hostname or parts.netloc
    return value.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or value


def encode_cursor(band: str, sort: str, after: tuple[Any, Any], order: str | None = None
                  ) -> str:
    """An opaque, URL-safe cursor for the row ``after`` = (score or creation time, id);
    ``order``: what the first value is (see :meth:`Gallery._order_of`)."""
    fields = [band, sort, _value_to_json(after[0]), key_to_json(after[1])]
    if order is not None:
        fields.append(order)
    text = json.dumps(fields, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str, Any, Any, str | None]:
    """(band, sort, value, id, order) from :func:`encode_cursor`'s output."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        fields = json.loads(raw)
        band, sort, value, key = fields[:4]
        order = fields[4] if len(fields) == 5 else None
        if len(fields) > 5 or not (order is None or isinstance(order, str)):
            raise ValueError("too many fields")
        value = _value_from_json(value)
    except (ValueError, binascii.Error, TypeError, KeyError, decimal.InvalidOperation) as exc:
        raise GalleryQueryError("the cursor is not one this server made: start again without "
                                "it") from exc
    return str(band), str(sort), value, key, order


def _value_to_json(value: Any) -> Any:
    """A position value (a score, or a creation time as the database gave it) as JSON that
    :func:`_value_from_json` turns back into the same value: times and decimals are tagged."""
    if isinstance(value, dt.datetime):
        return {"t": value.isoformat()}
    if isinstance(value, dt.date):
        return {"d": value.isoformat()}
    if isinstance(value, decimal.Decimal):
        return {"n": str(value)}
    if value is None or isinstance(value, int | float | str):
        return value
    raise TypeError(f"cannot page by a {type(value).__name__} value")


def _value_from_json(value: Any) -> Any:
    if isinstance(value, dict):
        ((tag, text),) = value.items()
        if not isinstance(text, str):
            raise ValueError("bad value")
        if tag == "t":
            return dt.datetime.fromisoformat(text)
        if tag == "d":
            return dt.date.fromisoformat(text)
        if tag == "n":
            return decimal.Decimal(text)
        raise ValueError(f"unknown tag {tag!r}")
    if isinstance(value, list):
        raise ValueError("bad value")
    return value


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
