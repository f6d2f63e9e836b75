"""What serve's log may say about a request: paths carry personal tokens (``/u/<token>``),
which is why the access log is off by default; error lines must not leak them either."""

from __future__ import annotations

from starlette.requests import Request


def logged_path(request: Request) -> str:
    """The request's path with every path parameter shown by name (``/u/{token}``)."""
    path = request.url.path
    params = request.scope.get("path_params") or {}
    for name, value in params.items():
        text = str(value)
        if text:
            path = path.replace(text, "{" + name + "}")
    return path
