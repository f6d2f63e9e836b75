"""The outermost ASGI layer: security headers on every response, and the request body limits.

It sits outside Starlette's own error middleware, so even a 500 page carries the headers. The
body limit counts bytes as they arrive: a missing or false Content-Length cannot get a larger
body past it. The body must also keep coming: uvicorn waits for it without end, so a client
that announces a body and stops sending it kept its connection (and the request's task) for
as long as it liked. A body with no progress for ``BODY_IDLE_SECONDS``, or not complete
``BODY_DEADLINE_SECONDS`` after the request began, is answered 408 and the connection closed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mirage_mailer.web.i18n import N_

# No scripts at all. The archived newsletter needs inline style attributes and its one
# <style> block (media queries for phones), and images from here or from https sources.
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'",
    "img-src 'self' https:",
    "style-src 'self' 'unsafe-inline'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
))

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # links carry tokens: never leak them to other sites
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
# Pages hold tokens and CSRF fields; only archive pages and static files opt in to caching.
DEFAULT_CACHE = "no-store"
# Our forms are a few hundred bytes: a phone on a poor network sends them in well under this.
BODY_IDLE_SECONDS = 5.0  # the longest wait for the next part of a body
BODY_DEADLINE_SECONDS = 20.0  # the longest time to read a whole body


class ReaderError(HTTPException):
    """An error page whose detail is a msgid with parameters, translated where it is shown."""

    def __init__(self, status: int, message: str, **params: object) -> None:
        super().__init__(status, message % params if params else message)
        self.message = message
        self.params = params


class BodyTooLarge(ReaderError):
    """Raised from ``receive`` once the body passes the limit; answered with a 413 page."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, N_("The request is larger than this site accepts "
                                 "(%(limit)d bytes)."), limit=limit)


class BodyTimeout(ReaderError):
    """Raised from ``receive`` when the body stops coming; a 408 page that closes the
    connection (the rest of the body may still arrive: it must not be read as a request)."""

    def __init__(self) -> None:
        super().__init__(408, N_("The request stopped arriving before it was complete. "
                                 "Please send the form again."))
        self.headers = {"Connection": "close"}


class Guard:
    """Adds the security headers to every response and enforces ``max_body_bytes`` and the
    body's time limits.

    ``refuse`` builds the response for a request whose declared Content-Length alone is too
    large (answered before the application reads anything), in the request's language.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int,
                 refuse: Callable[[HTTPException, Scope], ASGIApp],
                 body_idle: float = BODY_IDLE_SECONDS,
                 body_deadline: float = BODY_DEADLINE_SECONDS) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.refuse = refuse
        self.body_idle = body_idle
        self.body_deadline = body_deadline

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                if "cache-control" not in headers:
                    headers["Cache-Control"] = DEFAULT_CACHE
            await send(message)

        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            if not (declared.isascii() and declared.isdigit()):  # "²" is a digit to Python
                bad = HTTPException(400, N_("The Content-Length header is not a number."))
                await self.refuse(bad, scope)(scope, receive, send_with_headers)
                return
            if int(declared) > self.max_body_bytes:
                too_large = BodyTooLarge(self.max_body_bytes)
                await self.refuse(too_large, scope)(scope, receive, send_with_headers)
                return

        limit = self.max_body_bytes
        received = 0
        body_done = False  # after the body, receive() waits for a disconnect: no time limit
        deadline = time.monotonic() + self.body_deadline

        async def limited_receive() -> Message:
            nonlocal received, body_done
            if body_done:
                return await receive()
            wait = min(self.body_idle, deadline - time.monotonic())
            try:
                message = await asyncio.wait_for(receive(), timeout=max(wait, 0.0))
            except TimeoutError:
                raise BodyTimeout() from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
                body_done = not message.get("more_body", False)
            else:
                body_done = True  # http.disconnect
            return message

        await self.app(scope, limited_receive, send_with_headers)
