"""`pulse materialize` decides what to run from the pipeline watermark, not from the ingested files alone: landing
days whose ingestion the published snapshot does not cover run again even when their files are all ingested and
unchanged, and no run failed (an ingestion-only run from the UI, a run killed on another host); "nothing new" means
landing = ingested = published. The run itself is replaced by a recorder: what is tested is what the CLI asks for."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from pulse.cli import commands as cli
from pulse.ingest.raw_events import ingest_day
from pulse.ingest.watermark import record_modelled, record_published

DAYS = [date(2026, 9, 1) + timedelta(days=i) for i in range(3)]


def land(events: Path, day: date) -> None:
    folder = events / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    line = {"event_id": f"e-{day}", "event_type": "page_view", "event_time": f"{day}T10:00:00Z", "anonymous_id": "a"}
    (folder / "part.jsonl").write_text(json.dumps(line) + "\n")


@pytest.fixture
def runs(pulse_home, monkeypatch) -> list[tuple[date, date]]:
    """A published home of three landing days; the ranges `pulse materialize` asks to run are recorded."""
    (pulse_home.dagster_home / "dagster.yaml").write_text(cli.DAGSTER_YAML)
    for day in DAYS:
        land(pulse_home.events_landing, day)
    with duckdb.connect(str(pulse_home.warehouse)) as con:
        for day in DAYS:
            ingest_day(con, pulse_home.events_landing, day)
        record_modelled(con)
        record_published(con)
    asked: list[tuple[date, date]] = []

    def run(paths, first, last, instance, **kwargs) -> int:  # noqa: ANN001 - the CLI's own _materialize's
        asked.append((first, last))
        return 0

    monkeypatch.setattr(cli, "_materialize", run)
    return asked


def test_a_published_home_has_nothing_new(runs, capsys) -> None:
    assert cli.main(["materialize", "--quiet"]) == 0
    assert (
        "materialize: nothing new: 3 landing days already ingested, unchanged and published" in capsys.readouterr().out
    )
    assert runs == []


def test_a_day_ingested_but_not_published_runs_again(runs, pulse_home, capsys) -> None:
    """The files are unchanged and ingested, no run failed: only the watermark knows the models lag."""
    with duckdb.connect(str(pulse_home.warehouse)) as con:
        ingest_day(con, pulse_home.events_landing, DAYS[1])  # ingested again (an ingest_landing_day run)
    assert cli.main(["materialize", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"materialize: 1 ingested landing day(s) ({DAYS[1]}) not in the published snapshot yet" in out
    assert "nothing new" not in out
    assert runs == [(DAYS[1], DAYS[1])]


def test_models_built_but_the_snapshot_not_published_runs_again(runs, pulse_home, capsys) -> None:
    """A run killed while publishing: dbt recorded what the models hold, the snapshot was not switched."""
    land(pulse_home.events_landing, DAYS[2] + timedelta(days=1))
    with duckdb.connect(str(pulse_home.warehouse)) as con:
        ingest_day(con, pulse_home.events_landing, DAYS[2] + timedelta(days=1))
        record_modelled(con)
    assert cli.main(["materialize", "--quiet"]) == 0
    assert runs == [(DAYS[2] + timedelta(days=1), DAYS[2] + timedelta(days=1))]
    assert "not in the published snapshot yet" in capsys.readouterr().out
