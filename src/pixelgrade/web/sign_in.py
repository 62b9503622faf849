"""Signing a browser in: the form at ``/sign-in``, which sets the same HttpOnly cookie as the
address ``pixelgrade serve`` prints (``/?token=...``, see :class:`pixelgrade.web.app.
ReadGuard`), for a token the browser was never given in an address: one from
``PIXELGRADE_API_TOKEN`` that ``serve`` does not print where it could end up in a log file.

The cookie lets the browser read a private gallery (``--protect-reads``); the page's script
also keeps the token it was given (``static/sign-in.js``), as it does for a ``?token=``
address, and sends it as the Bearer header of uploads and re-scores.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from pixelgrade.web.app import COOKIE, context, safe_next, token_cookie

router = APIRouter(include_in_schema=False)

PATH = "/sign-in"


@router.get(PATH)
async def sign_in_page(request: Request,
                       next_page: Annotated[str, Query(alias="next")] = "/") -> Response:
    return _page(request, safe_next(next_page))


@router.post(PATH)
async def sign_in(request: Request, token: Annotated[str, Form()] = "",
                  next_page: Annotated[str, Form(alias="next")] = "/") -> Response:
    """The right token: the cookie, and on to ``next``; else the form again, saying why."""
    expected = context(request).settings.token
    target = safe_next(next_page)
    if not expected:
        return _page(request, target, "this server has no API token, so there is nothing to "
                     "sign in with", status=403)
    if not secrets.compare_digest(token.strip().encode(), expected.encode()):
        return _page(request, target, "that is not this server's API token; check it and "
                     "try again", status=403)
    response = RedirectResponse(target, status_code=303)
    response.headers.append("set-cookie", token_cookie(expected))
    return response


def _page(request: Request, target: str, problem: str | None = None,
          status: int = 200) -> Response:
    web = context(request)
    expected = web.settings.token
    given = request.cookies.get(COOKIE)
    signed_in = bool(expected and given and secrets.compare_digest(
        given.encode(), expected.encode()))
    return web.templates.TemplateResponse(request, "sign_in.html", {
        "next": target, "problem": problem, "signed_in": signed_in,
        "has_token": bool(expected), "token_hint": web.settings.token_hint,
        "protect_reads": web.settings.protect_reads}, status_code=status)
