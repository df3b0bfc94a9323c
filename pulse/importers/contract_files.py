"""Contract-shaped inputs (``jsonl``, ``csv``, ``parquet``) copied into daily files.

The rows already use the contract's field names. JSON Lines are copied as they are (only routed by the UTC
day of their ``event_time``); CSV and Parquet rows become contract JSON objects: numbers stay numbers,
booleans booleans, typed timestamps RFC 3339 UTC, empty cells are absent, and columns that are not contract
fields go into ``properties``. Every format rejects what it cannot route (no parseable ``event_time``) and
every row that breaks the contract (:func:`pulse.importers.common.contract_problem`: a required field missing,
an unknown event type, no identity, a value against its field's rule), with the reasons the collector and
ingestion give; the time window is ingestion's, by the settings in force when it ingests the day.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from pulse.core.contract import FIELDS, ValueRuleError
from pulse.importers.common import (
    Event,
    RowError,
    RowResult,
    Source,
    SourceError,
    contract_problem,
    csv_records,
    csv_rows,
    format_timestamp,
    json_rows,
    open_parquet,
    parquet_rows,
    parse_timestamp,
    raise_csv_limit,
    text_or_none,
    timestamp_reason,
    to_boolean,
    to_integer,
    to_number,
)

FIELD_TYPES = {f.name: f.type for f in FIELDS}


def event_time_of(value: Any) -> datetime:
    """The routing time of a row: its event_time parsed (a time without a zone counts as UTC here; the
    contract check at ingestion still requires the zone)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        raise RowError("missing required field event_time")
    parsed = parse_timestamp(value)
    if parsed is None:
        raise RowError(timestamp_reason("event_time", value))
    return parsed


# ---------------------------------------------------------------------------------------------- jsonl


def _jsonl_result(number: int, text: str, obj: dict) -> RowResult:
    reason = contract_problem(obj)
    if reason is not None:
        raise RowError(reason)
    when = event_time_of(obj.get("event_time"))
    event = Event(day=when.astimezone(UTC).date(), event_type=str(obj.get("event_type") or ""), line=text.strip())
    return RowResult(line=number, events=[event])


def convert_jsonl(source: Source) -> Iterator[RowResult]:
    return json_rows(source, _jsonl_result)


# ---------------------------------------------------------------------------------------------- csv / parquet


def typed_value(name: str, value: Any) -> Any:
    """A contract field's value from a cell (text or a typed value); RowError when it cannot be typed."""
    kind = FIELD_TYPES[name]
    try:
        if kind in ("string",):
            return text_or_none(value)  # an object, a list or a boolean stays one: make_event refuses it
        if kind == "timestamp":
            if isinstance(value, datetime):
                return format_timestamp(value if value.tzinfo else value.replace(tzinfo=UTC))
            if isinstance(value, date):
                raise ValueError("a date without a time")
            return str(value)  # text is kept as written; ingestion checks RFC 3339
        if kind == "double":
            return to_number(float(value) if isinstance(value, Decimal) else value)
        if kind == "bigint":
            return to_integer(value)
        if kind == "boolean":
            return to_boolean(value)
        if kind == "json":
            obj = json.loads(value) if isinstance(value, str) else value
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
            return obj
    except ValueRuleError as exc:
        raise RowError(exc.reason(name)) from exc
    except (ValueError, TypeError) as exc:
        noun = {"double": "a number", "bigint": "an integer", "boolean": "a boolean", "json": "a JSON object"}
        raise RowError(f"{name} is not {noun.get(kind, kind)}: {str(value)[:40]}") from exc
    return value


def contract_row(values: dict[str, Any]) -> tuple[dict[str, Any], datetime]:
    """Cells (None / '' = absent) -> (contract event, its event_time); extra columns go into properties."""
    event: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for name, value in values.items():
        if value is None or value == "":
            continue
        if name in FIELD_TYPES:
            event[name] = typed_value(name, value)
        else:
            extra[name] = value
    reason = contract_problem(event)  # before routing: the contract's reason, not the router's
    if reason is not None:
        raise RowError(reason)
    when = event_time_of(values.get("event_time"))
    if extra:
        properties = dict(event.get("properties") or {})
        for key, value in extra.items():
            properties.setdefault(key, value)
        event["properties"] = properties
    return event, when


def convert_csv(source: Source) -> Iterator[RowResult]:
    raise_csv_limit()
    with source.text_stream() as stream:
        records = csv_records(stream, csv.reader)
        try:
            first = next(records, None)
            if first is None:
                return
            header = [h.strip().lstrip("\ufeff") for h in first[1]]
            if "event_time" not in header:
                raise SourceError(f"cannot import {source.path}: the CSV header has no event_time column")
            yield from csv_rows(records, header, lambda values, _: contract_row(values))
        except (OSError, EOFError, csv.Error) as exc:
            raise SourceError(f"cannot import {source.path}: {exc}") from exc
        source.finish()


def convert_parquet(source: Source) -> Iterator[RowResult]:
    parquet = open_parquet(source)
    if "event_time" not in parquet.schema_arrow.names:
        raise SourceError(f"cannot import {source.path}: the Parquet file has no event_time column")
    yield from parquet_rows(source, parquet, lambda values, _: contract_row(values))
