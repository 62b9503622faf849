"""``pixelgrade serve``: the gallery (HTML pages) and the JSON API over one store.

>>> from pixelgrade.stores import open_store
>>> from pixelgrade.web import WebSettings, create_app
>>> store = open_store("sqlite:///library.db")                  # doctest: +SKIP
>>> app = create_app(store, WebSettings(token="s3cret"))          # doctest: +SKIP

Run it with any ASGI server (``uvicorn``), or with ``pixelgrade serve``.
"""

from pixelgrade.web.app import WebSettings, create_app

__all__ = ["WebSettings", "create_app"]
