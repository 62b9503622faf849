"""Storage object paths from the table stay inside their bucket."""

from __future__ import annotations

import httpx
import pytest

from pixelgrade.errors import FetchError
from pixelgrade.sources.storage import StorageBucket

BUCKET = StorageBucket("https://abc.supabase.co", "photos", key="service-key")


@pytest.mark.parametrize(("stored", "path"), [
    ("a.jpg", "/storage/v1/object/photos/a.jpg"),
    ("/photos/2024/a b.jpg", "/storage/v1/object/photos/2024/a%20b.jpg"),
    ("x/%2e%2e/y.jpg", "/storage/v1/object/photos/x/%252e%252e/y.jpg"),
    ("what?.jpg#x", "/storage/v1/object/photos/what%3F.jpg%23x"),
])
def test_paths_are_encoded_segment_by_segment(stored: str, path: str) -> None:
    url = BUCKET.url_for(stored)
    assert httpx.URL(url).raw_path.decode() == path
    assert httpx.URL(url).host == "abc.supabase.co"


@pytest.mark.parametrize("stored", ["../../rest/v1/users?select=*", "a/../../b.jpg",
                                    "photos/../x.jpg", "a//b.jpg", "./a.jpg", "a/.."])
def test_dot_segments_cannot_leave_the_bucket(stored: str) -> None:
    with pytest.raises(FetchError) as caught:
        BUCKET.url_for(stored)
    assert caught.value.kind == "invalid_path" and not caught.value.transient
    assert "service-key" not in str(caught.value)
