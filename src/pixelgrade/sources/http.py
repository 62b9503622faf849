"""http(s) URLs, streamed with the size cap enforced while reading.

A minimal synchronous reader for ``pixelgrade score URL``. The announced Content-Length is used
only to refuse early; the cap is enforced on the bytes actually received, so a server that lies
about the length cannot make us buffer more than the cap. Content type headers are ignored: what
the bytes are is decided by sniffing them (:mod:`pixelgrade.scoring.sniff`).
"""

from __future__ import annotations

import httpx

from pixelgrade.errors import FetchError, ImageTooLargeError

#: Connect, read, write and pool timeouts, seconds.
TIMEOUT = httpx.Timeout(20.0, connect=10.0)
USER_AGENT = "pixelgrade (image quality scoring; +https://pypi.org/project/pixelgrade/)"


def is_url(location: str) -> bool:
    """True for http:// and https:// locations (case-insensitive scheme)."""
    return location.lower().startswith(("http://", "https://"))


def read_url(url: str, max_bytes: int, *, client: httpx.Client | None = None) -> bytes:
    """GET ``url`` and return its body, at most ``max_bytes`` of it."""
    own_client = client is None
    client = client or httpx.Client(timeout=TIMEOUT, follow_redirects=True, max_redirects=5,
                                    headers={"User-Agent": USER_AGENT})
    try:
        with client.stream("GET", url) as response:
            if response.status_code >= 400:
                raise FetchError(f"HTTP {response.status_code} {response.reason_phrase} from {url}")
            announced = response.headers.get("content-length")
            if announced and announced.isdigit() and int(announced) > max_bytes:
                raise ImageTooLargeError(
                    f"server announces {int(announced):,} bytes, over the {max_bytes:,}-byte limit"
                )
            chunks: list[bytes] = []
            received = 0
            for chunk in response.iter_bytes():
                received += len(chunk)
                if received > max_bytes:
                    raise ImageTooLargeError(
                        f"response exceeded the {max_bytes:,}-byte limit while downloading"
                    )
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.TimeoutException as exc:
        raise FetchError(f"timed out fetching {url}") from exc
    except httpx.TooManyRedirects as exc:
        raise FetchError(f"too many redirects fetching {url}") from exc
    except httpx.HTTPError as exc:
        raise FetchError(f"could not fetch {url}: {exc}") from exc
    finally:
        if own_client:
            client.close()
