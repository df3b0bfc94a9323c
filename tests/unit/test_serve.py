"""The read API (pulse/activation/serve.py) served for real: uvicorn in a thread on a free port, called with urllib
(httpx, which FastAPI's TestClient needs, is not installed). Snapshots are written by a small fixture
writer that follows the layout pulse/activation/publish.py writes (see docs/api.md)."""

from __future__ import annotations

import json
import math
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from urllib.parse import quote

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pulse.activation.serve import create_app

PROFILE_SCHEMA = pa.schema(
    [
        ("user_key", pa.string()),
        ("segment_id", pa.int64()),
        ("segment_name", pa.string()),
        ("user_type", pa.string()),
        ("intent_probability", pa.float64()),
        ("intent_decile", pa.int32()),
        ("engagement_score", pa.float64()),
        ("active_triggers", pa.list_(pa.string())),
        ("top_categories", pa.list_(pa.string())),
        ("next_action", pa.string()),
        ("next_action_reason", pa.string()),
        ("consent_analytics", pa.bool_()),
        ("consent_personalization", pa.bool_()),
        ("segment_model_version", pa.string()),
        ("intent_model_version", pa.string()),
        ("segment_status", pa.string()),
        ("segment_status_reason", pa.string()),
        ("intent_status", pa.string()),
        ("intent_status_reason", pa.string()),
        ("as_of_date", pa.date32()),
        ("updated_at", pa.timestamp("us", tz="UTC")),
    ]
)

# Keys a client must percent-encode, each next to the key a wrong decoding would find instead.
TRICKY_KEYS = ["abc/def==", "a+b c", "ü%2F", "..", " ", "%20", "q?x#y&z=1", "日本/ユーザー", "/lead", "trail/"]
DECOYS = ["abc", "def==", "a b c", "ü/", "ü", "%2F", "q"]
AS_OF = date(2026, 11, 26)


def profile(key: str, snapshot_id: str, i: int, **overrides) -> dict:
    row = {
        "user_key": key,
        "segment_id": i % 5,
        "segment_name": f"segment of {key} in {snapshot_id}",
        "user_type": "returning",
        "intent_probability": round(0.01 * (i % 100), 2),
        "intent_decile": 1 + i % 10,
        "engagement_score": 0.5,
        "active_triggers": ["cart_abandoned", "price_drop"],
        "top_categories": ["shoes"],
        "next_action": "send_coupon",
        "next_action_reason": "cart abandoned 2 days ago",
        "consent_analytics": True,
        "consent_personalization": True,
        "segment_model_version": "5",
        "intent_model_version": "1",
        "segment_status": "current",
        "segment_status_reason": "from champion version 5",
        "intent_status": "carried",
        "intent_status_reason": "training refused on 2026-11-23: too few positives; values carried from version 1",
        "as_of_date": AS_OF,
        "updated_at": datetime(2026, 11, 26, 19, 45, 0),
    }
    row.update(overrides)
    return row


def audience_rows(prefix: str, n: int) -> list[dict]:
    return [
        {
            "user_key": f"{prefix}{i:03d}",
            "reason": f"reason {i}",
            "score": None if i == 0 else (math.nan if i == 1 else i / 100),
            "channel": "email",
            "last_seen": date(2026, 11, 1 + i % 20),
        }
        for i in range(n)
    ]


def write_snapshot(
    exports: Path,
    snapshot_id: str,
    profiles: list[dict],
    audiences: dict[str, list[dict]],
    *,
    publish: bool = True,
    naive_timestamps: bool = False,
) -> Path:
    """Write ``snapshots/<id>/`` completely, then (``publish``) point current.json at it atomically."""
    root = exports / "snapshots" / snapshot_id
    (root / "audiences").mkdir(parents=True)
    schema = PROFILE_SCHEMA
    if naive_timestamps:
        schema = schema.set(schema.get_field_index("updated_at"), pa.field("updated_at", pa.timestamp("us")))
    pq.write_table(pa.Table.from_pylist(profiles, schema=schema), root / "user_profiles.parquet")
    manifest_audiences = {}
    for name, rows in audiences.items():
        table = pa.Table.from_pylist(
            rows,
            schema=pa.schema(
                [
                    ("user_key", pa.string()),
                    ("reason", pa.string()),
                    ("score", pa.float64()),
                    ("channel", pa.string()),
                    ("last_seen", pa.date32()),
                ]
            ),
        )
        pq.write_table(table, root / "audiences" / f"{name}.parquet")
        table.drop_columns(["last_seen"]).to_pandas().to_csv(root / "audiences" / f"{name}.csv", index=False)
        manifest_audiences[name] = {
            "rows": len(rows),
            "parquet": f"audiences/{name}.parquet",
            "csv": f"audiences/{name}.csv",
            "description": f"the {name.replace('_', ' ')}",
        }
    manifest = {
        "snapshot_id": snapshot_id,
        "published_at": "2026-11-26T19:45:00Z",
        "as_of_date": AS_OF.isoformat(),
        "model_versions": {"segments": "5", "purchase_intent": "1"},
        "profiles": {"file": "user_profiles.parquet", "rows": len(profiles)},
        "audiences": manifest_audiences,
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    if publish:
        point_at(exports, snapshot_id, f"snapshots/{snapshot_id}")
    return root


def point_at(exports: Path, snapshot_id: str, path: str) -> None:
    tmp = exports / ".current.json.tmp"
    tmp.write_text(json.dumps({"snapshot_id": snapshot_id, "path": path}))
    os.replace(tmp, exports / "current.json")


class LiveServer:
    """The real app on uvicorn, in a daemon thread, on a free loopback port."""

    def __init__(self, app, *, graceful_shutdown_seconds: float | None = None) -> None:
        import uvicorn

        self.app = app
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=graceful_shutdown_seconds,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy on loopback

    def get(self, path: str) -> tuple[int, dict, object]:
        try:
            with self._opener.open(self.base + path, timeout=10) as resp:
                return resp.status, dict(resp.headers), json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), json.loads(err.read())

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


SNAP_A = "20261126T194500Z-1a2b3c"
SNAP_B = "20261127T194500Z-4d5e6f"


def snapshot_a_profiles() -> list[dict]:
    keys = TRICKY_KEYS + DECOYS + [f"user{i:03d}" for i in range(20)] + ["x" * 512]
    rows = [profile(key, SNAP_A, i) for i, key in enumerate(keys)]
    rows.append(
        profile(
            "nulls",
            SNAP_A,
            0,
            segment_id=None,
            intent_probability=math.nan,
            intent_decile=None,
            engagement_score=None,
            active_triggers=[],
            segment_model_version=None,
        )
    )
    return rows


AUDIENCES_A = {
    "cart_abandoners": audience_rows("ca", 25),
    "high_intent": audience_rows("hi", 3),
    "loyal_buyers": audience_rows("lb", 1),
    "win_back": [],
}


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> Iterator[LiveServer]:
    """One server over one snapshot that does not change (the reload tests run their own)."""
    exports = tmp_path_factory.mktemp("exports")
    write_snapshot(exports, SNAP_A, snapshot_a_profiles(), AUDIENCES_A)
    server = LiveServer(create_app(exports))
    yield server
    server.stop()


@pytest.fixture
def fresh_api(tmp_path: Path) -> Iterator[tuple[LiveServer, Path]]:
    """A server over an empty exports directory that checks current.json every 20 ms."""
    exports = tmp_path / "exports"
    exports.mkdir()
    server = LiveServer(create_app(exports, reload_interval=0.02, retry_interval=0.1))
    yield server, exports
    server.stop()


# ------------------------------------------------------------------------------------------------ health


def test_health_reports_the_served_snapshot(api: LiveServer) -> None:
    status, _, body = api.get("/health")
    assert status == 200
    assert body == {
        "status": "ok",
        "snapshot_id": SNAP_A,
        "published_at": "2026-11-26T19:45:00Z",
        "as_of_date": "2026-11-26",
        "profiles": len(snapshot_a_profiles()),
        "audiences": {"cart_abandoners": 25, "high_intent": 3, "loyal_buyers": 1, "win_back": 0},
    }


def test_without_a_snapshot_everything_is_503_until_one_is_published(fresh_api) -> None:
    server, exports = fresh_api
    status, _, body = server.get("/health")
    assert status == 503
    assert body["status"] == "unavailable"
    assert "no snapshot published yet" in body["reason"] and "current.json" in body["reason"]
    for path in ("/users/user001", "/audiences", "/audiences/high_intent"):
        status, _, body = server.get(path)
        assert status == 503, path
        assert "no snapshot published yet" in body["detail"]

    write_snapshot(exports, SNAP_A, snapshot_a_profiles(), AUDIENCES_A)
    wait_for(lambda: server.get("/health")[0] == 200)
    assert server.get("/users/user001")[2]["segment_name"] == f"segment of user001 in {SNAP_A}"


# ------------------------------------------------------------------------------------------------ users


@pytest.mark.parametrize("key", TRICKY_KEYS + DECOYS, ids=repr)
def test_profile_of_a_key_with_any_character(api: LiveServer, key: str) -> None:
    status, headers, body = api.get("/users/" + quote(key, safe=""))
    assert status == 200, body
    assert body["user_key"] == key
    assert body["segment_name"] == f"segment of {key} in {SNAP_A}"
    assert headers["x-pulse-snapshot"] == SNAP_A


def test_a_slash_in_a_key_may_also_be_sent_unencoded(api: LiveServer) -> None:
    for key in ("abc/def==", "/lead", "trail/", "日本/ユーザー"):
        status, _, body = api.get("/users/" + quote(key, safe="/"))
        assert status == 200, key
        assert body["user_key"] == key


@pytest.mark.parametrize(
    ("raw_path", "root_path", "key"),
    [
        (b"/users/abc%2Fdef%3D%3D", "", "abc/def=="),
        (b"/users/abc/def==", "", "abc/def=="),
        (b"/users/%C3%BC%252F", "", "\u00fc%2F"),
        (b"/users/a+b%20c", "", "a+b c"),
        (b"/users/%20", "", " "),
        (b"/api/v1/users/x%2F%2Fy", "/api/v1", "x//y"),
    ],
)
def test_the_key_is_the_raw_path_decoded_once(raw_path: bytes, root_path: str, key: str) -> None:
    """uvicorn's decoded path gives the same key, but a server or proxy in front may not (decoding twice,
    merging slashes): the key comes from the raw path whatever the router extracted."""
    from starlette.requests import Request

    from pulse.activation.serve import _user_key

    scope = {"type": "http", "raw_path": raw_path, "root_path": root_path, "path": "/users/mangled"}
    assert _user_key(Request(scope), "mangled") == key
    assert _user_key(Request({"type": "http", "path": "/users/k"}), "k") == "k"  # no raw_path: the router's


def test_profile_json_shape(api: LiveServer) -> None:
    status, _, body = api.get("/users/user003")
    assert status == 200
    published = {
        **profile("user003", SNAP_A, len(TRICKY_KEYS) + len(DECOYS) + 3),
        "as_of_date": "2026-11-26",
        "updated_at": "2026-11-26T19:45:00Z",
    }
    # Every published field as before, plus where each comes from (issue 22: the live merge; this server
    # has no live state, so every field is the snapshot's, as of its as_of_date, and the profile says why).
    live, fields = body.pop("live"), body.pop("fields")
    assert body == {**published, "profile_source": "published", "stitched_from": None}
    assert fields == {name: {"live": False, "as_of": "2026-11-26T00:00:00Z"} for name in published}
    assert live["status"] == "unavailable" and "live state is off" in live["reason"]
    _, _, nulls = api.get("/users/nulls")
    assert nulls["segment_id"] is None and nulls["intent_decile"] is None and nulls["engagement_score"] is None
    assert nulls["intent_probability"] is None  # NaN in the file
    assert nulls["active_triggers"] == [] and nulls["top_categories"] == ["shoes"]
    assert nulls["segment_model_version"] is None


def test_unknown_user_is_404(api: LiveServer) -> None:
    for key in ("nobody", "abc/def=", "ü%252F", "user001/"):
        status, _, body = api.get("/users/" + quote(key, safe=""))
        assert status == 404, key
        assert body == {"detail": f"unknown user_key: {key}"}


def test_user_key_length_is_bounded(api: LiveServer) -> None:
    status, _, body = api.get("/users/" + "x" * 512)
    assert status == 200 and body["user_key"] == "x" * 512
    status, _, body = api.get("/users/" + "x" * 513)
    assert status == 422
    assert body["detail"][0]["loc"] == ["path", "user_key"]
    # 171 characters sent as 513 encoded bytes: a valid key, unknown
    assert api.get("/users/" + quote("/" * 171, safe=""))[0] == 404
    assert api.get("/users/")[0] == 422


# ------------------------------------------------------------------------------------------------ audiences


def test_audience_list(api: LiveServer) -> None:
    status, _, body = api.get("/audiences")
    assert status == 200
    assert body == [
        {"name": name, "rows": len(rows), "description": f"the {name.replace('_', ' ')}"}
        for name, rows in AUDIENCES_A.items()
    ]


@pytest.mark.parametrize("page_size", [1, 7, 25, 100, 1000])
def test_audience_pages_cover_every_row_once_in_order(api: LiveServer, page_size: int) -> None:
    total_pages = -(-25 // page_size)
    seen = []
    for page in range(1, total_pages + 1):
        status, _, body = api.get(f"/audiences/cart_abandoners?page={page}&page_size={page_size}")
        assert status == 200
        assert {k: v for k, v in body.items() if k != "rows"} == {
            "audience": "cart_abandoners",
            "snapshot_id": SNAP_A,
            "page": page,
            "page_size": page_size,
            "total_rows": 25,
            "total_pages": total_pages,
        }
        assert len(body["rows"]) == (page_size if page < total_pages else 25 - page_size * (total_pages - 1))
        seen += body["rows"]
    assert [r["user_key"] for r in seen] == [f"ca{i:03d}" for i in range(25)]


def test_audience_rows_serve_every_column(api: LiveServer) -> None:
    _, _, body = api.get("/audiences/cart_abandoners?page_size=3")
    assert body["rows"] == [
        {"user_key": "ca000", "reason": "reason 0", "score": None, "channel": "email", "last_seen": "2026-11-01"},
        {"user_key": "ca001", "reason": "reason 1", "score": None, "channel": "email", "last_seen": "2026-11-02"},
        {"user_key": "ca002", "reason": "reason 2", "score": 0.02, "channel": "email", "last_seen": "2026-11-03"},
    ]
    _, _, default = api.get("/audiences/cart_abandoners")
    assert default["page"] == 1 and default["page_size"] == 100 and len(default["rows"]) == 25


def test_a_page_past_the_end_is_empty(api: LiveServer) -> None:
    for path, total_pages in (
        ("/audiences/high_intent?page=2&page_size=3", 1),
        ("/audiences/high_intent?page=1000000000000&page_size=1000", 1),
        ("/audiences/win_back", 0),
        ("/audiences/win_back?page=5", 0),
    ):
        status, _, body = api.get(path)
        assert status == 200, path
        assert body["rows"] == [] and body["total_pages"] == total_pages, path
    _, _, empty = api.get("/audiences/win_back")
    assert empty["total_rows"] == 0


@pytest.mark.parametrize(
    "query", ["page_size=0", "page_size=1001", "page=0", "page=-1", "page=x", "page_size=1.5"], ids=str
)
def test_bad_paging_is_422(api: LiveServer, query: str) -> None:
    status, _, body = api.get(f"/audiences/high_intent?{query}")
    assert status == 422
    assert body["detail"][0]["loc"][0] == "query"


@pytest.mark.parametrize("name", ["High_Intent", "high-intent", "a" * 65, "%2E%2E", "caf%C3%A9"])
def test_bad_audience_name_is_422(api: LiveServer, name: str) -> None:
    status, _, body = api.get(f"/audiences/{name}")
    assert status == 422
    assert body["detail"][0]["loc"] == ["path", "name"]


def test_unknown_audience_is_404(api: LiveServer) -> None:
    status, _, body = api.get("/audiences/big_spenders")
    assert status == 404
    assert body == {"detail": "unknown audience: big_spenders"}


# ------------------------------------------------------------------------------------------------ OpenAPI


def test_openapi_documents_every_endpoint(api: LiveServer) -> None:
    from importlib.metadata import version

    status, _, spec = api.get("/openapi.json")
    assert status == 200
    assert spec["info"]["title"] == "pulse read API"
    assert spec["info"]["version"] == version("pulse")
    assert set(spec["paths"]) == {
        "/health",
        "/users/{user_key}",
        "/users/{user_key}/next",
        "/audiences",
        "/audiences/{name}",
        "/stream/firings",
    }
    stream = spec["paths"]["/stream/firings"]["get"]
    assert "text/event-stream" in stream["responses"]["200"]["content"]
    assert [p["name"] for p in stream["parameters"]] == ["after"]
    user = spec["paths"]["/users/{user_key}"]["get"]
    assert set(user["responses"]) >= {"200", "404", "422", "503"}
    profile_schema = spec["components"]["schemas"]["UserProfile"]["properties"]
    assert set(PROFILE_SCHEMA.names) <= set(profile_schema)
    page = spec["paths"]["/audiences/{name}"]["get"]
    page_size = next(p for p in page["parameters"] if p["name"] == "page_size")["schema"]
    assert (page_size["minimum"], page_size["maximum"], page_size["default"]) == (1, 1000, 100)
    assert set(spec["components"]["schemas"]["AudiencePage"]["properties"]) == {
        "audience",
        "snapshot_id",
        "page",
        "page_size",
        "total_rows",
        "total_pages",
        "rows",
    }
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(api.base + "/docs") as resp:
        assert resp.status == 200 and b"swagger" in resp.read().lower()


def _fetch(api: LiveServer, path: str) -> tuple[int, str, bytes]:
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(api.base + path, timeout=10) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), resp.read()


def _asset_urls(page: str) -> list[str]:
    """Every URL the page loads: src/href attributes, the spec URL and url(...) in inline styles."""
    return re.findall(r'(?:src|href|spec-url)="([^"]*)"', page) + re.findall(r"url: '([^']*)'", page)


@pytest.mark.parametrize(
    ("path", "assets"),
    [
        ("/docs", {"/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css", "/docs-assets/favicon.png"}),
        ("/redoc", {"/docs-assets/redoc.standalone.js", "/docs-assets/favicon.png"}),
    ],
)
def test_the_docs_pages_load_only_local_assets(api: LiveServer, path: str, assets: set[str]) -> None:
    status, content_type, body = _fetch(api, path)
    page = body.decode()
    assert status == 200 and content_type.startswith("text/html")
    urls = _asset_urls(page)
    assert set(urls) == assets | {"/openapi.json"}, urls
    assert "//" not in "".join(urls)  # no scheme, no other host: nothing from a CDN
    assert "cdn." not in page and "fonts.googleapis" not in page
    assert "validator.swagger.io" not in page
    for url in assets:
        status, content_type, asset = _fetch(api, url)
        assert status == 200 and len(asset) > 1000, url
        assert content_type.split(";")[0] in {"text/javascript", "application/javascript", "text/css", "image/png"}


def test_the_docs_assets_are_not_part_of_the_api(api: LiveServer) -> None:
    _, _, spec = api.get("/openapi.json")
    assert not any(p.startswith(("/docs", "/redoc")) for p in spec["paths"])
    status, _, _ = _fetch(api, "/docs/oauth2-redirect")
    assert status == 200


# ------------------------------------------------------------------------------------------------ hot reload


def test_a_new_snapshot_is_served_without_restart(fresh_api) -> None:
    server, exports = fresh_api
    write_snapshot(exports, SNAP_A, snapshot_a_profiles(), AUDIENCES_A)
    wait_for(lambda: server.get("/health")[2].get("snapshot_id") == SNAP_A)

    profiles_b = [profile("user001", SNAP_B, 1), profile("only-in-b", SNAP_B, 2)]
    write_snapshot(exports, SNAP_B, profiles_b, {"high_intent": audience_rows("b", 2)}, naive_timestamps=True)
    wait_for(lambda: server.get("/health")[2].get("snapshot_id") == SNAP_B)

    status, headers, body = server.get("/health")
    assert body["profiles"] == 2 and body["audiences"] == {"high_intent": 2}
    status, headers, body = server.get("/users/user001")
    assert body["segment_name"] == f"segment of user001 in {SNAP_B}" and headers["x-pulse-snapshot"] == SNAP_B
    assert body["updated_at"] == "2026-11-26T19:45:00Z"  # naive in the file: UTC
    assert server.get("/users/only-in-b")[0] == 200
    assert server.get("/users/" + quote("abc/def==", safe=""))[0] == 404
    assert server.get("/audiences/cart_abandoners")[0] == 404
    assert [r["user_key"] for r in server.get("/audiences/high_intent")[2]["rows"]] == ["b000", "b001"]


def test_a_snapshot_that_cannot_be_read_keeps_the_old_one_served(fresh_api) -> None:
    server, exports = fresh_api
    write_snapshot(exports, SNAP_A, snapshot_a_profiles(), AUDIENCES_A)
    wait_for(lambda: server.get("/health")[0] == 200)
    store = server.app.state.store

    point_at(exports, "20261128T000000Z-gone00", "snapshots/20261128T000000Z-gone00")  # deleted under us
    wait_for(lambda: store.problem is not None and "gone00" in store.problem)
    truncated = write_snapshot(exports, "20261129T000000Z-half00", [profile("u", "h", 0)], {}, publish=False)
    (truncated / "user_profiles.parquet").write_bytes(b"PAR1 half written")
    point_at(exports, "20261129T000000Z-half00", "snapshots/20261129T000000Z-half00")
    wait_for(lambda: "half00" in (store.problem or ""))
    time.sleep(0.2)  # a few more checks and retries

    status, _, body = server.get("/health")
    assert status == 200 and body["snapshot_id"] == SNAP_A
    assert server.get("/users/user001")[2]["segment_name"] == f"segment of user001 in {SNAP_A}"

    # the snapshot becomes readable later (retried): it is picked up
    (truncated / "user_profiles.parquet").unlink()
    pq.write_table(
        pa.Table.from_pylist([profile("u", "h", 0)], schema=PROFILE_SCHEMA), truncated / "user_profiles.parquet"
    )
    wait_for(lambda: server.get("/health")[2].get("snapshot_id") == "20261129T000000Z-half00")
    assert store.problem is None


def test_requests_during_reloads_see_one_snapshot_or_the_other(fresh_api) -> None:
    server, exports = fresh_api
    keys = [f"user{i:03d}" for i in range(200)]
    ids = [f"2026112{i}T000000Z-abc{i:03d}" for i in range(6)]
    for snapshot_id in ids:
        write_snapshot(
            exports, snapshot_id, [profile(k, snapshot_id, i) for i, k in enumerate(keys)], {}, publish=False
        )
    point_at(exports, ids[0], f"snapshots/{ids[0]}")
    wait_for(lambda: server.get("/health")[0] == 200)

    stop = threading.Event()

    def publisher() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            point_at(exports, ids[i % len(ids)], f"snapshots/{ids[i % len(ids)]}")
            time.sleep(0.03)

    thread = threading.Thread(target=publisher)
    thread.start()
    try:
        served = set()
        for n in range(300):
            key = keys[n % len(keys)]
            status, headers, body = server.get(f"/users/{key}")
            assert status == 200
            assert body["segment_name"] == f"segment of {key} in {headers['x-pulse-snapshot']}"
            served.add(headers["x-pulse-snapshot"])
    finally:
        stop.set()
        thread.join()
    assert len(served) > 1  # the snapshots did change under the requests


# ------------------------------------------------------------------------------------------------ CLI


def test_the_cli_has_a_serve_command(tmp_path: Path) -> None:
    from pulse.cli.commands import build_parser, cmd_serve

    args = build_parser().parse_args(["serve", "--port", "8123", "--exports", str(tmp_path)])
    assert (args.func, args.host, args.port, args.exports) == (cmd_serve, "127.0.0.1", 8123, str(tmp_path))
    defaults = build_parser().parse_args(["serve"])
    assert (defaults.host, defaults.port, defaults.exports) == ("127.0.0.1", 8000, None)
