"""Any CSV or Parquet file + a YAML mapping -> contract events.

A mapping names, for each contract field, where its value comes from::

    fields:
      event_id: {generate: hash, prefix: "rees46-"}   # no id column: hash of the mapped values (docs/importers.md)
      event_time: {column: event_time, format: "%Y-%m-%d %H:%M:%S UTC", timezone: UTC}
      event_type: {column: event_type, values: {view: product_view, cart: add_to_cart}}
      user_id: user_id                                 # short form: a column name
      category: {column: [category_code, category_id]} # the first non-empty of several columns
      revenue: {column: price, only_for: [purchase]}   # only on some event types
      quantity: {value: 1, only_for: [purchase]}       # a constant
    properties: [brand]                                # more columns, kept in properties
    source: {delimiter: ","}                           # CSV options

:func:`load_mapping` checks the file and says precisely what is wrong with it. Two examples ship in
``pulse/importers/mappings/`` (pass their name, e.g. ``--mapping rees46``).
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from pulse.core.contract import FIELDS, ValueRuleError, check_string, is_known_event_type
from pulse.importers.common import (
    MappingError,
    RowError,
    RowResult,
    Source,
    SourceError,
    csv_records,
    csv_rows,
    custom_type,
    format_timestamp,
    from_epoch,
    open_parquet,
    parquet_rows,
    parse_timestamp,
    raise_csv_limit,
    text_or_none,
    to_boolean,
    to_integer,
    to_number,
)

MAPPINGS_DIR = Path(__file__).parent / "mappings"
FIELD_TYPES = {f.name: f.type for f in FIELDS}
TOP_LEVEL_KEYS = ("description", "source", "fields", "properties")
SPEC_KEYS = ("column", "value", "generate", "values", "unmapped", "format", "timezone", "prefix", "only_for")
SOURCE_KEYS = ("delimiter",)
EPOCH_FORMATS = {"epoch_s": "s", "epoch_ms": "ms", "epoch_us": "us"}
GENERATED_ID_PREFIX = "mapped-"


@dataclass(frozen=True)
class FieldSpec:
    name: str
    columns: tuple[str, ...] = ()
    value: Any = None
    generate: str | None = None
    values: dict[str, str] | None = None
    unmapped: str = "reject"
    format: str = "iso"
    timezone: ZoneInfo | None = None
    prefix: str = ""
    only_for: frozenset[str] | None = None


@dataclass(frozen=True)
class Mapping:
    path: Path
    fields: dict[str, FieldSpec]
    properties: dict[str, str] = field(default_factory=dict)  # property name -> column
    delimiter: str = ","

    @property
    def columns(self) -> list[str]:
        """Every source column the mapping reads."""
        names = [c for spec in self.fields.values() for c in spec.columns] + list(self.properties.values())
        return list(dict.fromkeys(names))


def resolve_mapping_path(name: str | Path) -> Path:
    """A path, or the name of a shipped example (``rees46`` -> ``pulse/importers/mappings/rees46.yaml``)."""
    path = Path(name)
    if path.exists():
        return path
    shipped = MAPPINGS_DIR / f"{Path(str(name)).stem}.yaml"
    if "/" not in str(name) and shipped.exists():
        return shipped
    raise MappingError(f"mapping {name}: no such file (shipped examples: {', '.join(shipped_mappings())})")


def shipped_mappings() -> list[str]:
    return sorted(p.stem for p in MAPPINGS_DIR.glob("*.yaml"))


def load_mapping(name: str | Path) -> Mapping:
    path = resolve_mapping_path(name)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise MappingError(f"mapping {path}: cannot read it: {exc}") from exc
    return parse_mapping(doc, path)


def parse_mapping(doc: Any, path: Path) -> Mapping:
    def fail(message: str) -> MappingError:
        return MappingError(f"mapping {path}: {message}")

    if not isinstance(doc, dict):
        raise fail("must be a YAML mapping with a 'fields' section")
    unknown = [k for k in doc if k not in TOP_LEVEL_KEYS]
    if unknown:
        raise fail(f"unknown key {unknown[0]!r} (allowed: {', '.join(TOP_LEVEL_KEYS)})")
    raw_fields = doc.get("fields")
    if not isinstance(raw_fields, dict) or not raw_fields:
        raise fail("'fields' must map contract fields to source columns")
    specs: dict[str, FieldSpec] = {}
    for name, raw in raw_fields.items():
        if name not in FIELD_TYPES:
            raise fail(f"unknown contract field {name!r} in 'fields' (contract fields: {', '.join(FIELD_TYPES)})")
        specs[name] = _parse_spec(str(name), raw, fail)
    for required in ("event_time", "event_type"):
        if required not in specs:
            raise fail(f"'fields' has no {required} mapping (every event needs one)")
    if "user_id" not in specs and "anonymous_id" not in specs:
        raise fail("'fields' maps neither user_id nor anonymous_id (every event needs an identity)")
    if "event_id" not in specs:
        specs["event_id"] = FieldSpec(name="event_id", generate="hash", prefix=GENERATED_ID_PREFIX)
    properties = _parse_properties(doc.get("properties"), fail)
    source = doc.get("source") or {}
    if not isinstance(source, dict):
        raise fail("'source' must be a mapping")
    unknown = [k for k in source if k not in SOURCE_KEYS]
    if unknown:
        raise fail(f"unknown key {unknown[0]!r} in 'source' (allowed: {', '.join(SOURCE_KEYS)})")
    delimiter = source.get("delimiter", ",")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise fail("source.delimiter must be one character")
    return Mapping(path=path, fields=specs, properties=properties, delimiter=delimiter)


def _parse_spec(name: str, raw: Any, fail: Any) -> FieldSpec:
    where = f"fields.{name}"
    if isinstance(raw, str):
        raw = {"column": raw}
    if not isinstance(raw, dict):
        raise fail(f"{where} must be a column name or a mapping with 'column', 'value' or 'generate'")
    unknown = [k for k in raw if k not in SPEC_KEYS]
    if unknown:
        raise fail(f"unknown key {unknown[0]!r} in {where} (allowed: {', '.join(SPEC_KEYS)})")
    sources = [k for k in ("column", "value", "generate") if k in raw]
    if len(sources) != 1:
        raise fail(f"{where} needs exactly one of 'column', 'value' or 'generate'")
    kind = FIELD_TYPES[name]
    columns: tuple[str, ...] = ()
    if "column" in raw:
        column = raw["column"]
        columns = (column,) if isinstance(column, str) else tuple(column) if isinstance(column, list) else ()
        if not columns or not all(isinstance(c, str) and c for c in columns):
            raise fail(f"{where}.column must be a column name or a list of column names")
    generate = raw.get("generate")
    if generate is not None and (name != "event_id" or generate != "hash"):
        raise fail(f"{where}.generate: only event_id can be generated, with 'generate: hash'")
    values = raw.get("values")
    if values is not None:
        if not isinstance(values, dict) or not values:
            raise fail(f"{where}.values must map source values to {name} values")
        values = {str(k): str(v) for k, v in values.items()}
        if name == "event_type":
            bad = [v for v in values.values() if not is_known_event_type(v)]
            if bad:
                raise fail(f"{where}.values maps to unknown event_type {bad[0]!r}")
    unmapped = raw.get("unmapped", "reject")
    if unmapped not in ("reject", "custom"):
        raise fail(f"{where}.unmapped must be 'reject' or 'custom'")
    if "unmapped" in raw and name != "event_type":
        raise fail(f"{where}.unmapped applies to event_type only")
    if name == "event_type" and "value" in raw and not is_known_event_type(str(raw["value"])):
        raise fail(f"{where}.value {raw['value']!r} is not a contract event type")
    fmt = raw.get("format", "iso")
    timezone = None
    if "format" in raw or "timezone" in raw:
        if kind != "timestamp":
            raise fail(f"{where}: 'format' and 'timezone' apply to timestamp fields only")
        if not isinstance(fmt, str) or not (fmt == "iso" or fmt in EPOCH_FORMATS or "%" in fmt):
            raise fail(f"{where}.format must be iso, epoch_s, epoch_ms, epoch_us or a strptime pattern")
        if "timezone" in raw:
            try:
                timezone = ZoneInfo(str(raw["timezone"]))
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise fail(f"{where}.timezone {raw['timezone']!r} is not a known time zone") from exc
    only_for = raw.get("only_for")
    if only_for is not None:
        if isinstance(only_for, str):
            only_for = [only_for]
        if not isinstance(only_for, list) or not all(isinstance(t, str) and is_known_event_type(t) for t in only_for):
            raise fail(f"{where}.only_for must list contract event types")
        if name in ("event_id", "event_type", "event_time"):
            raise fail(f"{where}.only_for: {name} is needed on every event")
        only_for = frozenset(only_for)
    prefix = raw.get("prefix", GENERATED_ID_PREFIX if generate else "")
    if not isinstance(prefix, str) or (prefix and kind != "string"):
        raise fail(f"{where}.prefix must be text, on a text field")
    return FieldSpec(
        name=name,
        columns=columns,
        value=raw.get("value"),
        generate=generate,
        values=values,
        unmapped=unmapped,
        format=fmt,
        timezone=timezone,
        prefix=prefix,
        only_for=only_for,
    )


def _parse_properties(raw: Any, fail: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if isinstance(raw, list) and all(isinstance(c, str) and c for c in raw):
        return {c: c for c in raw}
    if isinstance(raw, dict) and all(isinstance(k, str) and isinstance(v, str) and v for k, v in raw.items()):
        return dict(raw)
    raise fail("'properties' must be a list of columns or a mapping of property names to columns")


# ---------------------------------------------------------------------------------------------- mapping rows


def _first(spec: FieldSpec, row: dict[str, Any]) -> Any:
    for column in spec.columns:
        value = row.get(column)
        if value is not None and value != "":
            return value
    return None


def _timestamp(spec: FieldSpec, value: Any) -> datetime:
    tz = spec.timezone or UTC
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=tz)).astimezone(UTC)
    if isinstance(value, date):
        raise ValueError("a date without a time")
    if spec.format in EPOCH_FORMATS:
        number = to_number(value)
        if number is None:
            raise ValueError("empty")
        return from_epoch(number, EPOCH_FORMATS[spec.format])
    text = str(value).strip()
    if spec.format == "iso":
        parsed = parse_timestamp(text, tz if spec.timezone else None)
        if parsed is None:
            raise ValueError(text)
        return parsed
    parsed = datetime.strptime(text, spec.format)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)).astimezone(UTC)


def _typed(spec: FieldSpec, value: Any) -> Any:
    kind = FIELD_TYPES[spec.name]
    try:
        if kind == "string":
            text = text_or_none(value)
            if not isinstance(text, str):  # an object, a list, a boolean, NaN: refused by the contract's rule
                check_string(text)
            return spec.prefix + text
        if kind == "timestamp":
            return _timestamp(spec, value)
        if kind == "double":
            return to_number(value if isinstance(value, int | str) else float(value))
        if kind == "bigint":
            return to_integer(value)
        if kind == "boolean":
            return to_boolean(value)
        obj = json.loads(value) if isinstance(value, str) else value
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
        return obj
    except ValueRuleError as exc:
        raise RowError(exc.reason(spec.name)) from exc
    except (ValueError, TypeError) as exc:
        noun = {
            "double": "a number",
            "bigint": "an integer",
            "boolean": "a boolean",
            "json": "a JSON object",
            "timestamp": f"a timestamp ({spec.format})",
        }.get(kind, kind)
        raise RowError(f"{spec.name} is not {noun}: {str(value)[:40]}") from exc


def _event_type(spec: FieldSpec, row: dict[str, Any]) -> str:
    raw = spec.value if spec.value is not None else _first(spec, row)
    if raw is None:
        raise RowError("missing event_type")
    text = str(raw)
    if spec.values is not None and text in spec.values:
        return spec.values[text]
    if is_known_event_type(text):
        return text
    if spec.unmapped == "custom":
        return custom_type(text)
    raise RowError(f"unmapped event_type value: {text[:40]}")


def map_row(mapping: Mapping, row: dict[str, Any], line: int = 0) -> tuple[dict[str, Any], datetime]:
    """One source row -> (contract event, event_time). A generated event_id depends on the row's content only,
    not on ``line`` (a re-export with rows added or reordered keeps every id: :func:`content_id`)."""
    event_type = _event_type(mapping.fields["event_type"], row)
    event: dict[str, Any] = {"event_id": None, "event_type": event_type}
    when: datetime | None = None
    for name, spec in mapping.fields.items():
        if name in ("event_type", "event_id"):
            continue
        if spec.only_for is not None and event_type not in spec.only_for:
            continue
        raw = spec.value if spec.value is not None else _first(spec, row)
        if raw is None:
            continue
        value = _typed(spec, raw)
        if name == "event_time":
            when = value
        event[name] = format_timestamp(value) if isinstance(value, datetime) else value
    if when is None:
        raise RowError("missing event_time")
    if event.get("user_id") is None and event.get("anonymous_id") is None:
        raise RowError("missing identity: neither user_id nor anonymous_id")
    properties = dict(event.get("properties") or {})
    for key, column in mapping.properties.items():
        value = row.get(column)
        if value is not None and value != "":
            properties[key] = value
    event["properties"] = properties
    id_spec = mapping.fields["event_id"]
    if id_spec.generate == "hash":
        event["event_id"] = content_id(id_spec.prefix, event)
    else:
        raw = id_spec.value if id_spec.value is not None else _first(id_spec, row)
        if raw is None:
            raise RowError("missing event_id")
        event["event_id"] = _typed(id_spec, raw)
    return event, when


def content_id(prefix: str, event: dict[str, Any]) -> str:
    """``<prefix><first 32 hex of the sha256 of the mapped event>`` (every field and property but the id, keys
    sorted): the same row gives the same id in any file, at any line. Identical rows of one file share it; the
    import numbers their later copies (``-2``, ``-3``: pulse.importers.common.RepeatedContentIds)."""
    content = {k: v for k, v in event.items() if k != "event_id"}
    if isinstance(content.get("properties"), dict):  # kept as the source typed them: as text, for the hash
        content["properties"] = {k: _as_text(v) for k, v in content["properties"].items()}
    text = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return prefix + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _as_text(value: Any) -> str:
    """A property's value as a CSV cell would hold it (a Parquet export's 42 and a CSV's "42" hash alike)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, str) else str(value)


# ---------------------------------------------------------------------------------------------- reading


def _check_columns(mapping: Mapping, source: Source, header: list[str]) -> None:
    missing = [c for c in mapping.columns if c not in header]
    if missing:
        raise SourceError(
            f"cannot import {source.path}: columns {', '.join(missing)} named in mapping {mapping.path} "
            f"are not in the file (it has: {', '.join(header[:30])})"
        )


def _is_parquet(source: Source) -> bool:
    if source.path.name.endswith(".parquet"):
        if source.magic != b"PAR1":
            raise SourceError(f"cannot import {source.path}: not a Parquet file")
        return True
    return source.magic == b"PAR1"


def make_converter(mapping: Mapping):  # noqa: ANN201 - a Converter
    def convert(source: Source) -> Iterator[RowResult]:
        if _is_parquet(source):
            yield from _convert_parquet(mapping, source)
        else:
            yield from _convert_csv(mapping, source)

    return convert


def _convert_csv(mapping: Mapping, source: Source) -> Iterator[RowResult]:
    raise_csv_limit()
    with source.text_stream() as stream:
        records = csv_records(stream, lambda lines: csv.reader(lines, delimiter=mapping.delimiter))
        try:
            first = next(records, None)
            if first is None:
                return
            header = [h.strip().lstrip("\ufeff") for h in first[1]]
            _check_columns(mapping, source, header)
            yield from csv_rows(
                records, header, lambda values, number: map_row(mapping, values, number), content_ids=_hashed(mapping)
            )
        except (OSError, EOFError, csv.Error) as exc:
            raise SourceError(f"cannot import {source.path}: {exc}") from exc
        source.finish()


def _convert_parquet(mapping: Mapping, source: Source) -> Iterator[RowResult]:
    parquet = open_parquet(source)
    _check_columns(mapping, source, parquet.schema_arrow.names)
    yield from parquet_rows(
        source,
        parquet,
        lambda values, number: map_row(mapping, values, number),
        columns=mapping.columns,
        content_ids=_hashed(mapping),
    )


def _hashed(mapping: Mapping) -> bool:
    """Whether the mapping generates event ids from the rows' content (the source has none)."""
    return mapping.fields["event_id"].generate == "hash"
