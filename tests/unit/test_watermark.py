"""The pipeline watermark (pulse/ingest/watermark.py): a landing day ingested but not yet covered by the published
snapshot is unpublished, so `pulse materialize` runs again for it instead of saying "nothing new"."""

from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
from landing_files import land_page_views as land

from pulse.ingest.raw_events import ingest_day
from pulse.ingest.watermark import batch_committed, record_modelled, record_published, unpublished_days

DAYS = [date(2026, 9, 1) + timedelta(days=i) for i in range(3)]


@pytest.fixture
def events(tmp_path: Path) -> Path:
    events = tmp_path / "landing" / "events"
    for day in DAYS:
        land(events, day)
    return events


@pytest.fixture
def con(tmp_path: Path):
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield con
    con.close()


def test_an_empty_warehouse_has_nothing_unpublished(con) -> None:
    assert unpublished_days(con) == []


def test_ingested_days_stay_unpublished_until_the_models_and_then_the_snapshot_cover_them(events: Path, con) -> None:
    for day in DAYS:
        ingest_day(con, events, day)
    assert unpublished_days(con) == DAYS  # ingested, nothing downstream yet (a run killed after ingesting them)
    record_published(con)  # a publication without models (intent_scoring) covers nothing new
    assert unpublished_days(con) == DAYS
    record_modelled(con)
    assert unpublished_days(con) == DAYS  # the models hold them; the snapshot does not yet
    record_published(con)
    assert unpublished_days(con) == []


def test_a_day_ingested_again_is_unpublished_even_with_the_same_files(events: Path, con) -> None:
    """`pulse materialize --all` that dies after re-ingesting: the files (name, size, mtime) are the same, the
    ingestion is not (ingested_at), and the models have not processed it."""
    for day in DAYS:
        ingest_day(con, events, day)
    record_modelled(con)
    record_published(con)
    ingest_day(con, events, DAYS[1])
    assert unpublished_days(con) == [DAYS[1]]


def test_a_new_file_and_a_day_whose_files_were_withdrawn_are_unpublished(events: Path, con) -> None:
    for day in DAYS:
        ingest_day(con, events, day)
    record_modelled(con)
    record_published(con)
    land(events, DAYS[2], "late.jsonl")
    ingest_day(con, events, DAYS[2])
    for path in (events / DAYS[0].isoformat()).iterdir():
        path.unlink()
    ingest_day(con, events, DAYS[0])  # re-ingested without files: its rows are gone from raw.ingested_files
    assert unpublished_days(con) == [DAYS[0], DAYS[2]]


def test_a_read_only_connection_will_do(events: Path, tmp_path: Path) -> None:
    path = tmp_path / "ro.duckdb"
    with duckdb.connect(str(path)) as con:
        ingest_day(con, events, DAYS[0])
    with duckdb.connect(str(path), read_only=True) as con:
        assert unpublished_days(con) == [DAYS[0]]


MANIFEST = {
    "nodes": {
        "model.pulse.int_batch": {"resource_type": "model", "tags": ["batch"]},
        "model.pulse.fct_sessions": {"resource_type": "model", "tags": ["batch"]},
        "model.pulse.dim_users": {"resource_type": "model", "tags": []},
        "test.pulse.unique_x": {"resource_type": "test", "tags": ["batch"]},
    }
}


def test_a_batch_is_committed_when_every_batch_model_succeeded() -> None:
    ok = [{"unique_id": "model.pulse.int_batch", "status": "success"}]
    assert not batch_committed(MANIFEST, ok)  # a selection without fct_sessions commits nothing
    assert batch_committed(MANIFEST, [*ok, {"unique_id": "model.pulse.fct_sessions", "status": "success"}])
    assert not batch_committed(MANIFEST, [*ok, {"unique_id": "model.pulse.fct_sessions", "status": "error"}])
    assert not batch_committed({"nodes": {}}, ok)
