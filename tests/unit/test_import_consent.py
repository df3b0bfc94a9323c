"""Consent for imports: `pulse import --consent ... --consent-basis ...` (pulse/importers/consent.py), the
sources' own consent flags, the import record, the collector refusing the field, and how the counts are worded
(pulse/activation/consent.py) and published (pulse/activation/publish.py)."""

from __future__ import annotations

import csv
import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from pulse.activation.consent import FIX_COMMAND, ConsentCounts, read_consent_counts
from pulse.activation.publish import publish_snapshot, published_consent_lines
from pulse.cli.commands import main
from pulse.collector.events import RequestContext, contract_violation, enrich
from pulse.core.warehouse import DuckDBWarehouse
from pulse.importers import ConsentDeclaration, ConsentError, ImportSummary, import_files
from pulse.importers.consent import ConsentTally, apply_declaration, flags_from_categories, flags_from_scopes
from pulse.ingest.raw_events import ingest_day, landed_days

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
WEB_EVENTS = FIXTURES / "snowplow-web" / "source" / "snowplow_web_events.csv"
SEGMENT = FIXTURES / "segment" / "sample.jsonl"
BASIS = "consent collected at sign-up (form v3)"
PERSONALIZATION = ConsentDeclaration.parse("personalization", BASIS)


def read_events(summary: ImportSummary) -> list[dict]:
    events = []
    for path in sorted(summary.outputs):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            events += [json.loads(line) for line in fh]
    return events


def write_jsonl(path: Path, events: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def event(n: int, **fields: object) -> dict:
    return {
        "event_id": f"e{n}",
        "event_type": "page_view",
        "event_time": f"2019-10-0{n % 9 + 1}T10:00:00Z",
        "user_id": f"u{n}",
        **fields,
    }


# ---------------------------------------------------------------------------------------------- the declaration


@pytest.mark.parametrize(
    ("consent", "basis", "message"),
    [
        ("personalization", None, "--consent personalization needs --consent-basis"),
        ("all", "   ", "--consent all needs --consent-basis"),
        ("maybe", "contract", "--consent 'maybe' is not one of none, analytics, personalization, all"),
        ("none", "contract", "--consent-basis 'contract' without --consent"),
        (None, "contract", "--consent-basis 'contract' without --consent"),
        ("analytics", "x" * 201, "--consent-basis is 201 characters long; at most 200"),
    ],
)
def test_bad_declarations_are_explained(consent: str | None, basis: str | None, message: str) -> None:
    with pytest.raises(ConsentError) as raised:
        ConsentDeclaration.parse(consent, basis)
    assert message in str(raised.value)


def test_a_declaration_is_normalized() -> None:
    assert ConsentDeclaration.parse(None, None) == ConsentDeclaration()
    declared = ConsentDeclaration.parse(" ALL ", "  contract \n signed ")
    assert (declared.consent, declared.basis, declared.flags) == (
        "all",
        "contract signed",
        ("consent_analytics", "consent_personalization"),
    )


def test_cli_refuses_a_declaration_without_basis_and_an_unknown_value(tmp_path: Path, capsys) -> None:
    source = write_jsonl(tmp_path / "events.jsonl", [event(1)])
    landing = tmp_path / "landing"
    rc = main(["import", "--format", "jsonl", "--landing", str(landing), "--consent", "personalization", str(source)])
    assert rc == 2
    assert "needs --consent-basis" in capsys.readouterr().err
    with pytest.raises(SystemExit) as raised:
        main(["import", "--format", "jsonl", "--landing", str(landing), "--consent", "yes", str(source)])
    assert raised.value.code == 2
    assert "argument --consent: invalid choice: 'yes'" in capsys.readouterr().err
    assert not landing.exists()  # nothing written


# ---------------------------------------------------------------------------------------------- filling flags


def test_declared_flags_fill_only_what_events_lack(tmp_path: Path) -> None:
    source = write_jsonl(
        tmp_path / "events.jsonl",
        [
            event(1),  # nothing: both flags declared
            event(2, consent_personalization=False),  # an own refusal: kept; analytics filled
            event(3, consent_analytics=True, consent_personalization=True),  # both own: untouched
            event(4, properties={"consent_personalization": "nested, not a flag"}),  # filled
            event(5, consent_personalization=None, consent_basis="contract"),  # null = absent; own basis kept
        ],
    )
    declaration = ConsentDeclaration.parse("all", BASIS)
    summary = import_files("jsonl", [source], tmp_path / "landing", declaration=declaration)
    by_id = {e["event_id"]: e for e in read_events(summary)}
    flags = {
        k: (e.get("consent_analytics"), e.get("consent_personalization"), e.get("consent_basis"))
        for k, e in by_id.items()
    }
    assert flags == {
        "e1": (True, True, BASIS),
        "e2": (True, False, BASIS),
        "e3": (True, True, None),
        "e4": (True, True, BASIS),
        "e5": (True, True, "contract"),
    }
    assert by_id["e4"]["properties"] == {"consent_personalization": "nested, not a flag"}
    tally = summary.consent
    assert (tally.declared, tally.own, tally.own_refusals) == (4, 2, 1)


def test_without_a_declaration_events_are_copied_unchanged(tmp_path: Path) -> None:
    lines = [json.dumps(event(1)), json.dumps(event(2, consent_personalization=False))]
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join(lines) + "\n")
    summary = import_files("jsonl", [source], tmp_path / "landing")
    written = []
    for path in sorted(summary.outputs):
        written += gzip.decompress(path.read_bytes()).decode().splitlines()
    assert sorted(written) == sorted(lines)
    assert (summary.consent.declared, summary.consent.own, summary.consent.own_refusals) == (0, 1, 1)


def test_the_fast_path_and_the_parsed_path_agree() -> None:
    """A line without any consent key is extended as text; the same event with a null flag is parsed."""
    tally = ConsentTally()
    fast = apply_declaration('{"event_id":"e1","user_id":"u"}', PERSONALIZATION, tally)
    parsed = apply_declaration('{"event_id":"e1","user_id":"u","consent_personalization":null}', PERSONALIZATION, tally)
    assert (
        json.loads(fast)
        == json.loads(parsed)
        == {
            "event_id": "e1",
            "user_id": "u",
            "consent_personalization": True,
            "consent_basis": BASIS,
        }
    )
    assert tally.declared == 2


def test_mapped_consent_column_with_refusals_is_kept(tmp_path: Path) -> None:
    """A CRM export whose column says who refused: the declaration covers only the rows that say nothing."""
    mapping = tmp_path / "crm.yaml"
    mapping.write_text(
        "fields:\n"
        "  event_id: {column: order_id, prefix: order-}\n"
        "  event_type: {value: purchase}\n"
        "  event_time: {column: ordered_at, timezone: UTC}\n"
        "  user_id: customer_id\n"
        "  revenue: amount\n"
        "  consent_personalization: newsletter_ok\n"
    )
    source = tmp_path / "orders.csv"
    with source.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["order_id", "customer_id", "ordered_at", "amount", "newsletter_ok"])
        writer.writerow(["1", "c1", "2018-03-01 10:00:00", "10", "no"])
        writer.writerow(["2", "c2", "2018-03-01 11:00:00", "20", ""])
        writer.writerow(["3", "c3", "2018-03-02 11:00:00", "30", "yes"])
    summary = import_files("mapped", [source], tmp_path / "landing", mapping=mapping, declaration=PERSONALIZATION)
    flags = {e["user_id"]: (e["consent_personalization"], e.get("consent_basis")) for e in read_events(summary)}
    assert flags == {"c1": (False, None), "c2": (True, BASIS), "c3": (True, None)}
    assert (summary.consent.declared, summary.consent.own, summary.consent.own_refusals) == (1, 2, 1)


# ---------------------------------------------------------------------------------------------- sources' own consent


def test_snowplow_consent_events_become_flags_and_a_declaration_keeps_them(tmp_path: Path) -> None:
    """The public Snowplow web fixture has 32 consent_preferences events (allow_all, allow_selected with
    scopes, deny_all): they carry the user's own flags; with a declaration, the other 128 events get the
    declared flag and the consent events keep theirs."""
    plain = import_files("snowplow", [WEB_EVENTS], tmp_path / "plain")
    declared = import_files("snowplow", [WEB_EVENTS], tmp_path / "declared", declaration=PERSONALIZATION)
    consent_events = [e for e in read_events(plain) if e["event_type"] == "custom.consent_preferences"]
    assert len(consent_events) == 32
    for e in consent_events:
        kind, scopes = e["properties"]["data"]["event_type"], e["properties"]["data"]["consent_scopes"]
        expected = {
            "allow_all": (True, True),
            "deny_all": (False, False),
            "allow_selected": ("statistics" in scopes, "marketing" in scopes),
        }[kind]
        assert (e["consent_analytics"], e["consent_personalization"]) == expected, e["properties"]["data"]
    refusals = sum(1 for e in consent_events if e["consent_personalization"] is False)
    assert refusals > 0
    others = [e for e in read_events(plain) if e["event_type"] != "custom.consent_preferences"]
    assert not any("consent_personalization" in e for e in others)

    by_id = {e["event_id"]: e for e in read_events(declared)}
    for e in consent_events:  # their own flags, no basis
        got = by_id[e["event_id"]]
        assert (got["consent_personalization"], got.get("consent_basis")) == (e["consent_personalization"], None)
    assert all(by_id[e["event_id"]]["consent_personalization"] is True for e in others)
    assert all(by_id[e["event_id"]]["consent_basis"] == BASIS for e in others)
    assert (declared.consent.declared, declared.consent.own, declared.consent.own_refusals) == (128, 32, refusals)


def test_consent_scopes_and_categories() -> None:
    assert flags_from_scopes(["necessary", "statistics"]) == {
        "consent_analytics": True,
        "consent_personalization": False,
    }
    assert flags_from_scopes(["Marketing Cookies", "preferences"]) == {
        "consent_analytics": False,
        "consent_personalization": True,
    }
    assert flags_from_categories({"Advertising": False, "Analytics": True, "Functional": True}) == {
        "consent_analytics": True,
        "consent_personalization": False,
    }
    assert flags_from_categories({"Functional": True}) == {}


def test_segment_consent_categories(tmp_path: Path) -> None:
    message = {
        "type": "track",
        "event": "Product Viewed",
        "messageId": "m1",
        "userId": "u1",
        "timestamp": "2020-05-01T10:00:00Z",
        "context": {"consent": {"categoryPreferences": {"Advertising": False, "Analytics": True}}},
    }
    summary = import_files("segment", [write_jsonl(tmp_path / "s.jsonl", [message])], tmp_path / "landing")
    [e] = read_events(summary)
    assert (e["consent_analytics"], e["consent_personalization"]) == (True, False)


# ---------------------------------------------------------------------------------------------- record, output


def test_the_import_records_what_it_did(tmp_path: Path, capsys) -> None:
    landing = tmp_path / "landing"
    rc = main(
        ["import", "--format", "segment", "--landing", str(landing), "--quiet", "--consent", "personalization"]
        + ["--consent-basis", BASIS, str(SEGMENT)]
    )
    out = capsys.readouterr().out
    assert rc == 0
    declared = "consent_personalization = true where the event has no value of its own"
    assert f"consent: personalization declared ({declared}), basis: {BASIS!r}" in out
    assert "15 of 15 events got the declared flags and consent_basis; 0 carried consent flags of their own" in out
    [record_file] = (landing / "imports").glob("import-segment-*.json")
    assert f"recorded in {record_file}" in out
    record = json.loads(record_file.read_text())
    assert record["source_file"] == str(SEGMENT)
    assert (record["format"], record["rows_read"], record["events_written"], record["rejected"]) == (
        "segment",
        22,
        15,
        7,
    )
    assert record["consent"] == {
        "consent": "personalization",
        "basis": BASIS,
        "flags": ["consent_personalization"],
        "events_declared": 15,
        "events_with_own_flags": 0,
        "own_refusals": 0,
    }
    assert all((landing / f).exists() for f in record["event_files"])
    assert not landed_days(landing / "imports")  # not a landing folder: ingestion never reads it

    rc = main(["import", "--format", "segment", "--landing", str(landing), "--quiet", str(SEGMENT)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "consent: none declared (the default)" in out
    assert "users without a consent_personalization flag are never exported" in out
    assert "--consent personalization --consent-basis" in out
    assert json.loads(record_file.read_text())["consent"]["consent"] == "none"  # the re-import replaced it


def test_declared_events_ingest_with_their_basis(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "events.jsonl", [event(1), event(2, consent_personalization=False)])
    landing = tmp_path / "landing"
    import_files("jsonl", [source], landing, declaration=PERSONALIZATION)
    con = duckdb.connect()
    for day in landed_days(landing / "events"):
        assert ingest_day(con, landing / "events", day).quarantined == 0
    rows = con.execute(
        "select event_id, consent_personalization, consent_basis from raw.events order by event_id"
    ).fetchall()
    assert rows == [("e1", True, BASIS), ("e2", False, None)]


def test_ingestion_adds_consent_basis_to_an_older_raw_events(tmp_path: Path) -> None:
    con = duckdb.connect()
    source = write_jsonl(tmp_path / "events.jsonl", [event(1)])
    import_files("jsonl", [source], tmp_path / "landing", declaration=PERSONALIZATION)
    [day] = landed_days(tmp_path / "landing" / "events")
    ingest_day(con, tmp_path / "landing" / "events", day)
    con.execute("alter table raw.events drop column consent_basis")  # raw.events as contract v1.2 made it
    ingest_day(con, tmp_path / "landing" / "events", day)
    assert con.execute("select consent_basis from raw.events").fetchall() == [(BASIS,)]


# ---------------------------------------------------------------------------------------------- collector


def test_the_collector_removes_a_clients_consent_basis() -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    sent = {
        "event_id": "e1",
        "event_type": "page_view",
        "event_time": "2026-11-27T11:59:00Z",
        "anonymous_id": "a1",
        "consent_personalization": True,
        "consent_basis": {"not": "a string"},
    }
    assert contract_violation(sent, now) is None  # not checked: it is removed, never stored
    context = RequestContext("2026-11-27T12:00:00.000Z", "Mozilla/5.0", "192.0.2.0", False, None)
    enriched = enrich(sent, context)
    assert "consent_basis" not in enriched and enriched["consent_personalization"] is True


# ---------------------------------------------------------------------------------------------- counts


def test_counts_from_rows_manifest_and_lines() -> None:
    counts = ConsentCounts.from_rows(
        [("granted", BASIS, 800), ("granted", None, 300), ("refused", None, 30), ("no_signal", None, 120)]
    )
    assert (counts.published, counts.left_out, counts.profiled) == (1100, 150, 1250)
    manifest = counts.as_manifest()
    assert manifest["published_by_basis"] == {"own_flag": 300, "declared": {BASIS: 800}}
    assert manifest["left_out"] == {"no_signal": 120, "refused": 30}
    assert ConsentCounts.from_manifest(manifest) == counts
    text = "\n".join(counts.lines())
    assert "1,100 of 1,250 profiled users published (their own flag 300, declared" in text
    assert "120 never sent a personalization flag (no signal), 30 refused" in text
    assert "NOBODY" not in text and FIX_COMMAND not in text
    with pytest.raises(ValueError, match="unknown personalization_consent 'maybe'"):
        ConsentCounts.from_rows([("maybe", None, 1)])


def test_nobody_published_is_said_plainly_with_the_fix() -> None:
    lines = ConsentCounts.from_rows([("no_signal", None, 42)]).lines()
    text = "\n".join(lines)
    assert "0 of 42 profiled users published" in text
    assert "42 never sent a personalization flag (no signal), 0 refused" in text
    assert "NOBODY IS PUBLISHED" in text
    assert FIX_COMMAND in text
    # refusals only: nothing to declare, no command offered
    refused = "\n".join(ConsentCounts.from_rows([("refused", None, 3)]).lines())
    assert "NOBODY IS PUBLISHED" in refused and FIX_COMMAND not in refused


PROFILES = """
create table user_profiles as select * from (values
    ('u1', true, 2, 3), ('u2', true, 0, 40), ('u3', false, 1, 50), ('u4', false, 0, 1)
) t(user_key, consent_personalization, purchases, days_since_last_visit);
create or replace table user_profiles as select
    user_key, 1 as segment_id, 'S' as segment_name, 'Passive' as user_type, 0.5 as intent_probability,
    1 as intent_decile, 50.0 as engagement_score, ['cart_abandonment'] as active_triggers,
    ['shoes'] as top_categories, 'email nudge' as next_action, 'r' as next_action_reason,
    consent_personalization as consent_analytics, consent_personalization, '3' as segment_model_version,
    '7' as intent_model_version, 'current' as segment_status, '' as segment_status_reason,
    'current' as intent_status, '' as intent_status_reason, date '2019-11-01' as as_of_date,
    timestamp '2026-01-01' as updated_at,
    purchases, days_since_last_visit, 5 as days_since_last_purchase
from user_profiles;
create table model_status as select * from (values
    ('segments', 'current', '', '3', timestamp '2026-01-01', 'trained', timestamp '2026-01-01')
) t(model, status, reason, model_version, model_trained_at, decision, decided_at);
create table consent_coverage as select * from (values
    ('granted', 'contract', 1), ('granted', null, 1), ('refused', null, 1), ('no_signal', null, 1)
) t(personalization_consent, consent_basis, user_count);
-- what dbt finishes from user_profiles (models/profiles, models/audiences), as views: the tests change
-- user_profiles' consent, and publishing copies these; the audiences' own rules are dbt's unit tests
create view consented_profiles as select * exclude (purchases, days_since_last_visit, days_since_last_purchase)
from user_profiles where consent_personalization;
create table audience_definitions as select * from (values
    ('cart_abandoners', 'audience_cart_abandoners', 'd', 'r'), ('high_intent', 'audience_high_intent', 'd', 'r'),
    ('loyal_buyers', 'audience_loyal_buyers', 'd', 'r'), ('win_back', 'audience_win_back', 'd', 'r')
) t(audience, audience_model, description, audience_rule);
"""
PROFILES += "".join(
    f"""create view audience_{name} as select user_key, 'r' as reason, 0.0 as score, next_action, segment_name,
    user_type, intent_probability, as_of_date from user_profiles where consent_personalization;
"""
    for name in ("cart_abandoners", "high_intent", "loyal_buyers", "win_back")
)


def test_the_manifest_says_who_was_left_out_and_on_what_basis_the_others_were_published(tmp_path: Path) -> None:
    con = duckdb.connect()
    con.execute(PROFILES)
    published = publish_snapshot(con, tmp_path, now=datetime(2026, 11, 1, 13, 0, tzinfo=UTC))
    section = published.manifest["consent_counts"]
    assert section["published"] == published.manifest["profiles"]["rows"] == 2
    assert section["published_by_basis"] == {"own_flag": 1, "declared": {"contract": 1}}
    assert section["left_out"] == {"no_signal": 1, "refused": 1}
    assert "mismatch" not in section
    assert pq.read_table(published.path / "user_profiles.parquet").num_rows == 2
    lines = published_consent_lines(tmp_path, published_since="2026-11-01T13:00:00Z")
    assert lines and "2 of 4 profiled users published" in lines[0]
    assert published_consent_lines(tmp_path, published_since="2026-11-01T13:00:01Z") == []  # an older snapshot

    # counts that disagree with the profiles (consent_coverage from another run) are said, not hidden
    con.execute("update consent_coverage set user_count = 5 where consent_basis = 'contract'")
    section = publish_snapshot(con, tmp_path).manifest["consent_counts"]
    assert "consent_coverage counts 6 published users, user_profiles 2" in section["mismatch"]

    con.execute("drop table consent_coverage")  # not built yet: no counts, publishing still works
    assert read_consent_counts(DuckDBWarehouse(con)) is None
    assert publish_snapshot(con, tmp_path).manifest["consent_counts"] is None


def test_an_import_without_declaration_publishes_nobody_and_says_why(tmp_path: Path) -> None:
    """What materializing an imported history without consent flags publishes: empty profiles and audiences, a
    manifest that counts every profiled user as left out for lack of a signal, and closing lines that say so
    with the command that fixes it."""
    con = duckdb.connect()
    con.execute(PROFILES)
    con.execute("update user_profiles set consent_personalization = false, consent_analytics = false")
    con.execute("delete from consent_coverage")
    con.execute("insert into consent_coverage values ('no_signal', null, 4)")
    published = publish_snapshot(con, tmp_path, now=datetime(2026, 11, 1, 13, 0, tzinfo=UTC))
    assert published.manifest["profiles"]["rows"] == 0
    assert published.audience_rows == {"cart_abandoners": 0, "high_intent": 0, "loyal_buyers": 0, "win_back": 0}
    assert pq.read_table(published.path / "user_profiles.parquet").num_rows == 0
    counts = published.manifest["consent_counts"]
    assert (counts["published"], counts["left_out"]) == (0, {"no_signal": 4, "refused": 0})
    text = "\n".join(published_consent_lines(tmp_path, published_since="2026-11-01T13:00:00Z"))
    assert "0 of 4 profiled users published" in text and "4 never sent a personalization flag" in text
    assert "NOBODY IS PUBLISHED" in text and FIX_COMMAND in text
