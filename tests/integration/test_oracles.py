"""Oracle tests: real public event data imported with `pulse import`, run through the whole pipeline, and
compared with what another implementation (Snowplow's own dbt packages) computed from the same events.

The three datasets (tests/fixtures/*/ORIGIN.md) go into ONE temporary PULSE_HOME and one Dagster run:
their ids never overlap (hashed Snowplow cookies, `otto-<session>`), and one run costs ~10 s of overhead.
Settings as behind Snowplow's expected rows: heartbeat 10 s and minimum visit 5 s (pulse's defaults).
Where pulse defines a figure differently from Snowplow, the test names the cases that differ and why
(docs/oracles.md), and asserts everything else matches.
"""

import csv
import json
from collections import Counter
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration.materialize import materialize_range
from pulse.importers import import_files
from pulse.ingest.raw_events import landed_days

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).parents[1] / "fixtures"
WEB = FIXTURES / "snowplow-web"
ECOM = FIXTURES / "snowplow-ecommerce"
OTTO = FIXTURES / "otto-sample" / "train.jsonl"


def expected_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def number(text: str) -> float:
    return 0.0 if text in ("", None) else float(text)


@pytest.fixture(scope="module")
def oracle(tmp_path_factory, isolated_pulse_home):
    with isolated_pulse_home(tmp_path_factory.mktemp("oracle") / "home") as paths:
        imports = {
            "web": import_files(
                "snowplow", [WEB / "source" / "snowplow_web_events.csv"], paths.landing, progress=False
            ),
            "ecom": import_files(
                "snowplow", [ECOM / "source" / "snowplow_ecommerce_events.csv"], paths.landing, progress=False
            ),
            "otto": import_files("otto", [OTTO], paths.landing, progress=False),
        }
        days = landed_days(paths.events_landing)
        result = materialize_range(days[0], days[-1], instance=dg.DagsterInstance.ephemeral(), quiet=True)
        con = duckdb.connect(str(paths.warehouse), read_only=True)
        try:
            yield imports, result, con
        finally:
            con.close()


def test_the_pipeline_runs_and_reconciles(oracle) -> None:
    imports, result, con = oracle
    assert result.success
    lines = sum(s.events_written for s in imports.values())
    accepted, quarantined = con.execute(
        "select (select count(*) from raw.events), (select count(*) from raw.events_quarantine)"
    ).fetchall()[0]
    assert accepted + quarantined == lines
    assert quarantined == 0  # every imported event keeps the contract
    assert imports["web"].events_written == 160 and imports["ecom"].events_written == 833
    assert imports["ecom"].rejected == 1  # the `skip-me` app event without any user or cookie id


def test_snowplow_web_page_views_match_engaged_time_and_scroll_depth(oracle) -> None:
    _, _, con = oracle
    got = {
        key: (engaged, px, pct)
        for key, engaged, px, pct in con.execute(
            "select page_view_key, engaged_seconds, scroll_depth_px, scroll_depth_pct from fct_page_views"
        ).fetchall()
    }
    expected = expected_rows(WEB / "expected" / "snowplow_web_page_views_expected.csv")
    assert len(expected) == 43
    mismatches = []
    for row in expected:
        want = (
            number(row["engaged_time_in_s"]),
            number(row["vertical_pixels_scrolled"]),
            number(row["vertical_percentage_scrolled"]),
        )
        have = got.get(row["page_view_id"])
        if have is None or tuple(float(x) for x in have) != want:
            mismatches.append((row["page_view_id"], row["user_id"], want, have))
    assert mismatches == []
    # Edge cases behind those rows, checked to be present rather than trusted.
    assert any(e > 0 for e, _, _ in got.values())  # "No edge cases" has 45 s of pings
    assert any(pct is not None and pct < 100 for _, _, pct in got.values())


# Client sessions whose figures differ from Snowplow's by definition (docs/oracles.md):
# - "long session" and "Unexpired session": Snowplow drops a cookie session's events after
#   max_session_days (3); pulse keeps them (its sessions end after 30 min of inactivity; visits over 24 h
#   are cut and reported in qa_sessions_cut).
# - the three sessions made only of a stray page ping: Snowplow counts the ping as a page view with 5 s
#   engaged in the session it arrives in; pulse credits pings only to their page view's own session, so
#   these sessions have no page view and 0 s (and the page views they belong to match above).
WEB_SESSIONS_DIFFERENT_BY_DEFINITION = {
    "2bfc2c760c3ac434953eefd7903789429c8a5f8171c4b8b26aee93108b77bd35": "long session",
    "d21c000a5953335da6cd125ac349135ae6524b04dd4b107a263dfb1de131b12d": "Unexpired session",
    "0b0c7bb589ebd041177514f3e43446ca5d4343328936d2f8f12a42b41bf9140d": "stray page ping",
    "0b0c7bb589ebd041177514f3e43446ca5d4343328936d2f8f12a42b41bf9140e": "stray page ping",
    "0b5d421a98dc6af66d7da30840afb1072f518342ca058cef3af20a6e9b30fce8": "stray page ping",
}


def test_snowplow_web_sessions_match_page_views_and_engaged_time(oracle) -> None:
    _, _, con = oracle
    got = {
        sid: (int(pv), int(engaged))
        for sid, pv, engaged in con.execute(
            "select client_session_id, sum(page_views), sum(engaged_seconds) from fct_sessions group by 1"
        ).fetchall()
    }
    expected = expected_rows(WEB / "expected" / "snowplow_web_sessions_expected.csv")
    assert len(expected) == 18
    differ = {}
    for row in expected:
        sid = row["domain_sessionid"]
        want = (int(number(row["page_views"])), int(number(row["engaged_time_in_s"])))
        if got.get(sid) != want:
            differ[sid] = (row["user_id"], want, got.get(sid))
    assert set(differ) == set(WEB_SESSIONS_DIFFERENT_BY_DEFINITION), differ
    assert len(expected) - len(differ) == 13


# pulse's is_cart_abandoned (something added after the session's last purchase; needs no cart totals)
# differs from Snowplow's session_cart_abandoned on these three; has_unconverted_cart is Snowplow's rule.
IS_CART_ABANDONED_DIFFERENT_BY_DEFINITION = {
    # one add to a cart begun earlier, no purchase: Snowplow created no cart here
    "bbcf9fb2fc": (False, True),
    # carts created then emptied count as abandoned for Snowplow, though the session ends with a purchase
    "996606dcff": (True, False),
    "0a42e1e29b": (True, False),
}


def test_snowplow_ecommerce_sessions_match_carts_transactions_revenue_and_abandonment(oracle) -> None:
    _, _, con = oracle
    got = {
        sid: (int(adds), int(purchases), round(float(revenue), 2), int(created), int(emptied), bool(unconverted))
        for sid, adds, purchases, revenue, created, emptied, unconverted in con.execute(
            """select client_session_id, sum(cart_adds), sum(purchases), sum(revenue), sum(carts_created),
                sum(carts_emptied), coalesce(bool_or(has_unconverted_cart), false)
            from fct_sessions group by 1"""
        ).fetchall()
    }
    is_cart_abandoned = dict(
        con.execute("select client_session_id, bool_or(is_cart_abandoned) from fct_sessions group by 1").fetchall()
    )
    expected = expected_rows(ECOM / "expected" / "snowplow_ecommerce_sessions_expected.csv")
    assert len(expected) == 63
    differ, abandoned_differ = [], {}
    for row in expected:
        sid = row["domain_sessionid"]
        snowplow_abandoned = row["session_cart_abandoned"].lower() == "true"
        want = (
            int(number(row["number_add_to_carts"])),
            int(number(row["total_number_transactions"])),
            round(number(row["total_transaction_revenue"]), 2),
            int(number(row["number_carts_created"])),
            int(number(row["number_carts_emptied"])),
            snowplow_abandoned,
        )
        if got.get(sid) != want:
            differ.append((sid, want, got.get(sid)))
        if is_cart_abandoned.get(sid) != snowplow_abandoned:
            abandoned_differ[sid[:10]] = (snowplow_abandoned, is_cart_abandoned.get(sid))
    assert differ == []
    assert abandoned_differ == IS_CART_ABANDONED_DIFFERENT_BY_DEFINITION
    # not a vacuous match: carts were added, created, emptied and abandoned in the fixture
    assert sum(1 for row in expected if number(row["number_add_to_carts"]) > 0) > 10
    assert sum(1 for row in expected if number(row["number_carts_emptied"]) > 0) >= 2
    assert sum(1 for row in expected if row["session_cart_abandoned"].lower() == "true") >= 5


def test_otto_sessions_and_their_cart_and_order_counts_are_preserved(oracle) -> None:
    imports, _, con = oracle
    expected: dict[str, Counter] = {}
    total = 0
    with OTTO.open() as f:
        for line in f:
            session = json.loads(line)
            expected[f"otto-{session['session']}"] = Counter(e["type"] for e in session["events"])
            total += len(session["events"])
    assert total == 862 and len(expected) == 20
    assert imports["otto"].events_written == 862
    got = {
        sid: Counter({"clicks": views, "carts": adds, "orders": purchases})
        for sid, views, adds, purchases in con.execute(
            """select client_session_id, sum(product_views), sum(cart_adds), sum(purchases)
            from fct_sessions where client_session_id like 'otto-%' group by 1"""
        ).fetchall()
    }
    assert {sid: +c for sid, c in got.items()} == expected
    events = con.execute("select count(*) from stg_events where client_session_id like 'otto-%'").fetchall()[0][0]
    assert events == 862
