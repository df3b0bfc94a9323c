"""A landing file that cannot be read fails the run, the message names it, and nothing is written."""

import gzip
from datetime import date

import dagster as dg
import duckdb
import pytest

from orchestration.materialize import materialize_range
from pulse.cli.commands import main

pytestmark = pytest.mark.integration
DAY = date(2026, 9, 1)


def test_an_unreadable_landing_file_fails_the_run_and_names_the_file(pulse_home, capsys) -> None:
    folder = pulse_home.events_landing / DAY.isoformat()
    folder.mkdir(parents=True)
    line = b'{"event_id":"a","event_type":"page_view","event_time":"2026-09-01T10:00:00Z","anonymous_id":"x"}\n'
    (folder / "good.jsonl.gz").write_bytes(gzip.compress(line))
    (folder / "broken.jsonl.gz").write_bytes(b"this is not gzip")

    result = materialize_range(DAY, DAY, instance=dg.DagsterInstance.ephemeral(), quiet=True)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "raw_events"
    assert "broken.jsonl.gz" in str(failure.step_failure_data.error.to_string())

    # The CLI says which file, and exits non-zero.
    assert main(["materialize", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "cannot read landing file" in err
    assert "broken.jsonl.gz" in err
    con = duckdb.connect(str(pulse_home.warehouse), read_only=True)
    try:
        tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
        assert "events" not in tables or con.execute("select count(*) from raw.events").fetchall()[0][0] == 0
    finally:
        con.close()
