"""Consent for imports, end to end through the real CLI, in one `pulse materialize` (a run costs minutes here):
two imports of one shop's history (60 users, 4 days of 2023, contract JSON Lines without consent flags) land
side by side:

- ``web.jsonl``: the visitors of odd anonymous ids, imported with no declaration (the default): their users are
  left out for lack of consent ("no signal"), and the import says so;
- ``crm.jsonl``: the other visitors, imported with ``--consent personalization --consent-basis ...``; five of
  its users refused personalization on their first event (the source's own flag): they stay refused, the
  others are published, the basis recorded in raw.events, stg_events, dim_user_consent and the manifest.

`pulse materialize`'s closing lines, `pulse summary` and the manifest give the same counts. What nobody
consented looks like (empty exports, "NOBODY IS PUBLISHED" and the command that fixes it) is tested without a
Dagster run in tests/unit/test_import_consent.py; the upgrade of a warehouse built before contract v1.3 in
tests/integration/test_incremental.py.
"""

from __future__ import annotations

import gzip
import json
from datetime import date
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from pulse.activation.publish import current_snapshot
from pulse.cli import commands as cli
from pulse.demo.generator import generate_demo

pytestmark = pytest.mark.integration

BASIS = "consent collected at sign-up (form v3)"
REFUSERS = 5


def _histories(tmp_path: Path) -> tuple[Path, Path, set[str]]:
    """The demo's valid events split by anonymous id into two files without consent flags; REFUSERS users of
    the second refuse personalization once, on their first event."""
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
                if isinstance(e, dict) and isinstance(e.get("event_id"), str) and e.get("anonymous_id"):
                    e.pop("consent_analytics", None)
                    e.pop("consent_personalization", None)
                    by_id.setdefault(e["event_id"], e)  # the demo's duplicates: not this test's subject
    events = sorted(by_id.values(), key=lambda e: (str(e.get("event_time")), e["event_id"]))
    web = [e for e in events if sum(map(ord, str(e["anonymous_id"]))) % 2]
    crm = [e for e in events if not sum(map(ord, str(e["anonymous_id"]))) % 2]
    refusers = set(sorted({e["user_id"] for e in crm if e.get("user_id")})[:REFUSERS])
    seen: set[str] = set()
    for e in crm:
        if e.get("user_id") in refusers and e["user_id"] not in seen and e["event_type"] == "page_view":
            e["consent_personalization"] = False
            seen.add(e["user_id"])
    assert seen == refusers and web and crm
    paths = tmp_path / "web.jsonl", tmp_path / "crm.jsonl"
    for path, part in zip(paths, (web, crm), strict=True):
        path.write_text("".join(json.dumps(e) + "\n" for e in part))
    return *paths, refusers


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert rc == 0, out + err
    return out + err


def test_imported_users_are_published_only_on_a_declared_basis(pulse_home, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(cli, "MATERIALIZE_JOB", "daily_pipeline")
    (pulse_home.dagster_home / "dagster.yaml").write_text(cli.DAGSTER_YAML)
    web, crm, refusers = _histories(tmp_path)

    out = _run(capsys, "import", "--format", "jsonl", "--quiet", str(web))
    assert "consent: none declared (the default)" in out
    assert "users without a consent_personalization flag are never exported" in out
    out = _run(
        capsys, "import", "--format", "jsonl", "--quiet", "--consent", "personalization", "--consent-basis", BASIS,
        str(crm),
    )  # fmt: skip
    assert f"basis: {BASIS!r}" in out and f"({REFUSERS} refusing personalization)" in out
    materialized = _run(capsys, "materialize", "--quiet")
    assert "materialize: done" in materialized

    # What the rule says, from the data: a user with an event of the declared import is published unless
    # he refused; the others never sent a flag (no signal).
    crm_ids = sorted(json.loads(line)["event_id"] for line in crm.read_text().splitlines())
    with duckdb.connect(str(pulse_home.warehouse), read_only=True) as con:
        declared_users = {k for (k,) in con.execute(
            "select distinct user_key from stg_events where list_contains(?, event_id)", [crm_ids]
        ).fetchall()}  # fmt: skip
        users = {k for (k,) in con.execute("select user_key from dim_users").fetchall()}
        profiled = {k for (k,) in con.execute("select user_key from user_features").fetchall()}
        consent = {
            key: (flag, basis)
            for key, flag, basis in con.execute(
                "select user_key, consent_personalization, consent_personalization_basis from dim_user_consent"
            ).fetchall()
        }
        raw = con.execute(
            """select list_contains($ids, event_id), consent_basis, consent_personalization, count(*)
            from raw.events group by all order by all""",
            {"ids": crm_ids},
        ).fetchall()
        stg_bases = con.execute("select distinct consent_basis from stg_events order by 1 nulls last").fetchall()
    status = {
        key: "refused" if key in refusers else "granted" if key in declared_users else "no_signal" for key in users
    }
    assert set(status.values()) == {"refused", "granted", "no_signal"}
    # the basis travels with the data
    assert [row[:3] for row in raw] == [(False, None, None), (True, BASIS, True), (True, None, False)]
    assert raw[2][3] == REFUSERS  # the refusals, kept: no basis, their own false
    assert stg_bases == [(BASIS,), (None,)]
    assert consent == {
        key: (False, None) if s == "refused" else (True, BASIS) for key, s in status.items() if s != "no_signal"
    }

    counted = {s: sum(1 for key in profiled if status[key] == s) for s in ("granted", "refused", "no_signal")}
    assert counted["no_signal"] > 0 and counted["refused"] > 0 and counted["granted"] > 0
    snapshot = current_snapshot(pulse_home.exports)
    manifest = json.loads((snapshot / "manifest.json").read_text())
    assert manifest["consent_counts"] == {
        "profiled_users": len(profiled),
        "published": counted["granted"],
        "published_by_basis": {"own_flag": 0, "declared": {BASIS: counted["granted"]}},
        "left_out": {"no_signal": counted["no_signal"], "refused": counted["refused"]},
        "rule": manifest["consent_counts"]["rule"],
    }
    assert manifest["profiles"]["rows"] == counted["granted"]
    published = set(pq.read_table(snapshot / "user_profiles.parquet")["user_key"].to_pylist())
    assert published == {key for key in profiled if status[key] == "granted"}

    # the same counts at the end of `pulse materialize` and in `pulse summary`
    published_line = f"{counted['granted']:,} of {len(profiled):,} profiled users published (declared {BASIS!r}"
    left_out_line = (
        f"{counted['no_signal']:,} never sent a personalization flag (no signal), {counted['refused']:,} refused"
    )
    assert f"materialize: consent {published_line}" in materialized
    assert left_out_line in materialized
    summary = _run(capsys, "summary")
    assert published_line in summary and left_out_line in summary
    assert "NOBODY" not in summary + materialized
