"""The collector's HTTP side: a plain ASGI app (no framework: every microsecond per request counts) on uvicorn.

``POST /collect`` takes a batch (``{"events": [...]}`` or a bare array; any content type, the tracker sends
``text/plain`` so browsers need no CORS preflight), checks each event against the contract, enriches the
valid ones, and answers only after they are fsynced (:mod:`pulse.collector.log`)::

    200 {"accepted": n, "rejected": m, "errors": [{"index": i, "event_id": "...", "reason": "..."}]}
    400 the body is not JSON or not a batch (dead-lettered whole)
    413 the body is over ``max_body_bytes`` or holds more than ``max_events`` events
    431 the request's headers are over ``max_header_bytes`` (answered by the protocol, :mod:`.server`)
    503 + Retry-After: overload, low disk space, a failed write, shutting down (nothing was kept)

Rejected events go to the dead-letter file: one record per request (its time and user agent once) listing each
rejected event with its index, reason and payload. An event nested deeper than ``max_nesting_depth`` is
rejected alone, like any other contract violation. See docs/collection.md.
"""

from __future__ import annotations

import logging
import mimetypes
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from pulse.collector.events import (
    RequestContext,
    anonymize_ip,
    contract_violation,
    enrich,
    has_analytics_consent,
    nesting_violation,
)
from pulse.collector.events import is_bot as looks_like_bot
from pulse.collector.log import DurableLog, Unavailable
from pulse.collector.metrics import Metrics
from pulse.core.contract import ROW_TOO_LARGE, EventLimits, loads_as_written

log = logging.getLogger(__name__)

COOKIE_NAME = "pulse_nid"
COOKIE_MAX_AGE = 2 * 365 * 24 * 3600
_COOKIE_VALUE = re.compile(r"^[0-9a-f]{32}$")
_JSON = [(b"content-type", b"application/json")]
_NO_STORE = (b"cache-control", b"no-store")
# The free disk space below which the collector answers 503 (``pulse collect --min-free-mb``, docs/collection.md).
DEFAULT_MIN_FREE_MB = 256
TRUNCATED_MARK = "...[truncated]"


@dataclass(frozen=True)
class CollectorSettings:
    """Limits and behaviour of one collector. Paths come from :class:`pulse.core.settings.PulsePaths`."""

    spool: Path
    events_landing: Path
    dead_letter: Path
    site: Path | None = None
    ip_mode: str = "truncate"  # truncate | drop | full
    secure_cookie: bool = False  # set behind TLS
    max_body_bytes: int = 1 << 20
    max_events: int = 500
    max_event_bytes: int = 64 << 10  # an event's line; ingestion's max_row_bytes (limits) caps it too
    max_header_bytes: int = 32 << 10  # request line and headers together; over it: 431, connection closed
    max_user_agent_bytes: int = 1024  # a longer User-Agent is kept as its first 1024 bytes + TRUNCATED_MARK
    max_nesting_depth: int = 32  # an event (level 1) nesting objects or arrays deeper is rejected alone
    roll_seconds: float = 60.0
    roll_bytes: int = 64 << 20
    max_pending_bytes: int = 32 << 20
    min_free_bytes: int = DEFAULT_MIN_FREE_MB << 20
    # The contract's limits, from the settings ingestion reads (IngestOptions.limits): the time window and the
    # size of a line, so that what the collector acknowledges ingestion accepts.
    limits: EventLimits = EventLimits()

    @property
    def max_line_bytes(self) -> int:
        """The most bytes an event's line may take: the collector's own limit, never above ingestion's."""
        return min(self.max_event_bytes, self.limits.max_row_bytes)


def default_site() -> Path:
    """The demo shop the collector serves when no ``--site`` is given."""
    return Path(str(resources.files("pulse.collector") / "site"))


def tracker_source() -> bytes:
    return (resources.files("pulse.collector") / "static" / "pulse.js").read_bytes()


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def truncate_user_agent(user_agent: str | None, limit: int) -> str | None:
    """A User-Agent over ``limit`` characters (bytes: headers are latin-1) cut to ``limit`` + :data:`TRUNCATED_MARK`."""
    if user_agent is None or len(user_agent) <= limit:
        return user_agent
    return user_agent[:limit] + TRUNCATED_MARK


def dumps_deep(value: Any) -> bytes:
    """JSON of any value ``orjson.loads`` returns, however deeply nested (orjson's own ``dumps`` stops at 255
    levels; Python's ``json`` at the recursion limit): iterative, for the dead-letter copy of a too-deep event."""
    out: list[bytes] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, bytes):  # a token pushed below (parsed JSON holds no bytes)
            out.append(item)
        elif isinstance(item, dict):
            tokens: list[Any] = [b"{"]
            for n, (key, child) in enumerate(item.items()):
                tokens += [(b"," if n else b"") + orjson.dumps(str(key)) + b":", child]
            tokens.append(b"}")
            stack.extend(reversed(tokens))
        elif isinstance(item, list):
            tokens = [b"["]
            for n, child in enumerate(item):
                tokens += [b","] if n else []
                tokens.append(child)
            tokens.append(b"]")
            stack.extend(reversed(tokens))
        else:
            out.append(orjson.dumps(item, default=str))
    return b"".join(out)


def _payload_json(payload: Any) -> orjson.Fragment:
    """``payload`` serialized once for a dead-letter record, whatever its depth."""
    try:
        return orjson.Fragment(orjson.dumps(payload, default=str))
    except TypeError:  # orjson.JSONEncodeError: nested over 255 levels
        return orjson.Fragment(dumps_deep(payload))


def _events_as_written(body: bytes) -> list:
    """The batch's events read again with every number as written (:func:`pulse.core.contract.loads_as_written`):
    orjson reads an integer beyond 64 bits as a double, and a refusal shows the value as ingestion would. []
    when it cannot be read so (the reasons then show orjson's values)."""
    try:
        batch = loads_as_written(body)
    except (ValueError, RecursionError):
        return []
    events = batch.get("events") if isinstance(batch, dict) else batch
    return events if isinstance(events, list) else []


def _echoed_id(event: Any) -> str | int | float | None:
    """The ``event_id`` to name in a response's ``errors``: a scalar as sent, else None (never a structure)."""
    event_id = event.get("event_id") if isinstance(event, dict) else None
    return event_id if isinstance(event_id, str | int | float) and not isinstance(event_id, bool) else None


def _cookie(header: str | None, name: str) -> str | None:
    if not header:
        return None
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


class Collector:
    """The ASGI application. ``Collector(settings)``; uvicorn drives its lifespan (log start and close)."""

    def __init__(self, settings: CollectorSettings) -> None:
        self.settings = settings
        self.log = DurableLog(
            settings.spool,
            settings.events_landing,
            settings.dead_letter,
            roll_seconds=settings.roll_seconds,
            roll_bytes=settings.roll_bytes,
            max_pending_bytes=settings.max_pending_bytes,
            min_free_bytes=settings.min_free_bytes,
        )
        self.metrics = Metrics()
        self.started = False
        self._tracker: bytes | None = None
        self._site = (settings.site or default_site()).resolve()

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        if path == "/collect":
            if method == "POST":
                await self._collect(scope, receive, send)
            else:
                await self._respond(send, 405, b'{"error": "POST a batch of events"}', [(b"allow", b"POST")])
        elif path == "/collect/forget" and method == "POST":
            await self._forget(send)
        elif path == "/healthz":
            await self._respond(send, 200, b'{"status": "alive"}')
        elif path == "/readyz":
            await self._ready(send)
        elif path == "/metrics":
            body = self.metrics.render(self.log).encode()
            await self._respond(send, 200, body, [(b"content-type", b"text/plain; version=0.0.4")])
        elif method in ("GET", "HEAD") and path == "/pulse.js":
            headers = [(b"content-type", b"text/javascript; charset=utf-8"), (b"cache-control", b"max-age=300")]
            if self._tracker is None:
                self._tracker = tracker_source()
            await self._respond(send, 200, self._tracker if method == "GET" else b"", headers, json=False)
        elif method in ("GET", "HEAD"):
            await self._static(path, method, send)
        else:
            await self._respond(send, 405, b'{"error": "method not allowed"}')

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    recovered = await self.log.start()
                except Exception as error:  # noqa: BLE001 - reported to uvicorn, which exits
                    await send({"type": "lifespan.startup.failed", "message": str(error)})
                    return
                for path in recovered:
                    log.warning("recovered an unpublished log segment into %s", path)
                self.started = True
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.started = False
                await self.log.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _respond(
        self,
        send: Any,
        status: int,
        body: bytes,
        headers: list[tuple[bytes, bytes]] | None = None,
        json: bool = True,
    ) -> None:
        all_headers = (_JSON + [_NO_STORE] if json else []) + (headers or [])
        all_headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": all_headers})
        await send({"type": "http.response.body", "body": body})

    # ------------------------------------------------------------------ POST /collect

    async def _read_body(self, scope: dict[str, Any], receive: Any) -> bytes | None:
        """The body, or None when it is over the limit (not read further)."""
        limit = self.settings.max_body_bytes
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _context(self, scope: dict[str, Any], now: datetime) -> RequestContext:
        """The request's enrichment. A request without a valid id cookie gets a new id (used, and set as a
        cookie, only if the batch carries analytics consent)."""
        sent_agent = _header(scope, b"user-agent")
        user_agent = truncate_user_agent(sent_agent, self.settings.max_user_agent_bytes)
        if user_agent is not sent_agent:
            self.metrics.user_agents_truncated += 1
        cookie = _cookie(_header(scope, b"cookie"), COOKIE_NAME)
        network_id = cookie if cookie and _COOKIE_VALUE.match(cookie) else None
        client = scope.get("client")
        address = anonymize_ip(client[0] if client else None, self.settings.ip_mode)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
        network_id = network_id or uuid.uuid4().hex
        return RequestContext(stamp, user_agent, address, looks_like_bot(user_agent), network_id)

    async def _collect(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        started = time.perf_counter()
        status = await self._collect_batch(scope, receive, send)
        self.metrics.observe_request(status, time.perf_counter() - started)

    async def _collect_batch(self, scope: dict[str, Any], receive: Any, send: Any) -> int:
        body = await self._read_body(scope, receive)
        if body is None:
            limit = self.settings.max_body_bytes
            await self._respond(send, 413, b'{"error": "body over %d bytes"}' % limit, [(b"connection", b"close")])
            return 413
        refused = self.log.availability()
        if refused is not None:
            return await self._unavailable(send, refused)
        now = datetime.now(UTC)
        context = self._context(scope, now)
        try:
            batch = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            return await self._refuse_body(send, body, context, f"body is not JSON: {error}", 400)
        events = batch.get("events") if isinstance(batch, dict) else batch
        if not isinstance(events, list):
            reason = 'body is not a batch: expected {"events": [...]} or a JSON array'
            return await self._refuse_body(send, body, context, reason, 400)
        if len(events) > self.settings.max_events:
            reason = f"batch of {len(events)} events is over the limit of {self.settings.max_events}"
            return await self._refuse_body(send, body, context, reason, 413)

        lines: list[bytes] = []
        rejected: list[tuple[int | None, str, Any]] = []
        errors: list[dict[str, Any]] = []
        consented = False
        max_bytes = self.settings.max_line_bytes
        limits = self.settings.limits
        as_written: list | None = None  # the batch read again at its first refused event (_events_as_written)
        for index, event in enumerate(events):
            reason = nesting_violation(event, self.settings.max_nesting_depth)
            if reason is None and (reason := contract_violation(event, now, limits)) is not None:
                as_written = _events_as_written(body) if as_written is None else as_written
                if index < len(as_written):  # the same reasons, the numbers shown as the client wrote them
                    reason = contract_violation(as_written[index], now, limits) or reason
            line = b""
            if reason is None:
                try:
                    line = orjson.dumps(enrich(event, context))
                except TypeError as error:  # orjson.JSONEncodeError: cannot happen within the depth limit
                    reason = f"event cannot be serialized: {error}"
                else:
                    if len(line) > max_bytes:
                        reason = ROW_TOO_LARGE.text(limit=max_bytes)
            if reason is not None:
                errors.append({"index": index, "event_id": _echoed_id(event), "reason": reason})
                rejected.append((index, reason, event))
                continue
            consented = consented or has_analytics_consent(event)
            lines.append(line)
        dead = self._dead_letter(context, rejected) if rejected else b""
        try:
            await self.log.append(b"\n".join(lines) + b"\n" if lines else b"", dead)
        except Unavailable as refused:
            return await self._unavailable(send, refused)
        self.metrics.events_accepted += len(lines)
        self.metrics.events_rejected += len(rejected)
        headers = []
        if consented and context.network_user_id:
            headers.append(self._set_cookie(context.network_user_id, COOKIE_MAX_AGE))
        response = orjson.dumps({"accepted": len(lines), "rejected": len(rejected), "errors": errors})
        await self._respond(send, 200, response, headers)
        return 200

    def _dead_letter(self, context: RequestContext, rejected: list[tuple[int | None, str, Any]]) -> bytes:
        """One dead-letter record for a request: its metadata once, then each rejected event (index, reason,
        payload as sent). Its size is about the rejected part of the request, whatever the user agent."""
        record = {
            "received_at": context.received_at,
            "user_agent": context.user_agent,
            "rejected": [
                {"index": index, "reason": reason, "payload": _payload_json(payload)}
                for index, reason, payload in rejected
            ],
        }
        return orjson.dumps(record) + b"\n"

    async def _refuse_body(self, send: Any, body: bytes, context: RequestContext, reason: str, status: int) -> int:
        """A body that is not a batch: dead-letter it whole (as text), answer ``status``."""
        text = body.decode("utf-8", errors="replace")
        try:
            await self.log.append(b"", self._dead_letter(context, [(None, reason, text)]))
        except Unavailable as refused:
            return await self._unavailable(send, refused)
        self.metrics.bodies_rejected += 1
        await self._respond(send, status, orjson.dumps({"error": reason}))
        return status

    async def _unavailable(self, send: Any, refused: Unavailable) -> int:
        body = orjson.dumps({"error": refused.reason, "retry_after": refused.retry_after})
        await self._respond(send, 503, body, [(b"retry-after", str(refused.retry_after).encode())])
        return 503

    def _set_cookie(self, value: str, max_age: int) -> tuple[bytes, bytes]:
        cookie = f"{COOKIE_NAME}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax"
        if self.settings.secure_cookie:
            cookie += "; Secure"
        return (b"set-cookie", cookie.encode())

    async def _forget(self, send: Any) -> None:
        """Consent withdrawn: expire the id cookie (the tracker cannot: it is HttpOnly)."""
        await self._respond(send, 204, b"", [self._set_cookie("", 0)], json=False)

    # ------------------------------------------------------------------ the rest

    async def _ready(self, send: Any) -> None:
        refused = self.log.availability() if self.started else Unavailable("starting", 1)
        if refused is None:
            await self._respond(send, 200, b'{"status": "ready"}')
        else:
            body = orjson.dumps({"status": "unavailable", "reason": refused.reason})
            await self._respond(send, 503, body, [(b"retry-after", str(refused.retry_after).encode())])

    async def _static(self, path: str, method: str, send: Any) -> None:
        relative = path.lstrip("/")
        if relative == "" or relative.endswith("/"):
            relative += "index.html"
        target = (self._site / relative).resolve()
        if not target.is_relative_to(self._site) or not target.is_file():
            await self._respond(send, 404, b'{"error": "not found"}')
            return
        kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind in ("application/javascript", "text/javascript"):
            kind += "; charset=utf-8"
        body = target.read_bytes() if method == "GET" else b""
        await self._respond(send, 200, body, [(b"content-type", kind.encode()), _NO_STORE], json=False)
