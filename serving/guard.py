"""Who may talk to the service from a browser: the ``Host`` and ``Origin`` checks.

* ``Host``: a service on localhost is reachable from any web page through DNS rebinding (the
  attacker's name resolves to 127.0.0.1, the browser sends ``Host: attacker.example``). Only the
  allowed host names are answered (default: localhost, 127.0.0.1, ::1 and the bound address).
* ``Origin``: a multipart form post is a "simple" request that browsers send cross-origin without a
  CORS preflight, so any page could spend the server's compute. Requests that change or compute
  (anything but GET/HEAD/OPTIONS) carrying an ``Origin`` other than the server's own or an allowed
  one are refused. Clients that are not browsers send no ``Origin`` and are not affected.
  A WebSocket handshake is checked like such a request: browsers open one to any origin without
  a CORS check, and a stream spends compute on every frame.

Refusals use the service's JSON error body (Starlette's TrustedHostMiddleware answers in plain text).
"""
from __future__ import annotations

from urllib.parse import urlsplit

from impasto.serving.http_errors import error_response

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def host_name(host: str) -> str:
    """``Example.COM:8000`` -> ``example.com``; ``[::1]:8000`` -> ``::1``; a trailing dot is dropped."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end > 0 else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def host_allowed(name: str, patterns: tuple[str, ...]) -> bool:
    """``*`` allows every host, ``*.example.com`` any subdomain of it, anything else is exact."""
    for pattern in patterns:
        pattern = host_name(pattern) if pattern != "*" else pattern
        if pattern == "*" or name == pattern:
            return True
        if pattern.startswith("*.") and name.endswith(pattern[1:]):
            return True
    return False


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


class GuardMiddleware:
    """Pure ASGI middleware: 400 for a ``Host`` not allowed, 403 for a cross-origin unsafe request
    (a refused WebSocket handshake gets the same HTTP answer)."""

    def __init__(self, app, allowed_hosts: tuple[str, ...], allowed_origins: tuple[str, ...] = (), metrics=None):
        self.app, self.metrics = app, metrics
        self.allowed_hosts = allowed_hosts
        self.allowed_origins = frozenset(o.rstrip("/").lower() for o in allowed_origins)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        refusal = self._refusal(scope)
        if refusal is None:
            return await self.app(scope, receive, send)
        status, error, detail = refusal
        if self.metrics is not None:
            self.metrics.count_error(scope, error)
        await error_response(status, error, detail)(scope, receive, send)

    def _refusal(self, scope) -> tuple[int, str, str] | None:
        host = _header(scope, b"host")
        # No Host at all is HTTP/1.0 from a non-browser client: browsers always send one.
        if host is not None and not host_allowed(host_name(host), self.allowed_hosts):
            return (400, "host_not_allowed", f"host {host_name(host)[:100]!r} is not served here; "
                    "start the service with --allowed-hosts NAME,... (or '*') to allow it")
        origin = _header(scope, b"origin")
        if origin is None or scope.get("method") in SAFE_METHODS or "*" in self.allowed_origins:
            return None
        origin = origin.strip().rstrip("/").lower()
        # The server's own origin: same host and port as the request's Host (the scheme is left
        # out so that a TLS-terminating proxy in front does not turn the web page away).
        if host is not None and urlsplit(origin).netloc == host.strip().lower():
            return None
        if origin in self.allowed_origins:
            return None
        return (403, "cross_origin", f"requests from origin {origin[:100]!r} are not allowed; "
                "start the service with --allowed-origins ORIGIN,... to allow them")
