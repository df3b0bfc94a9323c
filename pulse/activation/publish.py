"""Publishing: the consented profiles and the audience exports, as an immutable snapshot readers can trust.

Layout under ``$PULSE_EXPORTS`` (default ``$PULSE_HOME/exports``)::

    current.json                      {"snapshot_id": ..., "path": "snapshots/<id>"}: the published snapshot
    snapshots/<id>/manifest.json      row counts, as-of date, model versions and status, files, audience definitions
    snapshots/<id>/user_profiles.parquet
    snapshots/<id>/audiences/<name>.parquet, <name>.csv
    audiences/<name>.parquet, .csv    the same files at fixed paths, for tools that poll one location
    manifest.json                     the manifest of the snapshot those fixed-path files belong to

Atomic: a snapshot is written in full under ``snapshots/.tmp-<id>`` and renamed into place, then
``current.json`` is replaced (temp file + ``os.replace``); each fixed-path file is written beside its final
name and ``os.replace``-d over it. A reader therefore sees either the previous or the new version of any file,
never half of one, provided it opens a file once (``pyarrow.parquet.read_table(path)`` opens a path twice
and can mix two versions of a fixed-path file: give it an open file). The read API (pulse/activation/serve.py) follows
``current.json`` to a snapshot, whose files never change. Nothing here touches the warehouse
except to read it, so a published snapshot stays readable while the pipeline writes. The last
:data:`KEEP_SNAPSHOTS` snapshots are kept (a reader may still be loading the previous one).

What is published is finished in dbt (models/profiles, models/audiences; docs/activation.md): the consented
profiles (`consented_profiles`: only users whose latest ``consent_personalization`` is true; a user who never
sent the flag has not consented), each audience's members (`audience_<name>`, consent applied there too),
what each audience is (`audience_definitions`) and each model's status (`model_status`). Publishing copies
those tables into the snapshot and counts them; it applies no rule of its own. The manifest's
``consent_counts`` says how many profiled users were left out and why (no signal, refused) and the bases
behind the published ones, from the dbt model ``consent_coverage`` (pulse/activation/consent.py).

Model fields: the manifest's ``model_status`` says, per model (segments, purchase_intent), whether its fields
are current, carried from an earlier champion, or empty, and why; each profile row carries its own
``intent_status`` / ``segment_status``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from pulse.activation.consent import ConsentCounts, read_consent_counts
from pulse.core.kill_points import PUBLISH_SWITCHED, kill_point
from pulse.core.warehouse import DuckDBWarehouse, Warehouse

KEEP_SNAPSHOTS = 5
CONSENTED = "consent_personalization"
PROFILES_TABLE = "user_profiles"  # every profiled user: the counts before consent
CONSENTED_PROFILES_TABLE = "consented_profiles"  # what is published
MODEL_STATUS_TABLE = "model_status"
AUDIENCE_DEFINITIONS_TABLE = "audience_definitions"  # audience, audience_model, description, audience_rule


@dataclass(frozen=True)
class Audience:
    name: str
    model: str  # the dbt model holding its members
    description: str
    rule: str  # the rule's SQL, as the dbt model applies it (consent aside)


def read_audiences(con: duckdb.DuckDBPyConnection) -> list[Audience]:
    """The audiences dbt built (`audience_definitions`), by name."""
    rows = con.execute(
        f"""select audience, audience_model, description, audience_rule from main.{AUDIENCE_DEFINITIONS_TABLE}
        order by audience"""
    ).fetchall()
    return [Audience(*row) for row in rows]


STATUS_COLUMNS = "model, status, reason, model_version, model_trained_at, decision, decided_at"


@dataclass(frozen=True)
class PublishedSnapshot:
    snapshot_id: str
    path: Path
    manifest: dict

    @property
    def audience_rows(self) -> dict[str, int]:
        return {name: a["rows"] for name, a in self.manifest["audiences"].items()}


def _sql_path(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _write_json_atomically(path: Path, doc: dict) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def _copy_atomically(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{secrets.token_hex(4)}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


# A text cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets (OWASP "CSV
# Injection"): `=HYPERLINK(...)`, `+cmd|...`, `@SUM(...)`. Anyone can send such a user id to the collector.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe_sql(column: str) -> str:
    """SQL for a text column's CSV cell: prefixed with a single quote when it starts with a formula trigger, so
    a spreadsheet shows it as text (the quote is what it shows first). NULL stays NULL (an empty cell)."""
    triggers = ", ".join(f"chr({ord(c)})" for c in FORMULA_TRIGGERS)
    return f"case when left({column}, 1) in ({triggers}) then chr(39) || {column} else {column} end"


def write_csv(con: duckdb.DuckDBPyConnection, relation: str, path: Path) -> None:
    """``relation`` as a CSV file for spreadsheets: every text cell escaped (:func:`csv_safe_sql`) and quoted,
    whatever it holds, so that it stays one cell with any separator a spreadsheet guesses (`,` `;` tab); numbers,
    dates and lists are written as they are, the header plain. The Parquet files keep every value raw."""
    described = con.execute(f"select column_name, column_type from (describe select * from {relation})").fetchall()
    columns, text = [], []
    for name, kind in described:
        quoted = '"' + name.replace('"', '""') + '"'
        if kind == "VARCHAR":
            columns.append(f"{csv_safe_sql(quoted)} as {quoted}")
            text.append(quoted)
        else:
            columns.append(quoted)
    force_quote = f", force_quote ({', '.join(text)})" if text else ""
    body = path.with_name(f".{path.name}.body")
    try:
        # DuckDB's force_quote quotes the header too: the rows are written alone, after a plain header
        con.execute(
            f"copy (select {', '.join(columns)} from {relation}) to {_sql_path(body)} "
            f"(format csv, header false{force_quote})"
        )
        header = io.StringIO()
        csv.writer(header, lineterminator="\n").writerow([name for name, _ in described])
        with path.open("w", encoding="utf-8", newline="") as out, body.open(encoding="utf-8", newline="") as rows:
            out.write(header.getvalue())
            shutil.copyfileobj(rows, out)
    finally:
        body.unlink(missing_ok=True)


def audience_sql(audience: Audience) -> str:
    """The audience's members as dbt built them, highest score first."""
    return f"select * from main.{audience.model} order by score desc, user_key"


def current_snapshot(exports: Path) -> Path | None:
    """The published snapshot's directory, or None before the first publication."""
    pointer = exports / "current.json"
    if not pointer.exists():
        return None
    return exports / json.loads(pointer.read_text())["path"]


def publish_snapshot(
    con: duckdb.DuckDBPyConnection,
    exports: Path,
    *,
    now: datetime | None = None,
    consent_counts: ConsentCounts | None = None,
) -> PublishedSnapshot:
    """Write a new snapshot from the finished dbt tables (`consented_profiles`, the audiences, `model_status`),
    then make it the current one.
    ``consent_counts``: who was left out and why (default: read from ``con``'s consent_coverage, if built)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    if consent_counts is None:
        consent_counts = read_consent_counts(DuckDBWarehouse(con))
    snapshot_id = f"{now:%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(3)}"  # sorts by time, to the microsecond
    snapshots = exports / "snapshots"
    tmp = snapshots / f".tmp-{snapshot_id}"
    final = snapshots / snapshot_id
    (tmp / "audiences").mkdir(parents=True)
    try:
        con.execute(
            f"""copy (select * from main.{CONSENTED_PROFILES_TABLE} order by user_key)
            to {_sql_path(tmp / "user_profiles.parquet")} (format parquet)"""
        )
        total, as_of, segment_version, intent_version = con.execute(
            f"""select count(*), cast(max(as_of_date) as varchar), max(segment_model_version),
                max(intent_model_version) from main.{PROFILES_TABLE}"""
        ).fetchall()[0]
        # the rows of the file just written: what the manifest says is what a reader finds
        [[consented]] = con.execute(
            f"select count(*) from read_parquet({_sql_path(tmp / 'user_profiles.parquet')})"
        ).fetchall()
        status_rows = con.execute(f"select {STATUS_COLUMNS} from main.{MODEL_STATUS_TABLE} order by model").fetchall()
        model_status = {
            model: {
                "status": status,
                "reason": reason,
                "model_version": version,
                "model_trained_at": None if trained_at is None else trained_at.isoformat(sep=" "),
                "latest_decision": decision,
                "decided_at": None if decided_at is None else decided_at.isoformat(sep=" "),
            }
            for model, status, reason, version, trained_at, decision, decided_at in status_rows
        }
        audiences: dict[str, dict] = {}
        for audience in read_audiences(con):
            # the query runs once: the CSV and the row count come from the Parquet file it wrote
            parquet = tmp / "audiences" / f"{audience.name}.parquet"
            con.execute(f"copy ({audience_sql(audience)}) to {_sql_path(parquet)} (format parquet)")
            written = f"read_parquet({_sql_path(parquet)})"
            write_csv(con, written, tmp / "audiences" / f"{audience.name}.csv")
            rows = con.execute(f"select count(*) from {written}").fetchall()[0][0]
            audiences[audience.name] = {
                "rows": rows,
                "parquet": f"audiences/{audience.name}.parquet",
                "csv": f"audiences/{audience.name}.csv",
                "description": audience.description,
                "rule": audience.rule,
            }
        manifest = {
            "snapshot_id": snapshot_id,
            "published_at": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "as_of_date": as_of,
            "model_versions": {"segments": segment_version, "purchase_intent": intent_version},
            "model_status": model_status,
            "consent": f"only users whose latest {CONSENTED} is true ({consented:,} of {total:,})",
            "profiles": {"file": "user_profiles.parquet", "rows": consented or 0, "users_before_consent": total},
            "consent_counts": _consent_section(consent_counts, consented or 0),
            "audiences": audiences,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _write_json_atomically(exports / "current.json", {"snapshot_id": snapshot_id, "path": f"snapshots/{snapshot_id}"})
    kill_point(PUBLISH_SWITCHED)
    for name in audiences:
        for fmt in ("parquet", "csv"):
            _copy_atomically(final / "audiences" / f"{name}.{fmt}", exports / "audiences" / f"{name}.{fmt}")
    _copy_atomically(final / "manifest.json", exports / "manifest.json")
    _prune(snapshots, keep=KEEP_SNAPSHOTS, current=snapshot_id)
    return PublishedSnapshot(snapshot_id=snapshot_id, path=final, manifest=manifest)


def _consent_section(counts: ConsentCounts | None, published_rows: int) -> dict | None:
    """The manifest's consent_counts; None before consent_coverage is built. A count that disagrees with the
    profiles file (consent_coverage older than user_profiles) is said, not hidden."""
    if counts is None:
        return None
    section = counts.as_manifest()
    if counts.published != published_rows:
        section["mismatch"] = (
            f"consent_coverage counts {counts.published:,} published users, user_profiles {published_rows:,}: "
            "they come from different runs; materialize both again"
        )
    return section


def publish_from_warehouse(warehouse: Warehouse, exports: Path, *, now: datetime | None = None) -> PublishedSnapshot:
    """:func:`publish_snapshot` from either engine. On Spark the profiles (one row per user) are read through
    the session as Arrow into an in-memory DuckDB, which writes the files as it does for a DuckDB warehouse."""
    consent_counts = read_consent_counts(warehouse)
    if isinstance(warehouse, DuckDBWarehouse):
        return publish_snapshot(warehouse.con, exports, now=now, consent_counts=consent_counts)
    with duckdb.connect() as con:
        tables = [PROFILES_TABLE, CONSENTED_PROFILES_TABLE, MODEL_STATUS_TABLE, AUDIENCE_DEFINITIONS_TABLE]
        tables += [model for (model,) in warehouse.rows(f"select audience_model from {AUDIENCE_DEFINITIONS_TABLE}")]
        for table in tables:
            con.register("table_read", warehouse.arrow(f"select * from {table}"))
            con.execute(f"create table main.{table} as select * from table_read")
            con.unregister("table_read")
        return publish_snapshot(con, exports, now=now, consent_counts=consent_counts)


def _prune(snapshots: Path, keep: int, current: str) -> None:
    """Delete all but the newest ``keep`` snapshots (ids sort by time), never the current one; leftovers of
    an interrupted publication (``.tmp-*``) older than the current one go too."""
    done = sorted(p.name for p in snapshots.iterdir() if p.is_dir() and not p.name.startswith("."))
    for name in done[:-keep]:
        if name != current:
            shutil.rmtree(snapshots / name, ignore_errors=True)
    for p in snapshots.glob(".tmp-*"):
        if p.name[len(".tmp-") :] < current:
            shutil.rmtree(p, ignore_errors=True)


def published_consent_lines(exports: Path, published_since: str | None = None) -> list[str]:
    """The consent lines from the published snapshot's manifest (no warehouse needed: any engine, any lock);
    nothing when there is none, it has no counts, or it was published before ``published_since`` (an ISO
    UTC time: a run that did not reach the exports does not repeat an older snapshot's figures)."""
    snapshot = current_snapshot(exports)
    if snapshot is None or not (snapshot / "manifest.json").exists():
        return []
    manifest = json.loads((snapshot / "manifest.json").read_text())
    if published_since is not None and str(manifest.get("published_at", "")) < published_since:
        return []
    counts = manifest.get("consent_counts")
    return ConsentCounts.from_manifest(counts).lines() if counts else []
