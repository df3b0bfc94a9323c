"""Identity stitching end to end: an anonymous visitor who logs in becomes that user for every event,
before and after; a device shared by two users is reported, never merged."""

import gzip
import json
from datetime import date

import dagster as dg
import duckdb
import pytest

from orchestration.materialize import materialize_range

pytestmark = pytest.mark.integration
DAY = date(2026, 9, 1)


def ev(n: int, minute: int, event_type: str = "page_view", **ids: str) -> dict:
    return {"event_id": f"e{n}", "event_type": event_type, "event_time": f"2026-09-01T10:{minute:02d}:00Z", **ids}


def test_anonymous_events_are_stitched_to_the_latest_user_and_conflicts_are_reported(pulse_home) -> None:
    events = [
        ev(1, 0, anonymous_id="cookie-a"),  # browses anonymously ...
        ev(2, 2, "product_view", anonymous_id="cookie-a"),
        ev(3, 4, "identify", anonymous_id="cookie-a", user_id="alice"),  # ... logs in ...
        ev(4, 6, "add_to_cart", anonymous_id="cookie-a"),  # ... and the cookie keeps coming without a user id
        ev(5, 8, anonymous_id="cookie-b"),  # a shared tablet: bob, then carol
        ev(6, 9, "identify", anonymous_id="cookie-b", user_id="bob"),
        ev(7, 40, "identify", anonymous_id="cookie-b", user_id="carol"),
        ev(8, 41, anonymous_id="cookie-b"),
        ev(9, 42, anonymous_id="cookie-c"),  # never logs in
    ]
    folder = pulse_home.events_landing / DAY.isoformat()
    folder.mkdir(parents=True)
    (folder / "events.jsonl.gz").write_bytes(gzip.compress("\n".join(json.dumps(e) for e in events).encode()))

    result = materialize_range(DAY, DAY, instance=dg.DagsterInstance.ephemeral(), quiet=True)
    assert result.success

    con = duckdb.connect(str(pulse_home.warehouse), read_only=True)
    try:
        keys = dict(con.execute("select event_id, user_key from stg_events").fetchall())
        assert keys == {
            "e1": "alice",
            "e2": "alice",
            "e3": "alice",
            "e4": "alice",
            "e5": "carol",  # the latest user seen with cookie-b
            "e6": "bob",  # an event that carries a user id keeps it
            "e7": "carol",
            "e8": "carol",
            "e9": "cookie-c",
        }
        # alice's anonymous browsing and her logged-in cart add are one session.
        sessions = con.execute(
            "select user_key, events, cart_adds from fct_sessions where user_key = 'alice'"
        ).fetchall()
        assert sessions == [("alice", 4, 1)]
        conflicts = con.execute(
            "select anonymous_id, user_id, is_stitched_user from qa_identity_conflicts order by user_id"
        ).fetchall()
        assert conflicts == [("cookie-b", "bob", False), ("cookie-b", "carol", True)]
        users = {r[0] for r in con.execute("select user_key from dim_users").fetchall()}
        assert users == {"alice", "bob", "carol", "cookie-c"}
    finally:
        con.close()
