"""uvicorn's h11 HTTP/1.1 protocol with a header deadline and JSON refusals.

uvicorn closes a connection that stays idle *after* a response (keep-alive), but nothing bounds
the time a client may take to send a request's headers: a fresh connection that sends nothing,
or one that trickles a header byte by byte, holds a socket forever. Here a connection waiting
for a request must complete its headers within ``header_timeout_s`` from its first byte (or from
being opened); a partial request then gets a 408, a silent one is just closed. Requests that are
not valid HTTP get the service's JSON error body instead of uvicorn's plain-text 400.

uvicorn takes the class through ``http=``; the timeouts travel as keyword arguments of a
:func:`functools.partial` (picklable, so ``--workers N`` subprocesses get it too).
"""
from __future__ import annotations

import asyncio
import functools
import json
from typing import Any, cast

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState


def raw_error(status: int, reason: str, error: str, detail: str) -> bytes:
    """A complete HTTP/1.1 error answer that closes the connection, for use outside any request."""
    body = json.dumps({"error": error, "detail": detail}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return head.encode("ascii") + body


class ImpastoH11Protocol(H11Protocol):
    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None, *,
                 header_timeout_s: float = 10.0, keep_alive_s: float = 5.0):
        super().__init__(config, server_state, app_state, _loop)
        self.header_timeout_s = header_timeout_s
        self.timeout_keep_alive = keep_alive_s  # type: ignore[assignment]  # uvicorn's own is whole seconds
        self._header_timer: asyncio.TimerHandle | None = None
        self._partial_request = False
        self._upgraded = False

    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._waiting_for_request():
            # Not while the unread body of an already answered request is still coming in: that
            # is cut off by the deadline too, but without an answer to a request never made.
            self._partial_request = self.conn.their_state is h11.IDLE
            self._arm_header_timer()
        else:  # the headers are complete: the request timeout of the app takes over
            self._cancel_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        # From here uvicorn's keep-alive timer bounds the idle time until the next request's first byte.
        self._partial_request = False
        super().on_response_complete()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._upgraded = True  # the connection now belongs to the WebSocket protocol: no deadline of ours
        self._cancel_header_timer()
        super().handle_websocket_upgrade(event)

    def send_400_response(self, msg: str) -> None:
        self._cancel_header_timer()
        self.transport.write(raw_error(400, "Bad Request", "bad_request", "invalid HTTP request"))
        self.transport.close()

    def _waiting_for_request(self) -> bool:
        """True between requests: no request in progress, or the last one fully answered."""
        return self.cycle is None or self.cycle.response_complete

    def _arm_header_timer(self) -> None:
        # Armed once per request: later bytes do not extend the deadline (that is what a slow client wants).
        if self._header_timer is None and not self._upgraded and not self.transport.is_closing():
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or not self._waiting_for_request():
            return
        if self._partial_request:
            self.transport.write(raw_error(408, "Request Timeout", "timeout",
                                           f"request headers not complete within {self.header_timeout_s:g} s"))
        self.transport.close()


def protocol_factory(header_timeout_s: float, keep_alive_s: float) -> type[asyncio.Protocol]:
    """What ``uvicorn.Config(http=...)`` takes: the protocol class with these timeouts bound.

    A partial, not a class, but uvicorn only calls it (``http_protocol_class(config=..., ...)``).
    """
    return cast("type[asyncio.Protocol]", functools.partial(
        ImpastoH11Protocol, header_timeout_s=header_timeout_s, keep_alive_s=keep_alive_s))
