"""The gallery's query layer without a server: file names, and neighbours in every order."""

from __future__ import annotations

from pathlib import Path

import pytest

from pixelgrade.gallery import Gallery, file_name
from pixelgrade.stores import SqlStore, TableSpec
from pixelgrade.stores.base import BANDS, SORTS, ImageQuery
from tests.web.conftest import LIBRARY, all_rows, fill, reference_order


@pytest.mark.parametrize(("location", "name"), [
    ("https://cdn.example.com/u/7/IMG_0042.JPG?w=800", "IMG_0042.JPG"),
    ("https://cdn.example.com/a/beach%20day.png#top", "beach day.png"),
    ("https://cdn.example.com", "cdn.example.com"),
    ("https://cdn.example.com/", "cdn.example.com"),
    ("photos/2019/beach.png", "beach.png"),
    ("/srv/images/x.webp", "x.webp"),
    ("C:\\pictures\\cat.jpg", "cat.jpg"),
    ("bucket/folder/", "folder"),
    ("odd?name.jpg", "odd?name.jpg"),  # a local name keeps what a URL would lose
    ("plain.jpg", "plain.jpg"),
    ("", None), ("   ", None), (None, None),
])
def test_file_name_is_the_last_part_of_the_path_or_url(location: str | None,
                                                       name: str | None) -> None:
    assert file_name(location) == name


def test_an_image_without_a_location_is_named_by_its_id(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'images.db'}", TableSpec(), must_exist=False,
                     inspect=False)
    store.init()
    key = store.insert_image("  ")
    view = Gallery(store).get(key)
    assert view is not None and view.file_name == f"image {key}"
    store.close()


@pytest.mark.parametrize("sort", SORTS)
@pytest.mark.parametrize("band", BANDS)
def test_neighbours_are_the_images_on_either_side_in_every_order(
        db_url: str, band: str, sort: str) -> None:
    """Every image's previous and next, on SQLite and PostgreSQL, are its neighbours in the
    documented order of the band (ties and unscored rows included)."""
    store = SqlStore(db_url, TableSpec(), must_exist=False, inspect=False)
    store.init()
    fill(store, LIBRARY)
    gallery = Gallery(store)
    order = reference_order(all_rows(store), band, sort)
    for index, key in enumerate(order):
        view = gallery.get(key)
        assert view is not None
        around = gallery.neighbours(view, band, sort)
        assert (around.previous.id if around.previous else None) == (
            order[index - 1] if index else None), (key, "previous")
        assert (around.next.id if around.next else None) == (
            order[index + 1] if index + 1 < len(order) else None), (key, "next")
    backward = store.list_images(ImageQuery(band=band, sort=sort, limit=100,  # type: ignore
                                            backward=True))
    assert [r.id for r in backward.items] == order[::-1]  # from the end, nearest first
    store.close()
