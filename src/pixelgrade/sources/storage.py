"""Images kept in Supabase Storage: a bucket name plus the path stored in the table.

Private buckets are read through the Storage API's download endpoint
(``/storage/v1/object/<bucket>/<path>``) with the service-role key; public buckets through
their public URL (``/storage/v1/object/public/<bucket>/<path>``), with no credentials at all.
The key is sent to the project's own origin only (see ``HttpFetcher(origin_headers=...)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote

from pixelgrade.errors import FetchError


@dataclass(frozen=True)
class StorageBucket:
    project_url: str
    bucket: str
    public: bool = False
    key: str = field(default="", repr=False)

    def url_for(self, path: str) -> str:
        """The download URL of ``path`` (as stored in the table) in this bucket.

        Each segment is percent-encoded on its own, and ``.``, ``..`` and empty segments are
        refused (:class:`FetchError`): URLs are normalised (RFC 3986, section 5.2.4), so
        ``../../rest/v1/...`` would otherwise lead out of the bucket to another endpoint of
        the project, with the service-role key attached.
        """
        path = path.strip().lstrip("/")
        prefix = f"{self.bucket}/"
        if path.startswith(prefix):  # some apps store "bucket/path"
            path = path[len(prefix):]
        segments = path.split("/")
        if any(segment in ("", ".", "..") for segment in segments):
            shown = path if len(path) <= 200 else path[:200] + "…"
            raise FetchError(f"{shown}: not an object path of bucket {self.bucket} ('.', '..' "
                             "and empty segments are refused); fix the value in the table",
                             kind="invalid_path", transient=False)
        kind = "object/public" if self.public else "object"
        return (f"{self.project_url.rstrip('/')}/storage/v1/{kind}/{quote(self.bucket, safe='')}"
                f"/{'/'.join(quote(segment, safe='') for segment in segments)}")

    def credentials(self) -> dict[str, dict[str, str]]:
        """Headers per origin for the fetcher (none for a public bucket)."""
        if self.public or not self.key:
            return {}
        return {self.project_url: {"Authorization": f"Bearer {self.key}", "apikey": self.key}}
