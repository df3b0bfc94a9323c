"""What both warehouses (pulse.core.warehouse's DuckDB, pulse.core.spark_warehouse's Spark) share: the column types they
create tables with, the table digest's text, the clean-up helper. Its own module, so that neither warehouse
module imports the other at load time (pulse.core.warehouse opens a Spark warehouse lazily, when asked to)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import pandas as pd

# Column types a Warehouse creates tables with: names both engines accept in DDL.
COLUMN_TYPES = ("string", "double", "bigint", "int", "date", "timestamp", "boolean")

BatchFunction = Callable[[pd.DataFrame], pd.DataFrame]


# A table's digest (Warehouse.table_digest) folds one hash per row into an order-free aggregate: the row count,
# the XOR of the row hashes and their sum modulo this prime. Floating-point columns are hashed as 32-bit
# floats: a rebuild of the same data may sum doubles in another order (last-bit differences), which rounding
# to ~7 significant digits absorbs; a real change of a value moves it.
DIGEST_MODULUS = 2_147_483_647


def digest_text(columns: Sequence[str], count: int, xor: int, total: int) -> str:
    """The digest as text: the columns (a schema change is a change) and the three aggregates."""
    return f"{','.join(columns)}|{count}|{xor}|{total}"


def column_ddl(columns: Sequence[tuple[str, str]]) -> str:
    unknown = [kind for _, kind in columns if kind not in COLUMN_TYPES]
    if unknown:
        raise ValueError(f"column types {unknown} are not among {COLUMN_TYPES}")
    return ", ".join(f"{name} {kind}" for name, kind in columns)


def quietly(action: Callable[..., object], *args: object) -> None:
    """Clean-up after a failure: its own error is logged, never raised over the failure being handled."""
    try:
        action(*args)
    except Exception:  # noqa: BLE001
        logging.getLogger(__name__).warning(
            "clean-up %s%s failed", getattr(action, "__name__", action), args, exc_info=True
        )
