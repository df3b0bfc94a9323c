"""Landing entries in real Dagster runs (issue 20, points 4 and 7): what a run does not read is in the
raw_events metadata and its log; a FIFO named like a landing file fails the run (never blocks it); a symbolic
link to a file outside the landing zone fails `pulse materialize` naming it, and nothing of that file reaches the
warehouse."""

import os
import threading
from datetime import date

import dagster as dg
import duckdb
import pytest

from orchestration.materialize import materialize_range
from pulse.cli.commands import main

pytestmark = pytest.mark.integration
DAY = date(2026, 9, 1)
LINE = '{"event_id":"a","event_type":"page_view","event_time":"2026-09-01T10:00:00Z","anonymous_id":"x"}\n'


def raw_events_metadata(result: dg.ExecuteInProcessResult) -> dict:
    [materialization] = [
        e.event_specific_data.materialization
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
        and e.event_specific_data.materialization.asset_key.to_user_string() == "raw_events"
    ]
    return {k: v.value for k, v in materialization.metadata.items()}


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "raw_events"
    return failure.step_failure_data.error.to_string()


def test_entries_not_read_are_listed_and_entries_not_regular_files_fail_the_run(pulse_home, tmp_path, capsys) -> None:
    folder = pulse_home.events_landing / DAY.isoformat()
    folder.mkdir(parents=True)
    (folder / "good.jsonl").write_text(LINE)
    (folder / "notes.txt").write_text("not events")
    (folder / "x.jsonl.bz2").write_bytes(b"BZh91AY&SY")
    instance = dg.DagsterInstance.ephemeral()

    result = materialize_range(DAY, DAY, instance=instance, quiet=True, job_name="ingest_landing_day")
    assert result.success
    metadata = raw_events_metadata(result)
    assert metadata["unsupported_entries"] == 2
    assert "recompress it with gzip" in metadata["unsupported"][f"{DAY}/x.jsonl.bz2"]
    assert "not a landing file name" in metadata["unsupported"][f"{DAY}/notes.txt"]
    logged = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any(f"landing entry {DAY}/notes.txt: not a landing file name" in message for message in logged)

    # A FIFO named like a landing file: the run fails naming it, it does not wait for a writer.
    os.mkfifo(folder / "pipe.jsonl")
    outcome: dict = {}
    worker = threading.Thread(
        target=lambda: outcome.update(
            result=materialize_range(DAY, DAY, instance=instance, quiet=True, job_name="ingest_landing_day")
        ),
        daemon=True,
    )
    worker.start()
    worker.join(timeout=300)
    assert not worker.is_alive(), "the run blocked on the FIFO"
    assert not outcome["result"].success
    message = failure_message(outcome["result"])
    assert f"{DAY}/pipe.jsonl" in message and "a FIFO (named pipe), not a regular file" in message
    (folder / "pipe.jsonl").unlink()

    # A symbolic link to a file outside the landing zone (a system file, for an attacker): the CLI names it.
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:SECRET-CONTENT\n")
    (folder / "link.jsonl").symlink_to(secret)
    capsys.readouterr()
    assert main(["materialize", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "materialize: warning: 2 landing entries not read:" in err
    assert f"{folder / 'link.jsonl'}: a symbolic link: only regular files inside the landing zone are read" in err
    with duckdb.connect(str(pulse_home.warehouse), read_only=True) as con:
        leaked = con.execute("select count(*) from raw.events_quarantine where raw_line like '%SECRET%'")
        assert leaked.fetchall()[0][0] == 0
        assert con.execute("select count(*) from raw.events").fetchall()[0][0] == 1  # as the first run left it
