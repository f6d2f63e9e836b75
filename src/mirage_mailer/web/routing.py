"""One route per path, whatever methods it takes.

Starlette answers a method no route of a path takes with the first route that matched the
path, so two routes (GET, then POST) for one path answered 405 with ``Allow: HEAD, GET``,
hiding the POST. RFC 9110 §15.5.6 asks for every method the resource supports.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def page_and_form(path: str, *, show: Callable[[Request], Response],
                  post: Callable[[Request], Awaitable[Response]]) -> Route:
    """One route for a page (GET, HEAD: ``show``, which reads the store and so runs in the
    thread pool, as Starlette ran it on a route of its own) and its form (POST: ``post``)."""

    async def endpoint(request: Request) -> Response:
        if request.method == "POST":
            return await post(request)
        return await run_in_threadpool(show, request)

    return Route(path, endpoint, methods=["GET", "POST"])
