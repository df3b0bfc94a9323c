"""Consent for imports, end to end through the real CLI: an imported history without consent is published to
nobody, and every place says why; the same file imported again with a declared basis is published, the basis
recorded in the warehouse and the manifest, and the source's own refusals kept.

The history: a small demo shop (60 users, 4 days of 2023) written as ONE contract JSON Lines file with its
consent flags removed, except five users who refused personalization on their first event. Two `pulse import`
+ `pulse materialize` rounds (job daily_pipeline, as the other CLI tests), in one PULSE_HOME. Before the
second round the warehouse is made to look like one built before contract v1.3 (no consent_basis in
raw.events, no *_basis columns in dim_user_consent): the incremental run must bring them back.
"""

from __future__ import annotations

import gzip
import json
from datetime import date
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from pulse import cli
from pulse.consent import FIX_COMMAND
from pulse.demo import generate_demo
from pulse.publish import current_snapshot

pytestmark = pytest.mark.integration

BASIS = "consent collected at sign-up (form v3)"
REFUSERS = 5


def _history(tmp_path: Path) -> tuple[Path, set[str]]:
    """The demo's valid events as one JSON Lines file without consent flags; REFUSERS users refuse once."""
    demo = tmp_path / "demo"
    generate_demo(demo, users=60, days=4, seed=23, start=date(2023, 3, 6), progress=False)
    by_id: dict[str, dict] = {}
    for path in sorted((demo / "events").rglob("*.jsonl*")):
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue  # the demo's malformed lines: not this test's subject
                if isinstance(e, dict) and isinstance(e.get("event_id"), str):
                    e.pop("consent_analytics", None)
                    e.pop("consent_personalization", None)
                    by_id.setdefault(e["event_id"], e)  # the demo's duplicates: not this test's subject
    events = sorted(by_id.values(), key=lambda e: (str(e.get("event_time")), e["event_id"]))
    user_ids = sorted({e["user_id"] for e in events if e.get("user_id")})
    refusers = set(user_ids[:REFUSERS])
    seen: set[str] = set()
    for e in events:
        if e.get("user_id") in refusers and e["user_id"] not in seen:
            e["consent_personalization"] = False  # the user's own refusal, once, early
            seen.add(e["user_id"])
    assert seen == refusers
    source = tmp_path / "history.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in events))
    return source, refusers


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert rc == 0, out + err
    return out + err


def _manifest(exports: Path) -> dict:
    snapshot = current_snapshot(exports)
    assert snapshot is not None
    return json.loads((snapshot / "manifest.json").read_text())


def test_imported_history_is_published_only_with_a_declared_basis(
    pulse_home, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setattr(cli, "MATERIALIZE_JOB", "daily_pipeline")
    (pulse_home.dagster_home / "dagster.yaml").write_text(cli.DAGSTER_YAML)
    source, refusers = _history(tmp_path)

    # 1. No declaration (the default): nobody leaves the warehouse, and every place says why.
    out = _run(capsys, "import", "--format", "jsonl", "--quiet", str(source))
    assert "consent: none declared (the default)" in out
    out = _run(capsys, "materialize", "--quiet")
    assert "materialize: done" in out
    assert "NOBODY IS PUBLISHED" in out and FIX_COMMAND in out
    manifest = _manifest(pulse_home.exports)
    counts = manifest["consent_counts"]
    profiled = counts["profiled_users"]
    assert profiled > 30
    assert manifest["profiles"]["rows"] == counts["published"] == 0
    assert all(a["rows"] == 0 for a in manifest["audiences"].values())
    with duckdb.connect(str(pulse_home.warehouse), read_only=True) as con:
        profiled_refusers = con.execute(
            "select count(*) from user_features where list_contains(?, user_key)", [sorted(refusers)]
        ).fetchall()[0][0]
    assert profiled_refusers > 0
    assert counts["left_out"] == {"no_signal": profiled - profiled_refusers, "refused": profiled_refusers}
    summary = _run(capsys, "summary")
    assert f"0 of {profiled:,} profiled users published" in summary
    assert f"{profiled - profiled_refusers:,} never sent a personalization flag (no signal)" in summary
    assert "NOBODY IS PUBLISHED" in summary and FIX_COMMAND in summary

    # A warehouse built before contract v1.3: the next run must add the columns back.
    with duckdb.connect(str(pulse_home.warehouse)) as con:
        con.execute("drop view if exists stg_events")  # it reads raw.events.consent_basis
        con.execute("alter table raw.events drop column consent_basis")
        con.execute("alter table dim_user_consent drop column consent_analytics_basis")
        con.execute("alter table dim_user_consent drop column consent_personalization_basis")

    # 2. The same file with a declared basis: its users are published, the refusals kept.
    out = _run(
        capsys, "import", "--format", "jsonl", "--quiet", "--consent", "personalization", "--consent-basis", BASIS,
        str(source),
    )  # fmt: skip
    assert f"basis: {BASIS!r}" in out and f"({REFUSERS} refusing personalization)" in out
    out = _run(capsys, "materialize", "--quiet")
    assert "; 0 unchanged, skipped" in out and "materialize: done" in out  # every day's file changed
    assert "NOBODY" not in out
    manifest = _manifest(pulse_home.exports)
    counts = manifest["consent_counts"]
    assert counts["profiled_users"] == profiled
    assert counts["published"] == manifest["profiles"]["rows"] == profiled - profiled_refusers
    assert counts["published_by_basis"] == {"own_flag": 0, "declared": {BASIS: profiled - profiled_refusers}}
    assert counts["left_out"] == {"no_signal": 0, "refused": profiled_refusers}
    assert "mismatch" not in counts
    published = set(
        pq.read_table(current_snapshot(pulse_home.exports) / "user_profiles.parquet")["user_key"].to_pylist()
    )
    assert published and not published & refusers
    assert f"{profiled - profiled_refusers:,} of {profiled:,} profiled users published (declared {BASIS!r}" in out

    with duckdb.connect(str(pulse_home.warehouse), read_only=True) as con:
        # the basis travels with the data: raw.events, stg_events, dim_user_consent
        raw = con.execute(
            "select count_if(consent_basis = ?), count_if(consent_basis is null), count(*) from raw.events", [BASIS]
        ).fetchall()[0]
        assert raw[1] == REFUSERS and raw[0] == raw[2] - REFUSERS
        assert con.execute("select count(distinct consent_basis) from stg_events").fetchall()[0][0] == 1
        consent = dict(
            (key, (flag, basis))
            for key, flag, basis in con.execute(
                "select user_key, consent_personalization, consent_personalization_basis from dim_user_consent"
            ).fetchall()
        )
        users = {key for (key,) in con.execute("select user_key from dim_users").fetchall()}
    # every user: the refusers by their own flag (it outranks the later declared ones), the others declared
    assert consent == {key: ((False, None) if key in refusers else (True, BASIS)) for key in users}
