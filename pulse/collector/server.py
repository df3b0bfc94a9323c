"""Run the collector on uvicorn (uvloop + httptools), one process: ``pulse collect``.

SIGTERM / SIGINT shut it down gracefully: uvicorn stops accepting, lets the requests in flight finish, then
the lifespan shutdown commits what is pending and rolls the open segment into the landing zone.

Request headers are bounded (:func:`bounded_headers_protocol`): httptools has no limit of its own and builds a
header value by concatenating every piece as it arrives, so a header of tens of megabytes costs the event loop
seconds of copying while every other request waits. The protocol counts the bytes of a request's head as they
arrive and answers 431 as soon as they pass ``max_header_bytes``; the rest of the head is never parsed. (A head
that arrives whole in one read, up to a few hundred kilobytes, is measured once parsed and refused the same way.)
It then closes the connection the way that lets the client read the 431 (a lingering close): it stops writing (FIN),
drops what the client still sends for up to ``LINGER_SECONDS`` or ``LINGER_BYTES``, then closes. (Closing at
once with unread bytes in the socket sends a reset, and the client loses the answer.)
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from pulse.collector.app import Collector, CollectorSettings
from pulse.collector.metrics import Metrics

log = logging.getLogger(__name__)

LINGER_SECONDS = 2.0
LINGER_BYTES = 8 << 20


class _HeadTooLarge(Exception):
    """Raised from the parser's callback: httptools turns it into a parser error, which uvicorn answers 400;
    :meth:`BoundedHeadersProtocol.send_400_response` answers 431 instead."""


class BoundedHeadersProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bound on the request line and headers together."""

    max_header_bytes = 32 << 10
    metrics: Metrics | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # between requests and until the parser has every header of the current one
        self._head_bytes = 0
        self._lingering = False  # refused: what arrives now is dropped unparsed
        self._head_too_large = False  # a head parsed whole in one read was over the limit

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            self._head_bytes += len(data)
            if self._head_bytes > LINGER_BYTES:
                self.transport.abort()
            return
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > self.max_header_bytes and not self.transport.is_closing():
            self._refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        # the request line's target and every header line (name, ": ", value, CRLF) as parsed
        head_bytes = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if head_bytes > self.max_header_bytes:
            self._head_too_large = True
            raise _HeadTooLarge
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if self._head_too_large:
            self._refuse_head()
        else:
            super().send_400_response(msg)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True

    def _refuse_head(self) -> None:
        """431 and a lingering close: the rest of the head is never parsed."""
        if self.metrics is not None:
            self.metrics.headers_refused += 1
        log.warning("refused a request whose headers are over %d bytes", self.max_header_bytes)
        body = b'{"error": "request headers over %d bytes"}' % self.max_header_bytes
        head = [STATUS_LINE[431]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\ncontent-length: ",
            str(len(body)).encode(),
            b"\r\nconnection: close\r\n\r\n",
            body,
        ]
        self.transport.write(b"".join(head))
        self._lingering = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER_SECONDS, self._close)
        else:
            self._close()

    def _close(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()


def bounded_headers_protocol(max_header_bytes: int, metrics: Metrics | None = None) -> type[HttpToolsProtocol]:
    """The protocol class for uvicorn's ``http`` option, refusing heads over ``max_header_bytes``."""
    attributes = {"max_header_bytes": max_header_bytes, "metrics": metrics}
    return type("BoundedHeadersProtocol", (BoundedHeadersProtocol,), attributes)


async def _announce(server: uvicorn.Server, host: str, port: int) -> None:
    while not server.started:
        if server.should_exit:
            return
        await asyncio.sleep(0.02)
    print(f"pulse collector listening on http://{host}:{port}", flush=True)


async def _serve(settings: CollectorSettings, host: str, port: int) -> None:
    collector = Collector(settings)
    config = uvicorn.Config(
        collector,
        host=host,
        port=port,
        loop="uvloop",
        http=bounded_headers_protocol(settings.max_header_bytes, collector.metrics),
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=10,
        backlog=2048,
        server_header=False,
    )
    server = uvicorn.Server(config)
    announce = asyncio.create_task(_announce(server, host, port))
    await server.serve()
    announce.cancel()


def collect(settings: CollectorSettings, host: str = "127.0.0.1", port: int = 8090) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import uvloop

    uvloop.run(_serve(settings, host, port))
    return 0
