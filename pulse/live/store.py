"""The live state store: ONE SQLite database in WAL mode, ``<live_dir>/state.sqlite``.

Why SQLite in WAL mode: the stream processor is the one writer, and the read API, the webhook delivery and
the server-sent events read it from other processes at the same time. In WAL mode readers never block the
writer nor it them (each reader sees the last commit made before its read began); one transaction commits the
state rows, the ids of the events they include and the source position together, so the state is always that
of a whole number of batches; and a commit survives ``kill -9`` of any process. No server to run, one file to
back up, in the standard library.

``synchronous=FULL``: every commit is fsynced (the WAL) before ``commit`` returns. With ``NORMAL`` a power
loss could take back the last commits though other processes had already acted on them: a firing POSTed to
a webhook would vanish and, replayed, come back under another ``seq`` (the feed cursor of delivery and SSE).
The cost is one fsync per micro-batch, shared by all its events (as the collector's group commit shares one).

Tables (the processor writes all but ``webhook_deliveries``, which the delivery creates and owns):

- ``stream_position``: per source, the position after the last committed batch (:mod:`pulse.live.source`).
- ``processed_events``: every event id in the state, with the user_key it counted for: replays skip them.
- ``identity_map``: per anonymous id, the user id its anonymous events are stitched to (the latest link).
- ``live_users``: per user_key its state (JSON, written by the state models of :mod:`pulse.live.processor`).
- ``live_trigger_firings``: firings of the live triggers; ``seq`` is the feed cursor, ``firing_key`` unique.
- ``live_scores``: the live intent score of each user.

Timestamps are ISO-8601 UTC text (:func:`pulse.live.clock.iso`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATE_FILE = "state.sqlite"

SCHEMA = """
create table if not exists stream_position (
    source text primary key,
    position text not null,
    committed_at text not null
);
create table if not exists processed_events (
    event_id text primary key,
    user_key text not null,
    event_time text not null
);
create table if not exists identity_map (
    anonymous_id text primary key,
    user_id text not null,
    linked_at text not null
);
create table if not exists live_users (
    user_key text primary key,
    state text not null,
    last_event_time text,
    updated_at text not null
);
create table if not exists live_trigger_firings (
    seq integer primary key autoincrement,
    firing_key text not null unique,
    trigger_name text not null,
    user_key text not null,
    fired_at text not null,
    recorded_at text not null,
    evidence text
);
-- the read API's lookup of a user's recent firings (GET /users/{key}): a point query, not a scan
create index if not exists live_trigger_firings_by_user on live_trigger_firings (user_key, seq);
create table if not exists live_scores (
    user_key text primary key,
    probability real not null,
    model_version text not null,
    features text not null,
    features_as_of text not null,
    scored_at text not null
);
"""

# Every table of the shared schema, in a stable order (tests compare stores table by table).
TABLES = ("stream_position", "processed_events", "identity_map", "live_users", "live_trigger_firings", "live_scores")

_CHUNK = 500  # ids per "in (...)" (SQLite's default limit of host parameters is 32766; small keeps plans simple)


def state_path(live_dir: Path) -> Path:
    """The live state database of a home's ``live_dir``."""
    return live_dir / STATE_FILE


@dataclass(frozen=True)
class Firing:
    """One firing of a live trigger (the meaning of dbt's fct_trigger_firings: trigger_name, user_key,
    fired_at); ``firing_key`` makes it unique (a replay that fires it again adds nothing)."""

    firing_key: str
    trigger_name: str
    user_key: str
    fired_at: str
    evidence: dict[str, Any] | None = None


@dataclass(frozen=True)
class Score:
    """A live intent score (the table live_scores)."""

    user_key: str
    probability: float
    model_version: str
    features: dict[str, Any]
    features_as_of: str
    scored_at: str


@dataclass
class CommitBatch:
    """What one micro-batch changed: committed in one transaction with the source's position."""

    source: str
    position: str
    committed_at: str
    users: dict[str, tuple[dict[str, Any], str | None]] = field(default_factory=dict)  # key -> (state, last event)
    removed_users: set[str] = field(default_factory=set)  # keys merged into another (identity stitching)
    processed: list[tuple[str, str, str]] = field(default_factory=list)  # (event_id, user_key, event_time)
    rekeyed: dict[str, list[str]] = field(default_factory=dict)  # new user_key -> event ids counted for it now
    identity: dict[str, tuple[str, str]] = field(default_factory=dict)  # anonymous_id -> (user_id, linked_at)
    firings: list[Firing] = field(default_factory=list)
    scores: list[Score] = field(default_factory=list)


def _connect(path: Path, *, read_only: bool) -> sqlite3.Connection:
    if read_only:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, check_same_thread=False)
    else:
        connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    connection.execute("pragma busy_timeout = 30000")
    return connection


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class LiveStateStore:
    """The writer (the stream processor alone): creates the database and its tables, reads what a restart
    needs, and commits micro-batches (:meth:`commit`)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.connection = _connect(path, read_only=False)
        mode = self.connection.execute("pragma journal_mode = wal").fetchone()[0]
        if mode.lower() != "wal":
            raise RuntimeError(f"{path}: SQLite refused WAL mode (journal_mode is {mode}); a network file system?")
        self.connection.execute("pragma synchronous = full")
        self.connection.executescript(SCHEMA)

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> LiveStateStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reads of the writer

    def position(self, source: str) -> str:
        row = self.connection.execute("select position from stream_position where source = ?", (source,)).fetchone()
        return row[0] if row else ""

    def processed(self, event_ids: Iterable[str]) -> set[str]:
        """Which of ``event_ids`` the state already includes."""
        ids = list(dict.fromkeys(event_ids))
        seen: set[str] = set()
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            seen.update(
                r[0]
                for r in self.connection.execute(
                    f"select event_id from processed_events where event_id in ({marks})", chunk
                )
            )  # noqa: S608
        return seen

    def users(self, user_keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The states of those of ``user_keys`` that have one."""
        keys = list(dict.fromkeys(user_keys))
        states: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(keys):
            marks = ",".join("?" * len(chunk))
            for key, state in self.connection.execute(
                f"select user_key, state from live_users where user_key in ({marks})", chunk
            ):  # noqa: S608
                states[key] = json.loads(state)
        return states

    def all_users(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every user's state (a restart rebuilds its timers from them)."""
        for key, state in self.connection.execute("select user_key, state from live_users"):
            yield key, json.loads(state)

    def identity_map(self) -> dict[str, tuple[str, str]]:
        """anonymous_id -> (user_id, linked_at)."""
        return {
            a: (u, t)
            for a, u, t in self.connection.execute("select anonymous_id, user_id, linked_at from identity_map")
        }

    # ------------------------------------------------------------------ the commit

    def commit(self, batch: CommitBatch) -> None:
        """Everything ``batch`` changed and its position, in ONE transaction: after a crash the store holds
        all of it or none of it."""
        c = self.connection
        c.execute("begin immediate")
        try:
            for key in batch.removed_users:
                c.execute("delete from live_users where user_key = ?", (key,))
            c.executemany(
                "insert into live_users (user_key, state, last_event_time, updated_at) values (?, ?, ?, ?) "
                "on conflict (user_key) do update set state = excluded.state, "
                "last_event_time = excluded.last_event_time, updated_at = excluded.updated_at",
                [
                    (key, json.dumps(state, sort_keys=True, separators=(",", ":")), last, batch.committed_at)
                    for key, (state, last) in batch.users.items()
                ],
            )
            c.executemany(
                "insert into processed_events (event_id, user_key, event_time) values (?, ?, ?)", batch.processed
            )
            for key, ids in batch.rekeyed.items():
                for chunk in _chunks(ids):
                    marks = ",".join("?" * len(chunk))
                    c.execute(f"update processed_events set user_key = ? where event_id in ({marks})", (key, *chunk))  # noqa: S608
            c.executemany(
                "insert into identity_map (anonymous_id, user_id, linked_at) values (?, ?, ?) "
                "on conflict (anonymous_id) do update set user_id = excluded.user_id, linked_at = excluded.linked_at",
                [(anonymous_id, user_id, linked_at) for anonymous_id, (user_id, linked_at) in batch.identity.items()],
            )
            c.executemany(
                "insert into live_trigger_firings "
                "(firing_key, trigger_name, user_key, fired_at, recorded_at, evidence) "
                "values (?, ?, ?, ?, ?, ?) on conflict (firing_key) do nothing",
                [
                    (
                        f.firing_key,
                        f.trigger_name,
                        f.user_key,
                        f.fired_at,
                        batch.committed_at,
                        None if f.evidence is None else json.dumps(f.evidence, sort_keys=True),
                    )
                    for f in batch.firings
                ],
            )
            c.executemany(
                "insert into live_scores (user_key, probability, model_version, features, features_as_of, scored_at) "
                "values (?, ?, ?, ?, ?, ?) on conflict (user_key) do update set probability = excluded.probability, "
                "model_version = excluded.model_version, features = excluded.features, "
                "features_as_of = excluded.features_as_of, scored_at = excluded.scored_at",
                [
                    (
                        s.user_key,
                        s.probability,
                        s.model_version,
                        json.dumps(s.features, sort_keys=True),
                        s.features_as_of,
                        s.scored_at,
                    )
                    for s in batch.scores
                ],
            )
            c.execute(
                "insert into stream_position (source, position, committed_at) values (?, ?, ?) "
                "on conflict (source) do update set position = excluded.position, committed_at = excluded.committed_at",
                (batch.source, batch.position, batch.committed_at),
            )
        except BaseException:
            c.execute("rollback")
            raise
        c.execute("commit")


class LiveStateReader:
    """Read-only access for other processes (the read API, delivery, SSE): each call reads the last commit.
    Opened read-only: a reader can never write the state. The database must exist (the processor creates it);
    :class:`FileNotFoundError` names it otherwise."""

    def __init__(self, path: Path) -> None:
        if not path.exists():
            raise FileNotFoundError(f"no live state at {path}: is `pulse stream` running (it creates it)?")
        self.path = path
        self.connection = _connect(path, read_only=True)

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> LiveStateReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def user(self, user_key: str) -> dict[str, Any] | None:
        """The user's live state: ``state`` (the state models' JSON), ``last_event_time``, ``updated_at``."""
        row = self.connection.execute(
            "select state, last_event_time, updated_at from live_users where user_key = ?", (user_key,)
        ).fetchone()
        if row is None:
            return None
        return {"user_key": user_key, "state": json.loads(row[0]), "last_event_time": row[1], "updated_at": row[2]}

    def user_key_of(self, anonymous_id: str) -> str:
        """The user_key an anonymous id's events count for now (its stitched user, else itself)."""
        row = self.connection.execute(
            "select user_id from identity_map where anonymous_id = ?", (anonymous_id,)
        ).fetchone()
        return row[0] if row else anonymous_id

    def firings_after(self, seq: int, limit: int = 1000) -> list[dict[str, Any]]:
        """Firings with a ``seq`` above ``seq``, in ``seq`` order (the feed of delivery and SSE)."""
        rows = self.connection.execute(
            "select seq, firing_key, trigger_name, user_key, fired_at, recorded_at, evidence "
            "from live_trigger_firings where seq > ? order by seq limit ?",
            (seq, limit),
        ).fetchall()
        names = ("seq", "firing_key", "trigger_name", "user_key", "fired_at", "recorded_at", "evidence")
        out = [dict(zip(names, row, strict=True)) for row in rows]
        for firing in out:
            firing["evidence"] = None if firing["evidence"] is None else json.loads(firing["evidence"])
        return out

    def score(self, user_key: str) -> dict[str, Any] | None:
        row = self.connection.execute(
            "select probability, model_version, features, features_as_of, scored_at "
            "from live_scores where user_key = ?",
            (user_key,),
        ).fetchone()
        if row is None:
            return None
        return {
            "user_key": user_key,
            "probability": row[0],
            "model_version": row[1],
            "features": json.loads(row[2]),
            "features_as_of": row[3],
            "scored_at": row[4],
        }

    def position(self, source: str) -> dict[str, str] | None:
        """The committed position of ``source`` and when it was committed."""
        row = self.connection.execute(
            "select position, committed_at from stream_position where source = ?", (source,)
        ).fetchone()
        return None if row is None else {"position": row[0], "committed_at": row[1]}

    def table(self, name: str) -> list[tuple[Any, ...]]:
        """Every row of one of :data:`TABLES`, sorted (tests compare whole stores)."""
        if name not in TABLES:
            raise ValueError(f"unknown live state table {name!r}: one of {', '.join(TABLES)}")
        return sorted(self.connection.execute(f"select * from {name}").fetchall(), key=repr)  # noqa: S608
