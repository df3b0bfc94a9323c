"""A model added downstream is backfilled from the tables already built: nothing upstream is rebuilt.

A demo (60 users x 4 days) is built with a copy of dbt_project/. A new model is then added to the copy (the
first purchase of each user, from fct_sessions) and built on its own, as materializing the new asset in
Dagster does (`dbt build --select <model>`). It must hold the whole history at once, while every table
upstream is the same table as before (each carries a comment that a re-created table would lose), and
the incremental state (pulse_state.batches) is untouched: the next daily run goes on from where it was.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
from demo_warehouse import DBT_PROJECT, ingest_demo, run_dbt

pytestmark = pytest.mark.integration

NEW_MODEL = """
select
    user_key,
    min(session_start) as first_purchase_at,
    count(*) as purchase_sessions
from {{ ref('fct_sessions') }}
where purchases > 0
group by user_key
"""


def _tables(warehouse: Path) -> dict[str, tuple[str | None, int]]:
    """Every table of the main schema: (its comment, rows)."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        names = con.execute("select table_name, comment from duckdb_tables() where schema_name = 'main'").fetchall()
        return {n: (c, con.execute(f'select count(*) from main."{n}"').fetchall()[0][0]) for n, c in names}
    finally:
        con.close()


def _mark(warehouse: Path) -> None:
    """A comment on every table: a table dbt re-creates comes back without it."""
    con = duckdb.connect(str(warehouse))
    try:
        for (name,) in con.execute("select table_name from duckdb_tables() where schema_name = 'main'").fetchall():
            con.execute(f"comment on table main.\"{name}\" is 'built before the new model'")
    finally:
        con.close()


def test_a_new_model_is_backfilled_without_rebuilding_upstream(tmp_path: Path) -> None:
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT, project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    home = tmp_path / "home"
    home.mkdir()
    _, warehouse = ingest_demo(home, users=60, days=4, seed=5)
    run_dbt(home, warehouse, "build", "--exclude-resource-type", "unit_test", project=project)
    _mark(warehouse)
    before = _tables(warehouse)
    con = duckdb.connect(str(warehouse), read_only=True)
    batches_before = con.execute("select * from pulse_state.batches").fetchall()
    con.close()
    assert len(batches_before) == 1 and {"fct_sessions", "int_visits", "fct_page_views"} <= set(before)

    (project / "models" / "marts" / "fct_user_first_purchase.sql").write_text(NEW_MODEL)
    run_dbt(home, warehouse, "build", "--select", "fct_user_first_purchase", project=project)

    after = _tables(warehouse)
    assert set(after) == set(before) | {"fct_user_first_purchase"}
    # the same tables (the comment survived: none was re-created) with the same row counts
    assert {n: after[n] for n in before} == before
    assert {comment for comment, _ in before.values()} == {"built before the new model"}
    results = json.loads((home / "target" / "run_results.json").read_text())["results"]
    assert [r["unique_id"] for r in results if not r["unique_id"].startswith("operation.")] == [
        "model.pulse.fct_user_first_purchase"
    ]
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        # the whole history at once: one row per user who ever bought
        buyers = con.execute("select count(distinct user_key) from fct_sessions where purchases > 0").fetchall()
        assert con.execute("select count(*) from fct_user_first_purchase").fetchall() == buyers
        assert buyers[0][0] > 0
        assert con.execute("select * from pulse_state.batches").fetchall() == batches_before
    finally:
        con.close()
