"""The read API: profiles and audiences of the published snapshot, over HTTP (FastAPI on uvicorn).

It reads only what :mod:`pulse.activation.publish` writes under ``$PULSE_EXPORTS`` (never the DuckDB warehouse)::

    current.json                               {"snapshot_id": ..., "path": "snapshots/<id>"}
    snapshots/<id>/manifest.json               ids, dates, model versions, row counts, audiences
    snapshots/<id>/user_profiles.parquet       one row per consented user
    snapshots/<id>/audiences/<name>.parquet    user_key, reason, score, ...

The current snapshot is held in memory: the profiles as one Arrow table plus a ``user_key -> row`` dict,
each audience as an Arrow table. A background task stats ``current.json`` every ``reload_interval``
seconds; when it changed and names another snapshot, that snapshot is loaded completely (in a thread)
and swapped in with one reference assignment, so a request sees either the old or the new snapshot.
A snapshot that cannot be read is logged and retried every ``retry_interval`` seconds while the old one
is still served. See docs/api.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote_to_bytes

import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from pulse.activation.decisions import DEFAULT_RULES_FILE, RulesFile
from pulse.activation.live_profile import LiveStateReader, MergedProfile, decision_inputs, merge, utc_now

log = logging.getLogger(__name__)

POINTER_FILE = "current.json"
AUDIENCE_NAME_PATTERN = r"^[a-z0-9_]{1,64}$"
MAX_USER_KEY_LENGTH = 512
USERS_PREFIX = b"/users/"
SNAPSHOT_HEADER = "X-Pulse-Snapshot"

_AUDIENCE_NAME = re.compile(AUDIENCE_NAME_PATTERN)


# --------------------------------------------------------------------------------------------------------
# Response models (they are what /openapi.json documents)


class FieldSource(BaseModel):
    live: bool = Field(description="true: from the stream's live state; false: from the published snapshot")
    as_of: datetime | None = Field(
        description="UTC: the instant the value describes the data up to (the snapshot's as_of_date at 00:00, "
        "or the live event, score or firing it comes from)"
    )


class LiveScorePart(BaseModel):
    probability: float
    model_version: str
    features: dict[str, Any]
    features_as_of: datetime
    scored_at: datetime


class LiveFiringPart(BaseModel):
    seq: int
    firing_key: str
    trigger_name: str
    fired_at: datetime
    recorded_at: datetime
    evidence: Any = None
    active: bool = Field(description="counts in active_triggers (the last 7 days; not cancelled by a purchase)")


class LivePart(BaseModel):
    status: Literal["ok", "not_seen", "unavailable"] = Field(
        description="ok: live rows found; not_seen: none for this user; unavailable: the state database is "
        "missing or unreadable (reason)"
    )
    reason: str | None = None
    last_event_time: datetime | None = None
    updated_at: datetime | None = None
    today: dict[str, int | float] | None = Field(None, description="today's counters (UTC day)")
    state: dict[str, Any] | None = Field(None, description="live_users.state as the stream wrote it")
    score: LiveScorePart | None = None
    recent_firings: list[LiveFiringPart] = Field(default_factory=list)


class UserProfile(BaseModel):
    """One row of ``user_profiles.parquet``. Columns the snapshot adds later are passed through as well."""

    model_config = ConfigDict(extra="allow")

    user_key: str
    segment_id: int | None = None
    segment_name: str | None = None
    user_type: str | None = None
    intent_probability: float | None = Field(None, description="P(purchase in the horizon); null if not scored")
    intent_decile: int | None = Field(None, description="1..10, 1 = the top 10 % most likely to buy")
    engagement_score: float | None = None
    active_triggers: list[str] | None = None
    top_categories: list[str] | None = None
    next_action: str | None = None
    next_action_reason: str | None = None
    consent_analytics: bool | None = None
    consent_personalization: bool | None = None
    segment_model_version: str | None = None
    intent_model_version: str | None = None
    segment_status: str | None = Field(
        None, description="current, carried (from an earlier champion: its training refused), refused, no_model"
    )
    segment_status_reason: str | None = None
    intent_status: str | None = Field(
        None,
        description="current, carried (from an earlier champion: its training refused), refused, no_model, "
        "not_scored (not active in the 30 days before the snapshot)",
    )
    intent_status_reason: str | None = Field(None, description="why the intent fields are what they are (or empty)")
    as_of_date: date | None = None
    updated_at: datetime | None = Field(None, description="UTC")
    profile_source: Literal["merged", "published", "live", "none"] | None = Field(
        None,
        description="merged: the published profile with the live state; published: no live state for this user "
        "(or none readable: live.reason); live: seen only by the stream (no published profile yet)",
    )
    stitched_from: str | None = Field(
        None, description="the anonymous_id asked for, when the live identity map links it to this user_key"
    )
    live: LivePart | None = Field(None, description="the stream's state for this user, and why it is missing")
    fields: dict[str, FieldSource] | None = Field(
        None, description="for each field above: live (from the stream's state) or not, and as of when"
    )


class DecisionInput(BaseModel):
    value: Any
    live: bool
    as_of: datetime | None


class NextDecision(BaseModel):
    user_key: str
    profile_source: Literal["merged", "published", "live", "none"]
    decision: dict[str, str] = Field(description="the rule's `show`: slot, content and its texts")
    rule: str = Field(description="the name of the rule that chose it, or default")
    rule_position: int | None = Field(description="1-based place of the rule in the rules file; null: the default")
    rule_description: str | None = None
    inputs: dict[str, DecisionInput] = Field(
        description="the fields the rule read (the default: every rule's), each with its value, live or not, as of"
    )
    rules_file: str
    rules_sha256: str
    rules_problem: str | None = Field(None, description="why a changed rules file is not in force (if it is not)")
    snapshot_id: str | None = None
    live_status: Literal["ok", "not_seen", "unavailable"]
    live_reason: str | None = None
    decided_at: datetime


# The fields of a published profile (what UserProfile declares before the live merge's own fields).
PUBLISHED_FIELDS = tuple(
    name for name in UserProfile.model_fields if name not in {"profile_source", "stitched_from", "live", "fields"}
)


class Health(BaseModel):
    status: Literal["ok"]
    snapshot_id: str
    published_at: datetime
    as_of_date: date
    profiles: int = Field(description="rows of user_profiles.parquet")
    audiences: dict[str, int] = Field(description="rows of each audience")


class Unavailable(BaseModel):
    status: Literal["unavailable"]
    reason: str


class ErrorDetail(BaseModel):
    detail: str


class AudienceSummary(BaseModel):
    name: str
    rows: int
    description: str


class AudiencePage(BaseModel):
    model_config = ConfigDict(ser_json_bytes="base64")

    audience: str
    snapshot_id: str
    page: int
    page_size: int
    total_rows: int
    total_pages: int
    rows: list[dict[str, Any]] = Field(description="user_key, reason, score and any other column of the audience")


# --------------------------------------------------------------------------------------------------------
# The snapshot in memory


class SnapshotError(Exception):
    """A published snapshot that cannot be served (missing, incomplete, inconsistent)."""


class _Rows:
    """An Arrow table read row by row (``row(i)``) or by pages (``rows(offset, n)``) as Python dicts."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        # One chunk per column (after combine_chunks): a row is then ~15 scalar reads, 3x faster than slicing.
        chunks = [table.column(i).chunks for i in range(table.num_columns)]
        self._arrays = (
            [(name, c[0]) for name, c in zip(table.column_names, chunks, strict=True)]
            if all(len(c) == 1 for c in chunks)
            else None
        )

    def __len__(self) -> int:
        return self.table.num_rows

    def row(self, i: int) -> dict[str, Any]:
        if self._arrays is not None:
            return {name: array[i].as_py() for name, array in self._arrays}
        return self.table.slice(i, 1).to_pylist()[0]

    def rows(self, offset: int, length: int) -> list[dict[str, Any]]:
        if offset >= len(self):
            return []
        return self.table.slice(offset, length).to_pylist()


@dataclass(frozen=True)
class Audience:
    name: str
    description: str
    rows: _Rows


@dataclass(frozen=True)
class Snapshot:
    snapshot_id: str
    path: Path
    published_at: datetime
    as_of_date: date
    model_versions: dict[str, str]
    profiles: _Rows
    index: dict[str, int]
    audiences: dict[str, Audience]
    load_seconds: float = field(default=0.0, compare=False)

    def health(self) -> Health:
        return Health(
            status="ok",
            snapshot_id=self.snapshot_id,
            published_at=self.published_at,
            as_of_date=self.as_of_date,
            profiles=len(self.profiles),
            audiences={name: len(a.rows) for name, a in self.audiences.items()},
        )


def _read_table(path: Path) -> pa.Table:
    """Read a Parquet file fully into memory (no memory map: the file may be deleted once loaded). Naive
    timestamps are UTC in a snapshot: they are marked so, and served with a ``Z``."""
    table = pq.read_table(path, memory_map=False)
    for i, f in enumerate(table.schema):
        if pa.types.is_timestamp(f.type) and f.type.tz is None:
            table = table.set_column(i, f.name, table.column(i).cast(pa.timestamp(f.type.unit, tz="UTC")))
    return table.combine_chunks()


def _inside(root: Path, relative: str) -> Path:
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise SnapshotError(f"{relative!r} points outside the snapshot directory {root}")
    return path


def _utc(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def load_snapshot(exports_dir: Path, snapshot_id: str, relative_path: str) -> Snapshot:
    """Read a whole published snapshot into memory, checking it against its manifest. Raises SnapshotError."""
    started = time.perf_counter()
    root = exports_dir / relative_path
    try:
        manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
        if manifest["snapshot_id"] != snapshot_id:
            raise SnapshotError(f"{root}/manifest.json is snapshot {manifest['snapshot_id']!r}, not {snapshot_id!r}")
        profiles_table = _read_table(_inside(root, manifest["profiles"]["file"]))
        if "user_key" not in profiles_table.column_names:
            raise SnapshotError(f"{manifest['profiles']['file']} has no user_key column")
        if profiles_table.num_rows != int(manifest["profiles"]["rows"]):
            raise SnapshotError(
                f"{manifest['profiles']['file']} has {profiles_table.num_rows} rows, "
                f"the manifest says {manifest['profiles']['rows']}"
            )
        audiences: dict[str, Audience] = {}
        for name, spec in manifest.get("audiences", {}).items():
            if not _AUDIENCE_NAME.match(name):
                log.warning("snapshot %s: audience %r skipped (names are [a-z0-9_]{1,64})", snapshot_id, name)
                continue
            table = _read_table(_inside(root, spec["parquet"]))
            if table.num_rows != int(spec["rows"]):
                raise SnapshotError(f"audience {name} has {table.num_rows} rows, the manifest says {spec['rows']}")
            audiences[name] = Audience(name=name, description=str(spec.get("description") or ""), rows=_Rows(table))
        published_at = _utc(manifest["published_at"])
        as_of_date = date.fromisoformat(manifest["as_of_date"])
        model_versions = {str(k): str(v) for k, v in (manifest.get("model_versions") or {}).items()}
    except SnapshotError:
        raise
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as exc:
        raise SnapshotError(f"{type(exc).__name__}: {exc}") from exc

    keys = profiles_table.column("user_key").to_pylist()
    index = dict(zip(reversed(keys), range(len(keys) - 1, -1, -1), strict=True))  # the first row of a key wins
    if len(index) != len(keys):
        log.warning("snapshot %s: %d duplicate user_key rows ignored", snapshot_id, len(keys) - len(index))
    return Snapshot(
        snapshot_id=snapshot_id,
        path=root,
        published_at=published_at,
        as_of_date=as_of_date,
        model_versions=model_versions,
        profiles=_Rows(profiles_table),
        index=index,
        audiences=audiences,
        load_seconds=time.perf_counter() - started,
    )


class SnapshotStore:
    """The snapshot being served, and the reload logic.

    ``current`` is replaced by one assignment once a new snapshot is fully loaded: a request reads it once
    and works on that object only. ``pointer_changed`` is a stat (cheap, for the event loop); ``refresh``
    may read a whole snapshot (run it in a thread).
    """

    def __init__(self, exports_dir: Path, retry_interval: float = 5.0) -> None:
        self.exports_dir = Path(exports_dir)
        self.pointer = self.exports_dir / POINTER_FILE
        self.retry_interval = retry_interval
        self.current: Snapshot | None = None
        self.problem: str | None = None  # why the latest published snapshot is not the one served
        self._seen: tuple[int, int, int] | None = None  # (mtime_ns, size, inode) of current.json last read
        self._retry_at: float | None = None
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.pointer)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def pointer_changed(self) -> bool:
        if self._signature() != self._seen:
            return True
        return self._retry_at is not None and time.monotonic() >= self._retry_at

    def _failed(self, message: str) -> None:
        self.problem = message
        self._retry_at = time.monotonic() + self.retry_interval
        if message not in self._warned:  # once per distinct problem, not every retry
            self._warned.add(message)
            serving = f"still serving {self.current.snapshot_id}" if self.current else "nothing to serve"
            log.warning("%s (%s)", message, serving)

    def refresh(self) -> bool:
        """Load the snapshot current.json names if it is not the one served. True if a new one was swapped in."""
        with self._lock:
            signature = self._signature()
            self._seen = signature
            self._retry_at = None
            if signature is None:
                if self.current is None:
                    self.problem = f"no snapshot published yet: {self.pointer} does not exist"
                else:
                    self._failed(f"{self.pointer} disappeared")
                return False
            try:
                pointer = json.loads(self.pointer.read_text(encoding="utf-8"))
                snapshot_id, relative_path = str(pointer["snapshot_id"]), str(pointer["path"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                self._failed(f"cannot read {self.pointer}: {type(exc).__name__}: {exc}")
                return False
            if self.current is not None and self.current.snapshot_id == snapshot_id:
                self.problem = None
                return False
            try:
                snapshot = load_snapshot(self.exports_dir, snapshot_id, relative_path)
            except SnapshotError as exc:
                self._failed(f"cannot load snapshot {snapshot_id} from {self.exports_dir / relative_path}: {exc}")
                return False
            previous, self.current, self.problem = self.current, snapshot, None
            log.info(
                "serving snapshot %s (%s profiles, %d audiences, loaded in %.2f s)%s",
                snapshot.snapshot_id,
                f"{len(snapshot.profiles):,}",
                len(snapshot.audiences),
                snapshot.load_seconds,
                f", was {previous.snapshot_id}" if previous else "",
            )
            return True


async def _watch(store: SnapshotStore, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            if store.pointer_changed():
                await asyncio.to_thread(store.refresh)
        except Exception:  # never let the watcher die: the next tick tries again
            log.exception("snapshot reload failed")


# --------------------------------------------------------------------------------------------------------
# The app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pulse")
    except PackageNotFoundError:
        return "0+unknown"


def _user_key(request: Request, decoded: str) -> str:
    """The exact key: the raw (still percent-encoded) path after ``/users/``, decoded once. ``decoded`` (what
    the router extracted from the already-decoded path) is the fallback when the raw path is not available."""
    raw: bytes | None = request.scope.get("raw_path")
    if not raw:
        return decoded
    root_path = request.scope.get("root_path", "").encode("utf-8")
    if root_path and raw.startswith(root_path):
        raw = raw[len(root_path) :]
    if not raw.startswith(USERS_PREFIX):
        return decoded
    return unquote_to_bytes(raw[len(USERS_PREFIX) :]).decode("utf-8", errors="replace")


def _key_error(key: str, kind: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"type": kind, "loc": ("path", "user_key"), "msg": message, "input": key}])


KEY_DOC = "Percent-encoded (`/` as %2F, space as %20, `%` as %25, ...); any character allowed."


def _check_key(key: str) -> None:
    if not key:
        raise _key_error(key, "string_too_short", "String should have at least 1 character")
    if len(key) > MAX_USER_KEY_LENGTH:
        raise _key_error(key, "string_too_long", f"String should have at most {MAX_USER_KEY_LENGTH} characters")


# --------------------------------------------------------------------------------------------------------
# The live merge (GET /users/{key}) and the content decision (GET /users/{key}/next)

NEXT_SUFFIX = b"/next"


def _next_key(request: Request, decoded: str) -> tuple[str, bool]:
    """The key of a request the ``/users/{key}/next`` route matched, and whether it asks for the decision.

    The router matches the decoded path, so ``/users/a%2Fnext`` (the profile of the user ``a/next``) matches
    that route too: only a literal ``/next`` at the end of the raw path asks for a decision."""
    raw: bytes | None = request.scope.get("raw_path")
    if not raw:
        return decoded, True
    root_path = request.scope.get("root_path", "").encode("utf-8")
    if root_path and raw.startswith(root_path):
        raw = raw[len(root_path) :]
    if not raw.startswith(USERS_PREFIX):
        return decoded, True
    rest = raw[len(USERS_PREFIX) :]
    if rest.endswith(NEXT_SUFFIX):
        return unquote_to_bytes(rest[: -len(NEXT_SUFFIX)]).decode("utf-8", errors="replace"), True
    return unquote_to_bytes(rest).decode("utf-8", errors="replace"), False


def _merged_profile(
    store: SnapshotStore, reader: LiveStateReader, key: str, now: datetime, *, unknown_ok: bool = False
) -> tuple[MergedProfile, Snapshot | None]:
    """The published profile of ``key`` merged with its live state. Raises 404 when neither knows the key
    (``unknown_ok``: an empty profile instead), 503 when no snapshot is loaded and the stream does not know it
    either. A live state that cannot be read is never an error: the published profile says why."""
    view = reader.read(key)
    snapshot = store.current
    published = None
    if snapshot is not None:
        row = snapshot.index.get(view.user_key)
        if row is None and view.stitched_from is not None:
            row = snapshot.index.get(key)  # stitched live, not yet in the snapshot under the user_id
        published = snapshot.profiles.row(row) if row is not None else None
        if published is not None and published.get("user_key") != view.user_key:
            view = dataclasses.replace(view, user_key=published["user_key"])
    if published is None and view.status != "ok" and not unknown_ok:
        if snapshot is None:
            raise HTTPException(503, detail=store.problem or "no snapshot loaded")
        raise HTTPException(404, detail=f"unknown user_key: {key}")
    names = snapshot.profiles.table.column_names if snapshot is not None else PUBLISHED_FIELDS
    return merge(published, snapshot.as_of_date if snapshot else None, view, now, names), snapshot


def _next_decision(merged: MergedProfile, snapshot: Snapshot | None, rules_file: RulesFile) -> dict[str, Any]:
    rules = rules_file.current()
    inputs = decision_inputs(merged)
    decision = rules.decide({name: value for name, (value, _, _) in inputs.items()})
    rule = next((r for r in rules.rules if r.name == decision.rule), None)
    return {
        "user_key": merged.profile["user_key"],
        "profile_source": merged.profile["profile_source"],
        "decision": decision.show,
        "rule": decision.rule,
        "rule_position": decision.position,
        "rule_description": rule.description if rule else None,
        "inputs": {
            name: {"value": inputs[name][0], "live": inputs[name][1], "as_of": inputs[name][2]}
            for name in decision.fields
        },
        "rules_file": rules.source,
        "rules_sha256": rules.digest,
        "rules_problem": rules_file.problem,
        "snapshot_id": snapshot.snapshot_id if snapshot else None,
        "live_status": merged.live.status,
        "live_reason": merged.live.reason,
        "decided_at": merged.now,
    }


DOCS_ASSETS_URL = "/docs-assets"
# What /docs and /redoc may load: only this server. ReDoc's sidebar shows Redocly's logo from cdn.redoc.ly
# whatever its options; with this policy the browser does not even ask for it (and hides the broken image).
DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:"
)


def docs_assets_dir() -> Path:
    """Swagger UI and ReDoc (swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js, favicon.png) as the
    pinned PyPI package fastapi-offline ships them: installed with pulse, never fetched at run time."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).resolve().parent / "static"


def _add_offline_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc (ReDoc) with their scripts, styles and icon served by the API itself, so
    they render on a machine without internet (FastAPI's default pages fetch them from cdn.jsdelivr.net)."""
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles

    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=docs_assets_dir()), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    def local_only(page: HTMLResponse) -> HTMLResponse:
        page.headers["Content-Security-Policy"] = DOCS_CONTENT_SECURITY_POLICY
        return page

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{oauth2_redirect_url}",
            swagger_js_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png",
            # no spec validator badge: it would send the spec to validator.swagger.io
            swagger_ui_parameters={"validatorUrl": None},
        )
        return local_only(page)

    @app.get(oauth2_redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
        return local_only(page)


def effective_dbt_vars() -> dict[str, Any]:
    """The dbt vars' effective values through the settings door (what `dbt --vars` gets), for rules that
    compare with a dbt var. A settings problem does not stop the API: it is logged, and a rule that needs a
    var then fails its check naming that var."""
    from pulse.core.settings import SettingsError, load_settings

    try:
        return load_settings(partial=True).dbt_vars()
    except SettingsError as exc:
        log.warning("dbt vars unavailable to the decision rules: %s", exc)
        return {}


def create_app(
    exports_dir: Path,
    *,
    reload_interval: float = 0.5,
    retry_interval: float = 5.0,
    live_state: Path | None = None,
    decision_rules: Path = DEFAULT_RULES_FILE,
    dbt_vars: Mapping[str, Any] | None = None,
    clock: Callable[[], datetime] = utc_now,
    firings_keepalive: float | None = None,
) -> FastAPI:
    """The API over the snapshots published in ``exports_dir``. The current snapshot is loaded here; the app
    then watches ``current.json`` every ``reload_interval`` seconds while it runs (its lifespan).

    ``live_state``: the stream's state database (read-only; None: live state off, profiles are the published
    ones and say so). ``decision_rules``: the rules of ``/users/{key}/next``, checked here (DecisionRulesError)
    and reloaded when the file changes; ``dbt_vars`` the values their ``var:`` conditions read (default: the
    effective dbt vars). ``clock``: now, UTC (tests move it). ``GET /stream/firings`` follows ``live_state``'s
    firings (None: it answers 503); ``firings_keepalive``: seconds between its keep-alive comments."""
    store = SnapshotStore(exports_dir, retry_interval=retry_interval)
    store.refresh()
    rules_file = RulesFile(decision_rules, effective_dbt_vars() if dbt_vars is None else dbt_vars)
    live_reader = LiveStateReader(live_state)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        watcher = asyncio.create_task(_watch(store, reload_interval), name="pulse-snapshot-watcher")
        try:
            yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            live_reader.close()

    app = FastAPI(
        title="pulse read API",
        version=_version(),
        description=(
            "Profiles and audiences of the latest published pulse snapshot (read-only). "
            "A new snapshot is picked up without a restart."
        ),
        lifespan=lifespan,
        docs_url=None,  # FastAPI's own pages load Swagger UI and ReDoc from a CDN: served locally below
        redoc_url=None,
    )
    app.state.store = store
    app.state.rules_file = rules_file
    app.state.live_reader = live_reader
    _add_offline_docs(app)

    def served() -> Snapshot:
        snapshot = store.current
        if snapshot is None:
            raise HTTPException(503, detail=store.problem or "no snapshot loaded")
        return snapshot

    unavailable = {503: {"model": ErrorDetail, "description": "no snapshot published (or none readable) yet"}}

    @app.get(
        "/health",
        response_model=Health,
        responses={503: {"model": Unavailable, "description": "no snapshot to serve"}},
        summary="The snapshot being served",
    )
    async def health() -> Any:
        snapshot = store.current
        if snapshot is None:
            reason = store.problem or "no snapshot loaded"
            return JSONResponse(status_code=503, content={"status": "unavailable", "reason": reason})
        return snapshot.health()

    def merged_profile(key: str) -> tuple[MergedProfile, Snapshot | None]:
        return _merged_profile(store, live_reader, key, clock())

    @app.get(
        "/users/{user_key:path}/next",
        response_model=NextDecision,
        responses={200: {"description": "the decision; an unknown visitor gets the decision of an empty profile"}},
        summary="The content decision for one user: what to show, the rule that chose it and its inputs",
    )
    async def user_next(
        request: Request,
        response: Response,
        # no min_length here: "/users/%2Fnext" (the profile of the user "/next") reaches this route with an
        # empty user_key; the key is checked once the raw path has said which request it is
        user_key: Annotated[str, PathParam(max_length=MAX_USER_KEY_LENGTH, description=KEY_DOC)],
    ) -> Any:
        key, wants_decision = _next_key(request, user_key)
        _check_key(key)
        if not wants_decision:  # "/users/a%2Fnext": the profile of the user "a/next"
            body = UserProfile.model_validate(await user_profile(request, response, key)).model_dump_json()
            headers = (
                {SNAPSHOT_HEADER: response.headers[SNAPSHOT_HEADER]} if SNAPSHOT_HEADER in response.headers else {}
            )
            return Response(body, media_type="application/json", headers=headers)
        merged, snapshot = _merged_profile(store, live_reader, key, clock(), unknown_ok=True)
        if snapshot is not None:
            response.headers[SNAPSHOT_HEADER] = snapshot.snapshot_id
        return _next_decision(merged, snapshot, rules_file)

    @app.get(
        "/users/{user_key:path}",
        response_model=UserProfile,
        responses={404: {"model": ErrorDetail, "description": "unknown user_key"}, **unavailable},
        summary="The profile of one user",
    )
    async def user_profile(
        request: Request,
        response: Response,
        user_key: Annotated[
            str,
            PathParam(
                min_length=1,
                max_length=MAX_USER_KEY_LENGTH,
                description=KEY_DOC,
            ),
        ],
    ) -> Any:
        key = _user_key(request, user_key)
        _check_key(key)
        merged, snapshot = merged_profile(key)
        if snapshot is not None:
            response.headers[SNAPSHOT_HEADER] = snapshot.snapshot_id
        return merged.profile

    @app.get(
        "/audiences",
        response_model=list[AudienceSummary],
        responses=unavailable,
        summary="The audiences of the snapshot",
    )
    async def audiences(response: Response) -> Any:
        snapshot = served()
        response.headers[SNAPSHOT_HEADER] = snapshot.snapshot_id
        return [
            {"name": a.name, "rows": len(a.rows), "description": a.description} for a in snapshot.audiences.values()
        ]

    @app.get(
        "/audiences/{name}",
        response_model=AudiencePage,
        responses={404: {"model": ErrorDetail, "description": "unknown audience"}, **unavailable},
        summary="One page of an audience's members",
    )
    async def audience_page(
        response: Response,
        name: Annotated[str, PathParam(pattern=AUDIENCE_NAME_PATTERN)],
        page: Annotated[int, Query(ge=1, description="1-based; past the last page, rows is empty")] = 1,
        page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Any:
        snapshot = served()
        audience = snapshot.audiences.get(name)
        if audience is None:
            raise HTTPException(404, detail=f"unknown audience: {name}")
        total = len(audience.rows)
        response.headers[SNAPSHOT_HEADER] = snapshot.snapshot_id
        return {
            "audience": name,
            "snapshot_id": snapshot.snapshot_id,
            "page": page,
            "page_size": page_size,
            "total_rows": total,
            "total_pages": -(-total // page_size),
            "rows": audience.rows.rows((page - 1) * page_size, page_size),
        }

    add_firings_stream(app, live_state, keepalive=firings_keepalive or FIRINGS_KEEPALIVE_SECONDS)
    return app


# --------------------------------------------------------------------------------------------------------
# GET /stream/firings: the live trigger firings as server-sent events (pulse/live/delivery.py reads the feed)

FIRINGS_KEEPALIVE_SECONDS = 15.0
FIRINGS_POLL_SECONDS = 0.25
FIRINGS_RETRY_MS = 2000


def _sse_firing(firing: dict[str, Any]) -> bytes:
    from pulse.live.delivery import firing_body

    return b"id: %d\nevent: firing\ndata: %s\n\n" % (firing["seq"], firing_body(firing))


def _resume_after(last_event_id: str | None, after: int | None) -> int | None:
    """Where a stream starts: after Last-Event-ID (a reconnecting client), else ``?after=``, else None (the end)."""
    if last_event_id is not None and last_event_id.strip():
        text = last_event_id.strip()
        if not text.isdigit():
            raise HTTPException(400, detail=f"Last-Event-ID: expected a firing's seq (a whole number), got {text!r}")
        return int(text)
    return after


def add_firings_stream(
    app: FastAPI,
    live_state: Path | None,
    *,
    keepalive: float = FIRINGS_KEEPALIVE_SECONDS,
    poll: float = FIRINGS_POLL_SECONDS,
) -> None:
    """``GET /stream/firings``: every firing recorded in ``live_trigger_firings`` from the start point on, as it is
    recorded: ``id:`` is its seq (a browser's EventSource resumes with Last-Event-ID), ``event: firing``, ``data:``
    the JSON a webhook gets. A comment (``: keep-alive``) every ``keepalive`` seconds without a firing keeps
    proxies from closing the connection. The database is read (read-only) every ``poll`` seconds."""
    from fastapi.responses import StreamingResponse

    stopping = threading.Event()  # set when the server stops (serve()): open streams end instead of being cut
    app.state.firings_streams_stopping = stopping

    @app.get(
        "/stream/firings",
        response_class=StreamingResponse,
        responses={
            200: {"content": {"text/event-stream": {}}, "description": "server-sent events, one per firing"},
            400: {"model": ErrorDetail, "description": "a Last-Event-ID that is not a seq"},
            503: {"model": ErrorDetail, "description": "no live state configured"},
        },
        summary="Live trigger firings as server-sent events",
    )
    async def firings_stream(
        request: Request,
        after: Annotated[
            int | None,
            Query(
                ge=0,
                description="start after this seq (0: every firing kept); default: from now on. A Last-Event-ID "
                "header (an EventSource reconnecting) wins over it.",
            ),
        ] = None,
    ) -> Any:
        if live_state is None:
            raise HTTPException(503, detail="no live state database configured (live_dir)")
        start = _resume_after(request.headers.get("last-event-id"), after)
        return StreamingResponse(
            _firings_events(request, live_state, start, keepalive, poll, stopping),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )


async def _firings_events(
    request: Request, live_state: Path, start: int | None, keepalive: float, poll: float, stopping: threading.Event
) -> AsyncIterator[bytes]:
    import sqlite3

    from pulse.live.delivery import feed_end, firings_after

    conn: sqlite3.Connection | None = None
    closed = False
    # A read runs in a worker thread; a client that goes away cancels this generator while one may still be
    # running there. The lock keeps the close from pulling the connection from under that read (a crash in
    # SQLite's C code, not an exception), and a read after the close finds nothing to do.
    lock = threading.Lock()

    def read(seq: int | None) -> tuple[int, list[dict[str, Any]]]:
        nonlocal conn
        with lock:
            if closed:
                return (seq or 0), []
            if conn is None:
                if not live_state.exists():
                    return (seq or 0), []
                conn = sqlite3.connect(f"file:{live_state}?mode=ro", uri=True, check_same_thread=False, timeout=5)
                conn.row_factory = sqlite3.Row
            if seq is None:
                return feed_end(conn), []
            return seq, firings_after(conn, seq, 500)

    try:
        # "From now on" is fixed before the first byte goes out: a firing recorded once the client has the
        # response's head is after the start point, never skipped.
        seq = start if start is not None else (await asyncio.to_thread(read, None))[0]
        yield f"retry: {FIRINGS_RETRY_MS}\n: pulse firings\n\n".encode()
        quiet_since = time.monotonic()
        while not stopping.is_set() and not await request.is_disconnected():
            seq, firings = await asyncio.to_thread(read, seq)
            if firings:
                seq = firings[-1]["seq"]
                yield b"".join(_sse_firing(f) for f in firings)
                quiet_since = time.monotonic()
                continue
            if time.monotonic() - quiet_since >= keepalive:
                yield b": keep-alive\n\n"
                quiet_since = time.monotonic()
            await asyncio.sleep(poll)
    finally:
        with lock:  # waits for a read still running in its thread (a point query: milliseconds)
            closed = True
            if conn is not None:
                conn.close()


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    exports_dir: Path | None = None,
    live_state: Path | None = None,
    decision_rules: Path = DEFAULT_RULES_FILE,
    dbt_vars: Mapping[str, Any] | None = None,
) -> int:
    """Run the API with uvicorn (one worker, no access log) until Ctrl-C / SIGTERM. ``live_state`` default:
    the state database of the settings' ``live_dir`` (default ``<PULSE_HOME>/live/state.sqlite``);
    ``dbt_vars`` default: the effective ones (what the rules' ``var:`` conditions read). Raises
    DecisionRulesError for a bad rules file."""
    import uvicorn

    from pulse.core.settings import paths_from_env

    paths = paths_from_env()
    exports = Path(exports_dir) if exports_dir is not None else paths.exports
    live = Path(live_state) if live_state is not None else paths.live_state  # the settings door's live_dir
    # loads the current snapshot (its warnings, if any, go to stderr) and checks the decision rules
    app = create_app(exports, live_state=live, decision_rules=decision_rules, dbt_vars=dbt_vars)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)  # reloads are logged; uvicorn itself logs warnings only
    log.propagate = False
    store: SnapshotStore = app.state.store
    current = store.current
    print(f"pulse read API on http://{host}:{port} (docs: http://{host}:{port}/docs and /redoc)", flush=True)
    if current is not None:
        print(
            f"serving snapshot {current.snapshot_id} (as of {current.as_of_date}, {len(current.profiles):,} profiles, "
            f"{len(current.audiences)} audiences) from {exports}",
            flush=True,
        )
    else:
        print(f"no snapshot to serve yet ({store.problem}); watching {exports / POINTER_FILE}", flush=True)
    rules = app.state.rules_file.rules
    print(
        f"live state: {live}{'' if live.is_file() else ' (not there yet: profiles are the published ones)'}; "
        f"decision rules: {rules.source} ({len(rules.rules)} rules)",
        flush=True,
    )
    # an open /stream/firings never ends by itself: shutting down waits at most this long for it
    config = uvicorn.Config(
        app, host=host, port=port, workers=1, access_log=False, log_level="warning", timeout_graceful_shutdown=3
    )

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            app.state.firings_streams_stopping.set()  # open /stream/firings responses end, so shutdown need not wait
            super().handle_exit(sig, frame)

    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the SIGINT it handled once it shut down
        Server(config).run()
    return 0
