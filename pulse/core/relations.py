"""What a built table or view holds, read from the warehouse: its row count and its columns with their types.

The dbt assets show these in Dagster after each run (orchestration/transform/assets.py), with each column's
description from the model's YAML. They are read once dbt has finished (on DuckDB dbt holds the file's only
write lock while it runs) through a :class:`~pulse.core.warehouse.Warehouse`, so the same code serves DuckDB and
Spark: DuckDB lists every column in one ``information_schema`` query, Spark describes each relation; the row
counts are one ``union all`` query on both. Views are not counted: counting one runs its query (the
sessionized events view joins every event with its visit), which can cost more than the run did.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pulse.core.warehouse import Warehouse, literal

__all__ = ["RelationFigures", "relation_columns", "relation_figures", "row_counts"]


@dataclass(frozen=True)
class RelationFigures:
    name: str
    row_count: int | None  # None: a view (not counted) or a relation the warehouse does not have
    columns: tuple[tuple[str, str], ...]  # (name, type as the engine names it), in the relation's order


def relation_columns(warehouse: Warehouse, names: Iterable[str]) -> dict[str, tuple[tuple[str, str], ...]]:
    """Each relation's (column, type) pairs, in order; a relation that does not exist is left out."""
    names = list(dict.fromkeys(names))
    if not names:
        return {}
    if warehouse.engine == "duckdb":
        rows = warehouse.rows(
            "select table_name, column_name, data_type from information_schema.columns "
            f"where table_schema = current_schema() and table_name in ({', '.join(literal(n) for n in names)}) "
            "order by table_name, ordinal_position"
        )
        columns: dict[str, list[tuple[str, str]]] = {}
        for table, column, kind in rows:
            columns.setdefault(table, []).append((column, kind))
        return {name: tuple(columns[name]) for name in names if name in columns}
    found = {}
    for name in names:
        if not warehouse.table_exists(name):
            continue
        described = []
        for column, kind, *_ in warehouse.rows(f"describe table {name}"):
            if not column or column.startswith("#"):  # Spark's partition / detail sections follow a blank row
                break
            described.append((column, kind))
        found[name] = tuple(described)
    return found


def row_counts(warehouse: Warehouse, names: Iterable[str]) -> dict[str, int]:
    """``count(*)`` of each relation, in one query."""
    names = list(dict.fromkeys(names))
    if not names:
        return {}
    sql = " union all ".join(
        f"select {literal(name)} as relation_name, count(*) as row_count from {name}" for name in names
    )
    return {name: int(count) for name, count in warehouse.rows(sql)}


def relation_figures(warehouse: Warehouse, relations: Mapping[str, bool]) -> dict[str, RelationFigures]:
    """Row count and columns of each relation in ``relations`` (name -> is a view); relations missing from the
    warehouse are left out."""
    columns = relation_columns(warehouse, relations)
    counts = row_counts(warehouse, [name for name, is_view in relations.items() if not is_view and name in columns])
    return {name: RelationFigures(name, counts.get(name), cols) for name, cols in columns.items()}
