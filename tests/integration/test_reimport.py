"""Imports are idempotent by content, through `pulse import`, ingestion and dbt (no Dagster run: seconds).

The probe: a REES46 export (three purchases of 11.00) re-exported with one row more at the top imported as new
rows, because the generated event ids hashed the line number: 6 purchases and revenue 66 in the marts where 3 and
33 are right. Now a generated id is the hash of the mapped row (pulse/importers/mapped.py), identical rows of one
file are numbered, and stg_events keeps one row per id: the marts count each event once. The other importers
take their sources' own ids (Segment's messageId, Snowplow's event_id, OTTO's session and position): two
overlapping files of each, and of a REES46 file (generated ids), give the events of the whole file once.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from demo_warehouse import ingest_days, run_dbt

from pulse.cli import commands as cli
from pulse.importers import import_files
from pulse.ingest.raw_events import landed_days

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HEADER = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
SESSION = "7c90fc70-0e80-4590-96f3-13c02c18c713"
# A small REES46 day: a visitor views, adds the same product twice in one second (two events), buys three things.
ROWS = [
    f"2019-10-01 09:00:00 UTC,view,100,2053013555631882655,electronics.audio,acme,11.00,5001,{SESSION}",
    f"2019-10-01 09:00:30 UTC,cart,100,2053013555631882655,electronics.audio,acme,11.00,5001,{SESSION}",
    f"2019-10-01 09:00:30 UTC,cart,100,2053013555631882655,electronics.audio,acme,11.00,5001,{SESSION}",
    f"2019-10-01 09:01:00 UTC,purchase,100,2053013555631882655,electronics.audio,acme,11.00,5001,{SESSION}",
    f"2019-10-01 09:01:00 UTC,purchase,101,2053013555631882655,electronics.audio,acme,11.00,5001,{SESSION}",
    f"2019-10-01 09:02:00 UTC,purchase,102,2053013555631882655,electronics.audio,acme,11.00,5001,{SESSION}",
    "2019-10-01 10:00:00 UTC,view,200,2053013555631882655,,,5.50,5002,0d0d91c2-c9c2-4e81-90a5-86594dec0db9",
]
EXTRA = "2019-10-01 08:59:00 UTC,view,100,2053013555631882655,electronics.audio,acme,11.00,5001," + SESSION


# The re-exported file's events (its users; the REES46 sample below has others).
REEXPORT = "event_id like 'rees46-%' and user_id in ('5001', '5002')"

# name, format, file, has a header, mapping
SOURCES = [
    ("segment", "segment", FIXTURES / "segment" / "sample.jsonl", False, None),
    ("otto", "otto", FIXTURES / "otto-sample" / "train.jsonl", False, None),
    ("snowplow", "snowplow", FIXTURES / "snowplow-web" / "source" / "snowplow_web_events.csv", True, None),
    ("purchase_log", "mapped", FIXTURES / "mapped" / "purchase_log_sample.csv", True, "purchase_log"),
    ("rees46", "mapped", FIXTURES / "mapped" / "rees46_sample.csv", True, "rees46"),  # no id column: generated
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, isolated_pulse_home) -> Iterator[dict]:
    """One landing zone, one warehouse (a dbt run costs ~40 s here): the REES46 export and its re-export through
    `pulse import`, and two overlapping parts of a file of each other importer."""
    tmp = tmp_path_factory.mktemp("reimport")
    with isolated_pulse_home(tmp / "home") as paths:
        first = tmp / "2019-Oct.csv"
        first.write_text("\n".join([HEADER, *ROWS]) + "\n")
        again = tmp / "2019-Oct-reexported.csv"
        again.write_text("\n".join([HEADER, EXTRA, *reversed(ROWS)]) + "\n")
        outputs = [_import("--format", "mapped", "--mapping", "rees46", str(path)) for path in (first, again)]

        expected: dict[str, set[str]] = {}
        written: dict[str, tuple[int, int]] = {}
        for name, fmt, path, header, mapping in SOURCES:
            whole = import_files(fmt, [path], tmp / "whole" / name, mapping=mapping)
            expected[name] = set(_event_ids(whole.outputs))
            early, late = _halves(path, tmp, header)
            parts = import_files(fmt, [early, late], paths.landing, mapping=mapping)
            written[name] = whole.events_written, parts.events_written

        ingest_days(paths.warehouse, paths.events_landing, landed_days(paths.events_landing))
        run_dbt(paths.home, paths.warehouse, "run", "--select", "+fct_user_daily", "+dim_users")
        yield {"paths": paths, "outputs": outputs, "expected": expected, "written": written}


def _import(*args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(["import", "--quiet", *args])
    assert rc == 0, out.getvalue() + err.getvalue()
    return out.getvalue()


def _rows(paths, sql: str, params: dict | None = None) -> list[tuple]:  # noqa: ANN001 - PulsePaths
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        return con.execute(sql, params).fetchall()


def test_a_reexported_mapped_file_adds_only_its_new_row(built: dict) -> None:
    paths = built["paths"]
    assert _rows(paths, f"select count(*) from raw.events where {REEXPORT}") == [(7 + 8,)]  # both files' rows
    staged = _rows(
        paths,
        f"""select count(*), count(distinct event_id), count_if(event_type = 'purchase'), sum(revenue),
        count_if(event_type = 'add_to_cart') from stg_events where {REEXPORT}""",
    )
    assert staged == [(8, 8, 3, 33.0, 2)]  # the extra view is the only new event; both cart adds stay
    shop = "user_key in ('5001', '5002')"
    assert _rows(paths, f"select sum(purchases), sum(revenue) from fct_user_daily where {shop}") == [(3, 33.0)]
    users = _rows(paths, f"select user_key, purchases, revenue from dim_users where {shop} order by user_key")
    assert users == [("5001", 3, 33.0), ("5002", 0, 0.0)]
    first, again = built["outputs"]  # what `pulse import` said
    assert "7 events written" in first and "1 rows repeat an identical earlier row" in first
    assert "8 events written" in again


def _halves(path: Path, tmp_path: Path, header: bool) -> tuple[Path, Path]:
    """Two overlapping parts of a file: its first two thirds and its last two thirds (records, not lines: a
    quoted CSV field may span lines), each with the header when the format has one."""
    text = path.read_text(encoding="utf-8")
    if header:
        records = list(csv.reader(io.StringIO(text, newline="")))
        head, body = records[:1], records[1:]
    else:
        head, body = [], [[line] for line in text.splitlines()]
    cut1, cut2 = len(body) // 3, 2 * len(body) // 3
    parts = []
    for name, rows in (("early", body[:cut2]), ("late", body[cut1:])):
        target = tmp_path / f"{path.stem}-{name}{path.suffix}"
        if header:
            with target.open("w", newline="", encoding="utf-8") as fh:
                csv.writer(fh, lineterminator="\n").writerows(head + rows)
        else:
            target.write_text("".join(row[0] + "\n" for row in rows), encoding="utf-8")
        parts.append(target)
    return parts[0], parts[1]


def test_overlapping_files_of_every_importer_count_each_event_once(built: dict) -> None:
    paths, expected = built["paths"], built["expected"]
    for name, (whole, parts) in built["written"].items():
        assert parts > whole, name  # the overlap, written twice
        ids = sorted(expected[name])
        query = "select count(*), count(distinct event_id) from stg_events where list_contains($ids, event_id)"
        assert _rows(paths, query, {"ids": ids}) == [(len(ids), len(ids))], name
    [(raw, staged)] = _rows(
        paths,
        f"""select (select count(*) from raw.events),
        (select count(*) from stg_events where not ({REEXPORT}))""",
    )
    assert staged == sum(len(ids) for ids in expected.values()) < raw


def _event_ids(outputs: list[Path]) -> list[str]:
    ids = []
    for path in outputs:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            ids += [json.loads(line)["event_id"] for line in fh]
    return ids
