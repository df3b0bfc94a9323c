"""Delivery of live trigger firings to webhooks (a CMS, an email tool): signed POSTs, retried, dead-lettered, logged.

It follows the feed ``live_trigger_firings`` of the live state database (``<live_dir>/state.sqlite``, written by
the stream processor) by its ``seq`` and POSTs each firing as JSON to every webhook of the settings ``webhooks``
and ``webhook_secrets`` (docs/realtime.md, "Delivery", says how a receiver checks a request)::

    POST <url>
    Content-Type: application/json
    Idempotency-Key: <firing_key>                   the same on every attempt: a receiver dedupes by it
    X-Pulse-Timestamp: <unix seconds of this attempt>
    X-Pulse-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>
    X-Pulse-Attempt: <n>

    {"evidence": {...}, "fired_at": "...", "firing_key": "...", "recorded_at": "...", "seq": 42,
     "trigger_name": "cart_abandonment", "user_key": "..."}

Guarantees (at least once):

- Every webhook has its own cursor (``webhook_cursors``), its own queue (``webhook_outbox``) and its own thread:
  a slow or dead webhook delays only itself.
- A firing is taken from the feed into the webhook's queue (with the body it is POSTed with, so pruning the feed
  loses nothing queued), and the cursor advanced, in one transaction. Before
  each POST the attempt is logged (``sending``) and counted, in one transaction; its outcome (``delivered``,
  ``retry`` with ``next_attempt_at``, ``dead``) is logged, and the queue entry removed or rescheduled, in another.
  A deliverer killed at any point (even ``kill -9``) resumes from these tables: a POST whose outcome was not
  logged is sent again, so a receiver may see a firing twice, never zero times.
- Retried: connection errors, timeouts, HTTP 5xx, 408 and 429. The wait before attempt n+1 is a random time
  from 0 to ``min(webhook_backoff_max_seconds, webhook_backoff_seconds * 2^(n-1))`` (full jitter), or the
  answer's Retry-After when it gives one. Not retried: other 4xx and 3xx (redirects are not followed). After
  ``webhook_max_attempts`` attempts, or an answer not retried, the firing is a dead letter (status ``dead``);
  :func:`dead_letters` lists them and :func:`redeliver` queues them again.
- A webhook seen for the first time starts at the feed's current end: it gets the firings recorded from then on,
  not the history (an email tool should not mail last month's abandoned carts).

Secrets are never logged nor stored: the log names a webhook by its name, never by its URL or secret.

The state database is SQLite in WAL mode: the processor writes the feed, this module writes only its ``webhook_*``
tables, and both read without blocking each other. One deliverer per database (a lock file beside it).
"""

from __future__ import annotations

import contextlib
import email.utils
import fcntl
import hashlib
import hmac
import json
import logging
import random
import socket
import sqlite3
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pulse.core.settings import Settings, group_settings, webhook_pairs
from pulse.live.store import state_path

log = logging.getLogger(__name__)

LOCK_NAME = "deliver.lock"
USER_AGENT = "pulse-delivery/1"
SIGNATURE_HEADER = "X-Pulse-Signature"
TIMESTAMP_HEADER = "X-Pulse-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
ATTEMPT_HEADER = "X-Pulse-Attempt"
SIGNATURE_TOLERANCE_SECONDS = 300  # what docs/realtime.md tells receivers to accept
MAX_RETRY_AFTER_SECONDS = 24 * 3600  # a Retry-After beyond a day is taken as a day
RETRIED_4XX = frozenset({408, 429})
ERROR_TEXT_LIMIT = 300

# The settings `pulse deliver` reads (a bad dbt var does not stop delivery).
DELIVERY_SETTINGS = (
    "live_dir",
    "webhooks",
    "webhook_secrets",
    "webhook_max_attempts",
    "webhook_timeout_seconds",
    "webhook_backoff_seconds",
    "webhook_backoff_max_seconds",
)

# Statuses of webhook_deliveries rows
QUEUED, SENDING, DELIVERED, RETRY, DEAD = "queued", "sending", "delivered", "retry", "dead"

OUTBOX_INSERT = (
    "insert into webhook_outbox (webhook, firing_key, seq, body, attempts, next_attempt_at) values (?, ?, ?, ?, 0, ?) "
    "on conflict do nothing"
)

# The feed, as the stream processor writes it (the shared schema of the live state database).
FIRINGS_TABLE = "live_trigger_firings"

SCHEMA = """
create table if not exists webhook_deliveries (
    id integer primary key autoincrement,
    firing_key text not null,
    seq integer not null,
    webhook text not null,
    attempt integer not null,
    status text not null check (status in ('queued', 'sending', 'delivered', 'retry', 'dead')),
    http_status integer,
    error text,
    at text not null,
    next_attempt_at text
);
create index if not exists webhook_deliveries_by_firing on webhook_deliveries (webhook, firing_key, id);
create table if not exists webhook_outbox (
    webhook text not null,
    firing_key text not null,
    seq integer not null,
    body blob not null,  -- the JSON POSTed, kept until delivered or dead: the feed may be pruned meanwhile
    attempts integer not null,
    next_attempt_at text not null,
    primary key (webhook, firing_key)
);
create index if not exists webhook_outbox_due on webhook_outbox (webhook, next_attempt_at, seq);
create table if not exists webhook_cursors (
    webhook text primary key,
    seq integer not null,
    updated_at text not null
);
"""

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """ISO-8601 UTC text, microseconds always (``2026-12-08T01:02:03.456000+00:00``): it sorts as time."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


# ----------------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Webhook:
    name: str
    url: str
    secret: str = field(repr=False)


@dataclass(frozen=True)
class DeliveryConfig:
    state_db: Path
    webhooks: tuple[Webhook, ...]
    max_attempts: int = 8
    timeout_seconds: float = 10.0
    backoff_seconds: float = 1.0
    backoff_max_seconds: float = 600.0

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryConfig:
        """From the settings door (validated there: names, URLs, secret lengths, one secret per webhook)."""
        secrets = dict(webhook_pairs(settings.webhook_secrets or ""))
        hooks = tuple(Webhook(name, url, secrets[name]) for name, url in webhook_pairs(settings.webhooks or ""))
        return cls(
            state_db=state_path(Path(settings.live_dir)),
            webhooks=hooks,
            max_attempts=settings.webhook_max_attempts,
            timeout_seconds=float(settings.webhook_timeout_seconds),
            backoff_seconds=float(settings.webhook_backoff_seconds),
            backoff_max_seconds=float(settings.webhook_backoff_max_seconds),
        )


def delivery_settings(environ: Mapping[str, str] | None = None) -> Settings:
    return group_settings(DELIVERY_SETTINGS, environ)


# ----------------------------------------------------------------------------------------------- signing


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 with ``secret`` over ``b"<timestamp>." + body`` (the exact body bytes)."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str,
    body: bytes,
    timestamp_header: str | None,
    signature_header: str | None,
    now: float,
    tolerance_seconds: float = SIGNATURE_TOLERANCE_SECONDS,
) -> bool:
    """What a receiver does (docs/realtime.md): the timestamp is recent and the signature is that of the body."""
    try:
        timestamp = int(timestamp_header or "")
    except ValueError:
        return False
    if abs(now - timestamp) > tolerance_seconds or not signature_header:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), signature_header)


def firing_body(firing: Mapping[str, Any]) -> bytes:
    """The JSON body of one firing (a row of the feed; evidence as an object), keys sorted, compact."""
    evidence = firing.get("evidence")
    if isinstance(evidence, str):
        with contextlib.suppress(ValueError):  # else passed on as text
            evidence = json.loads(evidence)
    payload = {
        "firing_key": firing["firing_key"],
        "seq": firing["seq"],
        "trigger_name": firing["trigger_name"],
        "user_key": firing["user_key"],
        "fired_at": firing["fired_at"],
        "recorded_at": firing["recorded_at"],
        "evidence": evidence,
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# ----------------------------------------------------------------------------------------------- retries


def backoff_seconds(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Full jitter: a random wait from 0 to ``min(cap, base * 2^(attempt-1))`` after failed attempt ``attempt``."""
    return rng.uniform(0.0, min(cap, base * 2 ** min(attempt - 1, 62)))


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """A Retry-After header (seconds, or an HTTP date) as seconds from ``now``, or None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - now).total_seconds()), MAX_RETRY_AFTER_SECONDS)


@dataclass(frozen=True)
class Outcome:
    """One POST's result: ``delivered``, ``retry`` (with the wait the answer asked for, if any) or ``dead``."""

    status: str
    http_status: int | None = None
    error: str | None = None
    retry_after: float | None = None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx is an answer (not retried), never followed with the signed body


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= ERROR_TEXT_LIMIT else text[: ERROR_TEXT_LIMIT - 1] + "…"


def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float, now: datetime) -> Outcome:
    """POST ``body`` and classify the answer (no proxy, no redirect)."""
    request = urllib.request.Request(url, data=body, method="POST", headers=dict(headers))
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read(65536)
            return Outcome(DELIVERED, response.status)
    except urllib.error.HTTPError as exc:
        code = exc.code
        try:
            text = exc.read(2048).decode("utf-8", "replace")
        except OSError:
            text = ""
        error = _short(f"HTTP {code} {exc.reason}" + (f": {text}" if text.strip() else ""))
        if code >= 500 or code in RETRIED_4XX:
            return Outcome(RETRY, code, error, retry_after_seconds(exc.headers.get("Retry-After"), now))
        return Outcome(DEAD, code, error + " (not retried)")
    except TimeoutError:
        return Outcome(RETRY, None, f"timed out after {timeout:g} s")
    except urllib.error.URLError as exc:
        reason = exc.reason
        kind = "timed out" if isinstance(reason, TimeoutError | socket.timeout) else "connection failed"
        return Outcome(RETRY, None, _short(f"{kind}: {reason}"))
    except (OSError, ValueError) as exc:  # reset by peer, a bad status line, ...
        return Outcome(RETRY, None, _short(f"{type(exc).__name__}: {exc}"))


# ----------------------------------------------------------------------------------------------- the store


def connect(state_db: Path, *, timeout: float = 30.0) -> sqlite3.Connection:
    """A connection to the live state database in WAL mode (autocommit; writes in explicit transactions), with
    the delivery tables created."""
    Path(state_db).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(state_db, timeout=timeout, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("pragma journal_mode=wal")
    conn.execute("pragma synchronous=normal")
    conn.executescript(SCHEMA)
    return conn


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("begin immediate")
    try:
        yield conn
    except BaseException:
        conn.execute("rollback")
        raise
    conn.execute("commit")


def _feed_exists(conn: sqlite3.Connection) -> bool:
    row = conn.execute("select 1 from sqlite_master where type = 'table' and name = ?", (FIRINGS_TABLE,)).fetchone()
    return row is not None


def feed_end(conn: sqlite3.Connection) -> int:
    """The highest seq in the feed (0: empty or not there yet)."""
    if not _feed_exists(conn):
        return 0
    return int(conn.execute(f"select coalesce(max(seq), 0) from {FIRINGS_TABLE}").fetchone()[0])


def firings_after(conn: sqlite3.Connection, seq: int, limit: int = 500) -> list[dict[str, Any]]:
    """Firings of the feed with a seq above ``seq``, in seq order ([] while the feed does not exist). SQLite gives
    seq in commit order (one writer; AUTOINCREMENT), so a reader past seq s never sees a firing at or below s
    appear later."""
    if not _feed_exists(conn):
        return []
    rows = conn.execute(
        f"select seq, firing_key, trigger_name, user_key, fired_at, recorded_at, evidence from {FIRINGS_TABLE} "
        "where seq > ? order by seq limit ?",
        (seq, limit),
    ).fetchall()
    return [dict(row) for row in rows]


def register_webhooks(conn: sqlite3.Connection, names: list[str] | tuple[str, ...], clock: Clock = utc_now) -> None:
    """Give each webhook not seen before a cursor at the feed's current end (it gets the firings from now on)."""
    with _transaction(conn):
        end = feed_end(conn)
        for name in names:
            conn.execute(
                "insert into webhook_cursors (webhook, seq, updated_at) values (?, ?, ?) on conflict do nothing",
                (name, end, iso(clock())),
            )


def delivery_log(conn: sqlite3.Connection, webhook: str | None = None) -> list[dict[str, Any]]:
    """Every row of webhook_deliveries (of one webhook), in the order written."""
    sql = "select * from webhook_deliveries" + (" where webhook = ?" if webhook else "") + " order by id"
    return [dict(row) for row in conn.execute(sql, (webhook,) if webhook else ())]


def dead_letters(conn: sqlite3.Connection, webhook: str | None = None) -> list[dict[str, Any]]:
    """Firings whose latest row is ``dead`` (per webhook): firing_key, seq, webhook, attempt, http_status, error, at."""
    sql = (
        "select d.* from webhook_deliveries d where d.status = 'dead' and d.id = (select max(id) from "
        "webhook_deliveries x where x.webhook = d.webhook and x.firing_key = d.firing_key)"
        + (" and d.webhook = ?" if webhook else "")
        + " order by d.webhook, d.seq"
    )
    return [dict(row) for row in conn.execute(sql, (webhook,) if webhook else ())]


def redeliver(conn: sqlite3.Connection, webhook: str, firing_keys: list[str], clock: Clock = utc_now) -> int:
    """Queue dead letters of ``webhook`` again (attempts start over); returns how many were queued."""
    dead = {d["firing_key"]: d for d in dead_letters(conn, webhook)}
    now = iso(clock())
    queued = 0
    with _transaction(conn):
        for key in firing_keys:
            if key not in dead:
                continue
            seq = dead[key]["seq"]
            firing = next(iter(firings_after(conn, seq - 1, 1)), None)
            if firing is None or firing["seq"] != seq:
                log.warning("webhook %s: %s is no longer in the feed: not queued again", webhook, key)
                continue
            conn.execute(OUTBOX_INSERT, (webhook, key, seq, firing_body(firing), now))
            conn.execute(
                "insert into webhook_deliveries (firing_key, seq, webhook, attempt, status, at, next_attempt_at) "
                "values (?, ?, ?, 0, 'queued', ?, ?)",
                (key, seq, webhook, now, now),
            )
            queued += 1
    return queued


# ----------------------------------------------------------------------------------------------- delivering


Poster = Callable[[str, bytes, Mapping[str, str], float, datetime], Outcome]


class WebhookWorker:
    """Delivers the feed to one webhook: its cursor, its queue, one POST at a time (a thread per webhook)."""

    def __init__(
        self,
        config: DeliveryConfig,
        webhook: Webhook,
        *,
        clock: Clock = utc_now,
        rng: random.Random | None = None,
        poster: Poster = post,
        poll_seconds: float = 0.2,
        batch: int = 500,
    ) -> None:
        self.config = config
        self.webhook = webhook
        self.clock = clock
        self.rng = rng or random.SystemRandom()
        self.poster = poster
        self.poll_seconds = poll_seconds
        self.batch = batch
        self.conn = connect(config.state_db)

    def close(self) -> None:
        self.conn.close()

    # -- taking from the feed
    def take_new(self) -> int:
        """Queue the firings past this webhook's cursor and advance it, in one transaction; returns how many."""
        name = self.webhook.name
        with _transaction(self.conn):
            row = self.conn.execute("select seq from webhook_cursors where webhook = ?", (name,)).fetchone()
            if row is None:  # first sight: start at the feed's end
                end = feed_end(self.conn)
                self.conn.execute(
                    "insert into webhook_cursors (webhook, seq, updated_at) values (?, ?, ?)",
                    (name, end, iso(self.clock())),
                )
                return 0
            firings = firings_after(self.conn, int(row["seq"]), self.batch)
            if not firings:
                return 0
            now = iso(self.clock())
            self.conn.executemany(
                OUTBOX_INSERT, [(name, f["firing_key"], f["seq"], firing_body(f), now) for f in firings]
            )
            self.conn.executemany(
                "insert into webhook_deliveries (firing_key, seq, webhook, attempt, status, at, next_attempt_at) "
                "values (?, ?, ?, 0, 'queued', ?, ?)",
                [(f["firing_key"], f["seq"], name, now, now) for f in firings],
            )
            self.conn.execute(
                "update webhook_cursors set seq = ?, updated_at = ? where webhook = ?", (firings[-1]["seq"], now, name)
            )
            return len(firings)

    # -- the queue
    def next_due(self) -> tuple[dict[str, Any] | None, float | None]:
        """The due entry with the lowest seq (or None) and, when none is due, seconds until the next one is."""
        now = self.clock()
        row = self.conn.execute(
            "select * from webhook_outbox where webhook = ? and next_attempt_at <= ? order by seq limit 1",
            (self.webhook.name, iso(now)),
        ).fetchone()
        if row is not None:
            return dict(row), None
        later = self.conn.execute(
            "select min(next_attempt_at) from webhook_outbox where webhook = ?", (self.webhook.name,)
        ).fetchone()[0]
        if later is None:
            return None, None
        return None, max(0.0, (datetime.fromisoformat(later) - now).total_seconds())

    def pending(self) -> int:
        return int(
            self.conn.execute("select count(*) from webhook_outbox where webhook = ?", (self.webhook.name,)).fetchone()[
                0
            ]
        )

    def attempt(self, entry: dict[str, Any]) -> Outcome:
        """One POST of a queued firing, logged before (``sending``) and after (its outcome)."""
        name, key, seq = self.webhook.name, entry["firing_key"], entry["seq"]
        n = int(entry["attempts"]) + 1
        started = self.clock()
        with _transaction(self.conn):
            self.conn.execute(
                "update webhook_outbox set attempts = ? where webhook = ? and firing_key = ?", (n, name, key)
            )
            self.conn.execute(
                "insert into webhook_deliveries (firing_key, seq, webhook, attempt, status, at) "
                "values (?, ?, ?, ?, 'sending', ?)",
                (key, seq, name, n, iso(started)),
            )
        body = bytes(entry["body"])
        timestamp = int(started.timestamp())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            IDEMPOTENCY_HEADER: key,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature(self.webhook.secret, timestamp, body),
            ATTEMPT_HEADER: str(n),
        }
        outcome = self.poster(self.webhook.url, body, headers, self.config.timeout_seconds, started)
        if outcome.status == RETRY and n >= self.config.max_attempts:
            outcome = Outcome(DEAD, outcome.http_status, f"{outcome.error}; gave up after {n} attempts")
        done = self.clock()
        next_at = None
        if outcome.status == RETRY:
            wait = outcome.retry_after
            if wait is None:
                wait = backoff_seconds(n, self.config.backoff_seconds, self.config.backoff_max_seconds, self.rng)
            next_at = iso(done + timedelta(seconds=wait))
        with _transaction(self.conn):
            self.conn.execute(
                "insert into webhook_deliveries (firing_key, seq, webhook, attempt, status, http_status, error, at, "
                "next_attempt_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, seq, name, n, outcome.status, outcome.http_status, outcome.error, iso(done), next_at),
            )
            if next_at is None:
                self.conn.execute("delete from webhook_outbox where webhook = ? and firing_key = ?", (name, key))
            else:
                self.conn.execute(
                    "update webhook_outbox set next_attempt_at = ? where webhook = ? and firing_key = ?",
                    (next_at, name, key),
                )
        if outcome.status == DELIVERED:
            log.debug("webhook %s: %s delivered (attempt %d, HTTP %s)", name, key, n, outcome.http_status)
        elif outcome.status == RETRY:
            log.info("webhook %s: %s attempt %d failed (%s), retry at %s", name, key, n, outcome.error, next_at)
        else:
            log.warning("webhook %s: %s is a dead letter after attempt %d: %s", name, key, n, outcome.error)
        return outcome

    def step(self) -> float:
        """Take new firings, deliver one due entry; returns how long to wait before the next step (0: at once)."""
        self.take_new()
        entry, wait = self.next_due()
        if entry is not None:
            self.attempt(entry)
            return 0.0
        return self.poll_seconds if wait is None else min(self.poll_seconds, wait)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                wait = self.step()
            except sqlite3.OperationalError as exc:  # the database busy beyond the timeout: try again
                log.warning("webhook %s: %s; retrying", self.webhook.name, exc)
                wait = self.poll_seconds
            if wait:
                stop.wait(wait)


class DeliveryLocked(RuntimeError):
    """Another deliverer runs on this state database."""


@contextlib.contextmanager
def deliverer_lock(state_db: Path) -> Iterator[None]:
    """One deliverer per state database: an exclusive lock on ``deliver.lock`` beside it (freed by the kernel when
    the process dies, even by kill -9)."""
    path = Path(state_db).parent / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DeliveryLocked(f"another deliverer runs on {state_db} (it holds {path})") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_deliverer(
    config: DeliveryConfig,
    stop: threading.Event,
    *,
    clock: Clock = utc_now,
    poll_seconds: float = 0.2,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Deliver until ``stop`` is set: one thread per webhook. Raises :class:`DeliveryLocked` if another deliverer
    runs on the same database. ``on_ready``: called once every webhook has its cursor."""
    with deliverer_lock(config.state_db):
        conn = connect(config.state_db)
        try:
            register_webhooks(conn, [w.name for w in config.webhooks], clock)
        finally:
            conn.close()
        workers = [WebhookWorker(config, w, clock=clock, poll_seconds=poll_seconds) for w in config.webhooks]
        threads = [
            threading.Thread(target=worker.run, args=(stop,), name=f"pulse-webhook-{worker.webhook.name}", daemon=True)
            for worker in workers
        ]
        for thread in threads:
            thread.start()
        if on_ready is not None:
            on_ready()
        try:
            while not stop.is_set():
                stop.wait(1.0)
                for thread, worker in zip(threads, workers, strict=True):
                    if not thread.is_alive() and not stop.is_set():
                        raise RuntimeError(f"the delivery thread of webhook {worker.webhook.name} died")
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=config.timeout_seconds + 5)
            for worker in workers:
                worker.close()
