"""Event contract v1.3, declared once: the fields pulse accepts (types, ranges, who sets them), the event types,
the identity rule, the limits (:class:`EventLimits`: time window and size) and every reason an event is refused
(:class:`Reason`).

Everything that checks or describes an event is derived from these declarations:

- ingestion's one SQL validation pass (:func:`field_check_sql`, :func:`event_checks_sql`, used by
  :mod:`pulse.ingest.raw_events`);
- the collector's and the importers' checks in Python (:func:`event_violations`, :func:`value_violation`);
- the field table and the reason table of docs/event-contract.md and the tracker's list of event types
  (:mod:`pulse.cli.contract_copies`, ``make contract-copies``; a unit test fails when a copy is stale).

The value rules (what a number, an integer, a timestamp, a string, a boolean or a JSON object field accepts) are
written here once per field type, twice side by side: in Python (:func:`value_violation`, over a JSON-decoded
value) and in SQL (:func:`value_violation_sql`, over the text DuckDB extracts from a landing line and its JSON
type). Every reason's text comes from one template (:class:`Reason`) rendered for both. tests/unit/
test_event_contract.py runs one table of good and bad events (every reason) through the collector, the importers
and ingestion and requires the same verdict and the same reason text from each.
"""

from __future__ import annotations

import json
import math
import re
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from numbers import Real
from typing import Literal

# 1.1 added the optional fields value and cart_value; 1.2 the collector's enrichment fields user_agent,
# ip_address, is_bot and network_user_id; 1.3 consent_basis (ingestion adds new fields to an older raw.events).
CONTRACT_VERSION = "1.3"

FieldType = Literal["string", "timestamp", "double", "bigint", "boolean", "json"]

EVENT_TYPES: tuple[str, ...] = (
    "page_view",
    "page_ping",
    "scroll",
    "click",
    "search",
    "product_view",
    "add_to_cart",
    "remove_from_cart",
    "checkout",
    "purchase",
    "identify",
)
CUSTOM_EVENT_PREFIX = "custom."

# RFC 3339 date-time: full date, 'T' (or a space), full time, and a zone (Z or an offset). ASCII digits only:
# [0-9], not \d (which in Python also matches full-width and other scripts' digits).
RFC3339_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
# Default plausibility window of event_time (ingestion's IngestOptions can change it): events before this
# (UTC) are clock resets, epoch-0 defaults or test data; an event may be at most this far in the future.
EARLIEST_EVENT_TIME = datetime(2000, 1, 1)
FUTURE_TOLERANCE = timedelta(days=1)
# The most bytes one event may take as a line of a landing file (UTF-8 JSON), by default.
MAX_ROW_BYTES = 64 * 1024


# Who sets a field: the sender (the tracker, a server-side client, an export, an importer's mapping); the
# collector (``pulse collect`` overwrites or removes what a client sends: docs/collection.md); or ``pulse import``
# alone (the collector removes it from what clients send).
SetBy = Literal["sender", "collector", "import"]


@dataclass(frozen=True)
class Field:
    name: str
    type: FieldType
    required: bool = False
    min_value: float | None = None
    max_value: float | None = None
    set_by: SetBy = "sender"
    doc: str = ""  # the notes column of docs/event-contract.md's field table
    since: str = "1.0"  # the contract version that added it


# Of these, at least one must be present (not absent, null or ""): an event nobody can be tied to is refused.
IDENTITY_FIELDS: tuple[str, ...] = ("user_id", "anonymous_id")

FIELDS: tuple[Field, ...] = (
    Field(
        "event_id",
        "string",
        required=True,
        doc="unique per event; a repeated id is a duplicate (the copy with the earliest `received_at` is kept)",
    ),
    Field("event_type", "string", required=True, doc="one of the [types below](#event-types), or `custom.<name>`"),
    Field(
        "event_time", "timestamp", required=True, doc="when it happened, with a zone (`Z` or `±hh:mm`); stored in UTC"
    ),
    Field("received_at", "timestamp", set_by="collector", doc="when the collector received it"),
    Field("user_id", "string", doc="the known user (a login id or a hash of it: no raw PII needed)"),
    Field("anonymous_id", "string", doc="the device / cookie id"),
    Field("session_id", "string", doc="the client's session id; a change starts a new session"),
    Field("page_view_id", "string", doc="ties `page_ping`, `scroll` and `click` events to their `page_view`"),
    Field("page_url", "string", doc="the page"),
    Field("page_title", "string", doc="the page"),
    Field("referrer", "string", doc="the page"),
    Field("utm_source", "string", doc="the campaign (UTM parameters of the landing page)"),
    Field("utm_medium", "string", doc="the campaign (UTM parameters of the landing page)"),
    Field("utm_campaign", "string", doc="the campaign (UTM parameters of the landing page)"),
    Field("product_id", "string", doc="the product"),
    Field("category", "string", doc="the product"),
    Field("price", "double", min_value=0, doc="unit price"),
    Field("quantity", "bigint", min_value=0, doc="at most 2^63 − 1, as every integer field"),
    Field("order_id", "string", doc="the order, on `purchase`"),
    Field("revenue", "double", min_value=0, doc="order total on `purchase`"),
    Field(
        "value",
        "double",
        min_value=0,
        since="1.1",
        doc="what an `add_to_cart` / `remove_from_cart` moves: Σ price × quantity of its products (GA4's `value`); "
        "when absent, `price` × `quantity` (1 when absent)",
    ),
    Field(
        "cart_value",
        "double",
        min_value=0,
        since="1.1",
        doc="the cart's total after this add or remove, when the tracker reports it (Snowplow's cart entity "
        "`total_value`); lets pulse count carts as Snowplow does",
    ),
    Field("search_query", "string", doc="what a `search` looked for"),
    Field("element", "string", doc="click target (CSS selector, link id)"),
    Field(
        "scroll_depth_pct", "double", min_value=0, max_value=100, doc="deepest point seen, in percent of the document"
    ),
    Field(
        "scroll_depth_px",
        "bigint",
        min_value=0,
        doc="deepest vertical offset of the viewport's top (Snowplow's `pp_yoffset_max`)",
    ),
    Field("doc_height_px", "bigint", min_value=0, doc="to compute the percentage when it is not sent"),
    Field("viewport_height_px", "bigint", min_value=0, doc="to compute the percentage when it is not sent"),
    Field(
        "consent_analytics",
        "boolean",
        doc="the latest value a user sent is the one that holds; a flag the user sent outranks one an import "
        "declared (`consent_basis`)",
    ),
    Field(
        "consent_personalization",
        "boolean",
        doc="the latest value a user sent is the one that holds; a flag the user sent outranks one an import "
        "declared (`consent_basis`)",
    ),
    # Set by `pulse import --consent ... --consent-basis TEXT` on the events whose consent flags it filled in
    # (the lawful basis the importing team declared); absent when the flags are the event's own. Not accepted
    # from clients by the collector. See docs/importers.md, "Consent".
    Field(
        "consent_basis",
        "string",
        set_by="import",
        since="1.3",
        doc="set by `pulse import --consent … --consent-basis TEXT` on the events whose consent flags it filled "
        'in: the lawful basis the importing team declared (`"consent collected at sign-up (form v3)"`, '
        '`"contract"`); absent when the flags are the event\'s own ([importers.md](importers.md#consent))',
    ),
    Field("properties", "json", doc="anything else"),
    # Set by the collector (pulse collect), not by clients: see docs/collection.md.
    Field("user_agent", "string", set_by="collector", since="1.2", doc="from the request's `User-Agent`"),
    Field(
        "ip_address",
        "string",
        set_by="collector",
        since="1.2",
        doc="the client's address, truncated (IPv4 /24, IPv6 /48) or absent by its configuration, absent without "
        "analytics consent",
    ),
    Field(
        "is_bot",
        "boolean",
        set_by="collector",
        since="1.2",
        doc="the user agent looks like a crawler or a headless browser; flagged, never dropped",
    ),
    Field(
        "network_user_id",
        "string",
        set_by="collector",
        since="1.2",
        doc="its first-party HttpOnly cookie `pulse_nid`, with analytics consent only",
    ),
)
FIELDS_BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}
REQUIRED_FIELDS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.required)


@dataclass(frozen=True)
class EventLimits:
    """The limits an event must keep besides its fields' rules, as the settings set them (pulse.core.settings:
    ``earliest_event_time``, ``future_tolerance_hours``, ``max_row_bytes``). Ingestion applies them per landing
    day (:class:`pulse.ingest.raw_events.IngestOptions`), the collector per request (the future against its clock)."""

    # Events before this (naive UTC) are refused: clock resets, epoch-0 defaults, test data.
    earliest_event_time: datetime = EARLIEST_EVENT_TIME
    # An event may be at most this far after the end of its landing day (ingestion) or the collector's clock.
    future_tolerance: timedelta = FUTURE_TOLERANCE
    # The most bytes one event may take as a line of a landing file (UTF-8 JSON).
    max_row_bytes: int = MAX_ROW_BYTES


def is_known_event_type(event_type: str) -> bool:
    """A contract event type, or ``custom.<name>`` with a non-empty name."""
    if event_type in EVENT_TYPES:
        return True
    return event_type.startswith(CUSTOM_EVENT_PREFIX) and len(event_type) > len(CUSTOM_EVENT_PREFIX)


# ---------------------------------------------------------------------------------------------- value rules
#
# What a present value (not absent, not JSON null, not "") of each field type must be. The same in the collector,
# the importers and ingestion; docs/event-contract.md, "Values", says why each bound is where it is.
#
# - double: a JSON number, or text that is a decimal number in ASCII digits (optionally signed, with a fraction
#   and an exponent, surrounded by spaces or tabs); finite: NaN and ±Infinity (as text or as the non-standard
#   JSON tokens some writers emit), and numbers beyond the double range (1e999), are refused.
# - bigint: the same, integral, and within the warehouse column's range (BIGINT: -2^63 .. 2^63-1). An integer
#   literal is checked exactly; a number written with a fraction or an exponent (2.0, 1e3) by its double value.
# - timestamp: RFC 3339 with a zone (Z or ±hh:mm), ASCII digits, a real date and time (hour 00-23, minute and
#   second 00-59: no leap second, no 24:00), and a UTC offset within ±18:00.
# - string: a JSON string, or a finite JSON number (kept as its text: numeric ids); never an object, an array or
#   a boolean.
# - boolean: JSON true / false, or the text true / false in any case (spreadsheets write TRUE).
# - json: a JSON object, or text holding one (a CSV cell).

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# The widest UTC offset accepted. Real zones span -12:00 .. +14:00; ±18:00 is the range java.time's ZoneOffset
# accepts (the JVM under Spark, which reads these rows). RFC 3339's grammar would admit up to ±23:59, which no zone
# has ever used; Python's datetime refuses ±24:00 and beyond; DuckDB accepts anything (+99:99) and shifts the time.
MAX_UTC_OFFSET = timedelta(hours=18)
_BLANK = "[ \\t]*"
NUMBER_PATTERN = rf"^{_BLANK}[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?{_BLANK}$"
INTEGER_PATTERN = rf"^{_BLANK}[+-]?[0-9]+{_BLANK}$"
# Text a float parser reads as NaN or infinity: refused as "not a finite number" (not merely "not a number").
NON_FINITE_PATTERN = rf"^{_BLANK}[+-]?([Nn][Aa][Nn]|[Ii][Nn][Ff]([Ii][Nn][Ii][Tt][Yy])?){_BLANK}$"
OFFSET_PATTERN = r"([+-])([0-9]{2}):([0-9]{2})$"
BOOLEAN_TEXTS = ("true", "false")

SHOWN_CHARS = 40  # of a value, in a reason


class Sql(str):
    """An SQL expression (not a constant) given to :meth:`Reason.sql` for one of a template's parts."""


@dataclass(frozen=True)
class Reason:
    """Why an event is refused: one template (``{field} is not a number: {value}``) that the collector and the
    importers render in Python (:meth:`text`) and ingestion in SQL (:meth:`sql`), so every path words it alike.
    A ``{value}`` part is the offending value, cut to :data:`SHOWN_CHARS` characters. ``when`` says when it
    applies (docs/event-contract.md's reason table)."""

    template: str
    when: str

    @property
    def kind(self) -> str:
        """The reason without its value: the text before ``: `` (what reports count by)."""
        return self.template.split(": ")[0]

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(name for _, name, _, _ in string.Formatter().parse(self.template) if name)

    def text(self, **parts: object) -> str:
        """The reason in Python: ``NOT_A_NUMBER.text(field="price", value="abc")``."""
        return self.template.format_map({k: _cut(k, v) for k, v in parts.items()})

    def sql(self, **parts: object) -> str:
        """The reason as an SQL expression: each part an :class:`Sql` expression or a constant (rendered as
        :meth:`text` would). ``NOT_A_NUMBER.sql(field="price", value=Sql("text_price"))`` is
        ``'price is not a number: ' || left(text_price, 40)``."""
        pieces: list[str] = []
        literal = ""
        for text, name, _, _ in string.Formatter().parse(self.template):
            literal += text
            if name is None:
                continue
            part = parts[name]
            if isinstance(part, Sql):
                if literal:
                    pieces.append(sql_string(literal))
                    literal = ""
                pieces.append(f"left({part}, {SHOWN_CHARS})" if name == "value" else str(part))
            else:
                literal += _cut(name, part)
        if literal or not pieces:
            pieces.append(sql_string(literal))
        return " || ".join(pieces)

    @property
    def doc(self) -> str:
        """The template as docs show it: ``<field> is not a number: <value>``."""
        return re.sub(r"\{(\w+)\}", r"<\1>", self.template)


def _cut(name: str, part: object) -> str:
    text = str(part)
    return text[:SHOWN_CHARS] if name == "value" else text


# Every reason an event (a landing line, a collected event, an imported row) is refused for, in the order the
# reason table of docs/event-contract.md lists them. A line breaking several field rules gets each reason, in the
# order of FIELDS, then the event rules, joined by "; " (REASON_SEPARATOR).
REASON_SEPARATOR = "; "
INVALID_UTF8 = Reason(
    "invalid UTF-8",
    "the line (CSV: the record) is not valid UTF-8; only it is quarantined, the raw text kept with `\\xNN` escapes",
)
ROW_TOO_LARGE = Reason(
    "row exceeds {limit} bytes",
    "the event's line is longer than the limit (setting `max_row_bytes`, 65536; the collector measures the line "
    "it would write)",
)
EMPTY_LINE = Reason("empty line", "a blank line in a JSON Lines file")
MALFORMED_JSON = Reason("malformed JSON", "the line does not parse")
NOT_AN_EVENT_OBJECT = Reason(
    "not a JSON object: {json_type}", "the line (an element of a collected batch) is JSON but not an object"
)
CSV_ROW_WIDTH = Reason(
    "CSV row has {columns} columns, header has {header_columns}", "a CSV row that does not fit the header"
)
MISSING_REQUIRED = Reason(
    "missing required field {field}", f"{' or '.join(f'`{name}`' for name in REQUIRED_FIELDS)} is absent or empty"
)
MISSING_IDENTITY = Reason(
    f"missing identity: neither {' nor '.join(IDENTITY_FIELDS)}", "none of them is present (absent, null or empty)"
)
UNKNOWN_EVENT_TYPE = Reason("unknown event_type: {value}", "not a contract type nor `custom.<name>`")
NOT_A_TIMESTAMP = Reason(
    "{field} is not an RFC 3339 timestamp: {value}",
    "no zone, another format, non-ASCII digits, an impossible date or time, an epoch number ([Values](#values))",
)
OFFSET_TOO_WIDE = Reason("{field} has a UTC offset beyond ±18:00: {value}", "e.g. `+25:00` ([Values](#values))")
NOT_A_NUMBER = Reason("{field} is not a number: {value}", "other digits, `1_000`, `12,50`, `true`, an object")
NOT_FINITE = Reason("{field} is not a finite number: {value}", "NaN, infinity, `1e999`")
NOT_AN_INTEGER = Reason("{field} is not an integer: {value}", '`2.5`, `"２"`, `"NaN"`')
OUT_OF_RANGE = Reason("{field} is outside the 64-bit integer range: {value}", "an integer beyond −2^63 .. 2^63 − 1")
NOT_A_STRING = Reason("{field} is not a string: {value}", "an object, an array, a boolean, NaN in a string field")
NOT_A_BOOLEAN = Reason("{field} is not a boolean: {value}", "anything but `true` / `false` (as JSON or text)")
NOT_AN_OBJECT = Reason("{field} is not a JSON object: {value}", "`properties` holding anything but an object")
BELOW = Reason("{field} is below {bound}", "out of range: a negative price, quantity, ...")
ABOVE = Reason("{field} is above {bound}", "out of range: a scroll depth over 100 %")
BEFORE_FLOOR = Reason(
    "event_time before {floor}",
    "before the floor (setting `earliest_event_time`, `2000-01-01`); `pulse import` counts them and names the "
    "setting instead of refusing them",
)
IN_THE_FUTURE = Reason(
    "event_time in the future: after {ceiling}",
    "more than `future_tolerance_hours` (24) after the end of the landing day (the collector: after its clock)",
)
REASONS: tuple[Reason, ...] = (
    INVALID_UTF8,
    ROW_TOO_LARGE,
    EMPTY_LINE,
    MALFORMED_JSON,
    NOT_AN_EVENT_OBJECT,
    CSV_ROW_WIDTH,
    MISSING_REQUIRED,
    MISSING_IDENTITY,
    UNKNOWN_EVENT_TYPE,
    NOT_A_TIMESTAMP,
    OFFSET_TOO_WIDE,
    NOT_A_NUMBER,
    NOT_FINITE,
    NOT_AN_INTEGER,
    OUT_OF_RANGE,
    NOT_A_STRING,
    NOT_A_BOOLEAN,
    NOT_AN_OBJECT,
    BELOW,
    ABOVE,
    BEFORE_FLOOR,
    IN_THE_FUTURE,
)
# The format of a time in a reason (the future's ceiling), in Python and in DuckDB's strftime.
REASON_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

_NUMBER = re.compile(NUMBER_PATTERN)
_INTEGER = re.compile(INTEGER_PATTERN)
_NON_FINITE = re.compile(NON_FINITE_PATTERN)
_RFC3339 = re.compile(RFC3339_PATTERN)
_OFFSET = re.compile(OFFSET_PATTERN)


class ValueRuleError(ValueError):
    """A value that breaks a value rule. ``rule`` is the :class:`Reason`; :meth:`reason` renders it for a field."""

    def __init__(self, rule: Reason, value: object) -> None:
        self.rule = rule
        self.value = value
        self.shown = value[:SHOWN_CHARS] if isinstance(value, str) else _shown(value)
        super().__init__(self.reason("value"))

    def reason(self, name: str) -> str:
        """The reason naming the field: ``price is not a number: abc``."""
        return self.rule.text(field=name, value=self.shown)


def parse_number(value: object) -> float | int:
    """A double field's value as a Python number (an int stays an int); :class:`ValueRuleError` otherwise."""
    if isinstance(value, bool):
        raise ValueRuleError(NOT_A_NUMBER, value)
    if isinstance(value, int):
        try:
            float(value)
        except OverflowError:
            raise ValueRuleError(NOT_FINITE, value) from None
        return value
    if isinstance(value, Real | Decimal):  # float, numpy numbers, Parquet decimals
        number = float(value)
        if not math.isfinite(number):
            raise ValueRuleError(NOT_FINITE, value)
        return number
    if isinstance(value, str):
        if _NUMBER.fullmatch(value):
            number = float(value)
            if not math.isfinite(number):  # 1e999
                raise ValueRuleError(NOT_FINITE, value)
            return number
        raise ValueRuleError(NOT_FINITE if _NON_FINITE.fullmatch(value) else NOT_A_NUMBER, value)
    raise ValueRuleError(NOT_A_NUMBER, value)


def parse_integer(value: object) -> int:
    """A bigint field's value as a Python int; :class:`ValueRuleError` otherwise (see the rules above)."""
    if isinstance(value, bool):
        raise ValueRuleError(NOT_AN_INTEGER, value)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _INTEGER.fullmatch(value):
        number = int(value)
    else:
        try:
            real = float(parse_number(value))
        except ValueRuleError:
            raise ValueRuleError(NOT_AN_INTEGER, value) from None
        if not real.is_integer():
            raise ValueRuleError(NOT_AN_INTEGER, value)
        if not INT64_MIN <= real < -INT64_MIN:
            raise ValueRuleError(OUT_OF_RANGE, value)
        number = int(real)
    if not INT64_MIN <= number <= INT64_MAX:
        raise ValueRuleError(OUT_OF_RANGE, value)
    return number


def parse_rfc3339(value: object) -> datetime:
    """An RFC 3339 timestamp as an aware datetime; :class:`ValueRuleError` otherwise (see the rules above)."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueRuleError(NOT_A_TIMESTAMP, value)
    offset = _OFFSET.search(value)
    if offset is not None:
        hours, minutes = int(offset.group(2)), int(offset.group(3))
        if minutes > 59:
            raise ValueRuleError(NOT_A_TIMESTAMP, value)
        if timedelta(hours=hours, minutes=minutes) > MAX_UTC_OFFSET:
            raise ValueRuleError(OFFSET_TOO_WIDE, value)
    try:
        # Python checks the date, hour 0-23, minute and second 0-59.
        return datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        raise ValueRuleError(NOT_A_TIMESTAMP, value) from None


def check_string(value: object) -> None:
    """A string field takes a JSON string or a finite JSON number; :class:`ValueRuleError` otherwise."""
    if isinstance(value, str):
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueRuleError(NOT_A_STRING, value)
    try:
        parse_number(value)
    except ValueRuleError:
        raise ValueRuleError(NOT_A_STRING, value) from None


def parse_boolean(value: object) -> bool:
    """A boolean field's value; :class:`ValueRuleError` unless JSON true/false or the text true/false (any case)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in BOOLEAN_TEXTS:
        return value.lower() == "true"
    raise ValueRuleError(NOT_A_BOOLEAN, value)


def check_object(value: object) -> None:
    """A json field takes a JSON object, or text holding one; :class:`ValueRuleError` otherwise."""
    if isinstance(value, dict):
        return
    if isinstance(value, str):
        try:
            if isinstance(json.loads(value), dict):
                return
        except (ValueError, RecursionError):
            pass
    raise ValueRuleError(NOT_AN_OBJECT, value)


class JsonFloat(float):
    """A JSON number with a fraction or an exponent, read with its text (:func:`loads_as_written`): shown in a
    reason as it was written (``1.2e21``, ``2.50``, ``1e999``), as ingestion shows it, not as Python prints it."""

    text: str

    def __new__(cls, text: str) -> JsonFloat:
        number = super().__new__(cls, text)
        number.text = text
        return number


def loads_as_written(text: str | bytes) -> object:
    """JSON text decoded with every number as written: integers exact (Python's), the others :class:`JsonFloat`.
    For the reasons of a refused event: a reader that loses a number's spelling (orjson: an integer beyond 64
    bits becomes a double) reads it again this way before saying why."""
    return json.loads(text, parse_float=JsonFloat)


def _shown(value: object) -> str:
    """A JSON-decoded value as JSON text (what the sender wrote), for a reason."""
    return _as_text(value)[:SHOWN_CHARS]


def _as_text(value: object) -> str:
    """A value as ingestion reads it as text (``json_extract_string``): a string as it is, a number as written
    (:class:`JsonFloat`), anything else as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, JsonFloat):
        return value.text
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return str(value)


def value_violation(f: Field, value: object) -> str | None:
    """Why a present value (not None, not "") of field ``f`` breaks the contract's value rules, naming the field,
    or None. ``value`` is JSON-decoded (str, int, float, bool, dict, list)."""
    try:
        if f.type == "string":
            check_string(value)
        elif f.type == "timestamp":
            parse_rfc3339(value)
        elif f.type in ("double", "bigint"):
            number = parse_number(value) if f.type == "double" else parse_integer(value)
            if f.min_value is not None and number < f.min_value:
                return BELOW.text(field=f.name, bound=f"{f.min_value:g}")
            if f.max_value is not None and number > f.max_value:
                return ABOVE.text(field=f.name, bound=f"{f.max_value:g}")
        elif f.type == "boolean":
            parse_boolean(value)
        elif f.type == "json":
            check_object(value)
    except ValueRuleError as error:
        return error.reason(f.name)
    return None


def sql_string(value: str) -> str:
    """``value`` as an SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def _matches(text: str, pattern: str) -> str:
    return f"regexp_matches({text}, {sql_string(pattern)})"


def _reason_sql(f: Field, rule: Reason, text: str) -> str:
    return rule.sql(field=f.name, value=Sql(text))


def cast_sql(f: Field, text: str) -> str | None:
    """DuckDB: the one cast of a field's text (``text`` is null when absent or ""), computed once per line and
    used by :func:`value_violation_sql` and :func:`typed_sql`; None for the types that need none."""
    if f.type == "timestamp":
        return f"try_cast(upper({text}) as timestamptz)"
    if f.type in ("double", "bigint"):
        return f"try_cast({text} as double)"
    if f.type == "boolean":
        return f"try_cast({text} as boolean)"
    return None


def typed_sql(f: Field, text: str, cast: str) -> str:
    """DuckDB: the field's value in its warehouse type (valid when :func:`value_violation_sql` is null). An
    integer literal is cast exactly; a number with a fraction or an exponent through its double."""
    if f.type == "timestamp":
        return f"({cast} at time zone 'UTC')"
    if f.type == "bigint":
        return (
            f"case when {_matches(text, INTEGER_PATTERN)} then try_cast({text} as bigint)"
            f" else try_cast({cast} as bigint) end"
        )
    if f.type in ("double", "boolean"):
        return cast
    return text


def value_violation_sql(f: Field, text: str, cast: str, typed: str, json_type: str | None = None) -> str:
    """DuckDB: the twin of :func:`value_violation`, a CASE giving the same reason (or null). ``text`` is the
    value as ``json_extract_string`` gives it (a JSON string's text, a number token's literal as written, an
    object's or an array's JSON), null when absent, JSON null or ""; ``cast`` the column holding
    :func:`cast_sql`; ``typed`` the column holding :func:`typed_sql`; ``json_type`` (string fields only: their
    text does not tell a string from a number, a boolean or an object) its ``json_type`` (VARCHAR, BIGINT,
    UBIGINT, DOUBLE, BOOLEAN, OBJECT, ARRAY)."""

    def reason(rule: Reason) -> str:
        return _reason_sql(f, rule, text)

    bounds = "".join(
        f" when {typed} {op} {bound:g} then {rule.sql(field=f.name, bound=f'{bound:g}')}"
        for op, rule, bound in (("<", BELOW, f.min_value), (">", ABOVE, f.max_value))
        if bound is not None
    )
    number = _matches(text, NUMBER_PATTERN)
    if f.type == "double":
        return (
            f"case when {text} is null then null"
            f" when not ({number} and isfinite({cast})) then case when {number}"
            f" or {_matches(text, NON_FINITE_PATTERN)} then {reason(NOT_FINITE)} else {reason(NOT_A_NUMBER)} end"
            f"{bounds} end"
        )
    if f.type == "bigint":
        integral = f"{number} and isfinite({cast}) and {cast} = floor({cast})"
        return (
            f"case when {text} is null then null"
            f" when not ({_matches(text, INTEGER_PATTERN)} or ({integral})) then {reason(NOT_AN_INTEGER)}"
            f" when {typed} is null then {reason(OUT_OF_RANGE)}{bounds} end"
        )
    if f.type == "timestamp":
        # Plain string functions, not regexp_extract (several times slower on every row): the pattern has
        # placed every part already (the offset is the last 6 characters unless the zone is Z). Casts are
        # try_casts: a vectorized CASE may evaluate an expression on rows a branch does not select.
        def number_at(expression: str) -> str:
            return f"coalesce(try_cast({expression} as integer), 0)"

        zulu = f"upper(right({text}, 1)) = 'Z'"
        offset_hours, offset_minutes = number_at(f"left(right({text}, 5), 2)"), number_at(f"right({text}, 2)")
        max_minutes = int(MAX_UTC_OFFSET.total_seconds() // 60)
        clock = (
            f"left({text}, 4) <> '0000' and {number_at(f'substr({text}, 12, 2)')} <= 23"
            f" and {number_at(f'substr({text}, 15, 2)')} <= 59 and {number_at(f'substr({text}, 18, 2)')} <= 59"
        )
        return (
            f"case when {text} is null then null"
            f" when not {_matches(text, RFC3339_PATTERN)} then {reason(NOT_A_TIMESTAMP)}"
            f" when not {zulu} and {offset_minutes} > 59 then {reason(NOT_A_TIMESTAMP)}"
            f" when not {zulu} and {offset_hours} * 60 + {offset_minutes} > {max_minutes}"
            f" then {reason(OFFSET_TOO_WIDE)}"
            f" when {cast} is null or not ({clock}) then {reason(NOT_A_TIMESTAMP)} end"
        )
    if f.type == "string":
        if json_type is None:
            raise ValueError(f"{f.name}: a string field's check needs its JSON type")
        return (
            f"case when {text} is null or {json_type} in ('VARCHAR', 'BIGINT', 'UBIGINT')"
            f" or ({json_type} = 'DOUBLE' and isfinite(try_cast({text} as double))) then null"
            f" else {reason(NOT_A_STRING)} end"
        )
    if f.type == "boolean":
        return (
            f"case when {text} is null or lower({text}) in ({', '.join(map(sql_string, BOOLEAN_TEXTS))}) then null"
            f" else {reason(NOT_A_BOOLEAN)} end"
        )
    return (  # json
        f"case when {text} is null or coalesce(try(json_type({text})), '') = 'OBJECT' then null"
        f" else {reason(NOT_AN_OBJECT)} end"
    )


# ---------------------------------------------------------------------------------------------- whole events
#
# An event breaks the contract for every reason that applies, in one order on every path: per field of FIELDS, a
# required field missing or its value rule; then the event rules: the event type, the identity rule, the time
# window (when event_time is valid). Ingestion joins them with "; " (REASON_SEPARATOR); so do the collector and
# the importers.


def is_present(value: object) -> bool:
    """Absent (None: also JSON null) and "" are a missing value, never a broken one."""
    return value is not None and not (isinstance(value, str) and value == "")


def json_type_name(value: object) -> str:
    """A JSON-decoded value's JSON type as DuckDB's ``json_type`` names it, in lower case (``array``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "varchar"
    if isinstance(value, int):
        return "bigint" if INT64_MIN <= value <= INT64_MAX else "ubigint" if 0 <= value < 2**64 else "double"
    if isinstance(value, float):
        return "double"
    if isinstance(value, list):
        return "array"
    return "object"


def event_violations(
    event: dict,
    *,
    floor: datetime | None = None,
    ceiling: datetime | None = None,
    fields: tuple[Field, ...] = FIELDS,
) -> list[str]:
    """Every reason the JSON-decoded object ``event`` breaks the contract, in the contract's order (the order and
    texts of ingestion's SQL: :func:`field_check_sql`, :func:`event_checks_sql`); [] when it keeps it.

    ``fields``: the fields to check (the collector leaves out those it sets itself); fields outside the contract
    are not looked at. ``floor`` / ``ceiling`` (naive UTC): the time window, not checked when None (the
    importers leave it to ingestion, which applies the settings in force when the day is ingested)."""
    reasons: list[str] = []
    event_time: datetime | None = None
    for f in fields:
        value = event.get(f.name)
        if not is_present(value):
            if f.required:
                reasons.append(MISSING_REQUIRED.text(field=f.name))
            continue
        violation = value_violation(f, value)
        if violation is not None:
            reasons.append(violation)
        elif f.name == "event_time":
            event_time = parse_rfc3339(value).astimezone(UTC).replace(tzinfo=None)
    event_type = event.get("event_type")
    if is_present(event_type) and not is_known_event_type(_as_text(event_type)):
        reasons.append(UNKNOWN_EVENT_TYPE.text(value=_as_text(event_type)))
    if not any(is_present(event.get(name)) for name in IDENTITY_FIELDS):
        reasons.append(MISSING_IDENTITY.text())
    if event_time is not None and floor is not None and event_time < floor:
        reasons.append(BEFORE_FLOOR.text(floor=floor.isoformat(sep=" ")))
    if event_time is not None and ceiling is not None and event_time > ceiling:
        reasons.append(IN_THE_FUTURE.text(ceiling=ceiling.strftime(REASON_TIME_FORMAT)))
    return reasons


def field_check_sql(f: Field, text: str, cast: str, typed: str, json_type: str | None = None) -> str:
    """DuckDB: the reason field ``f`` breaks the contract (a required field missing, else its value rule), or
    null. The arguments are :func:`value_violation_sql`'s."""
    value = value_violation_sql(f, text, cast, typed, json_type)
    if not f.required:
        return value
    return f"case when {text} is null then {MISSING_REQUIRED.sql(field=f.name)} else {value} end"


def event_checks_sql(
    texts: dict[str, str], event_time: str, event_time_reason: str, floor: datetime, ceiling: str
) -> list[str]:
    """DuckDB: the event rules, each an expression that is a reason or null, in the contract's order (the twin of
    :func:`event_violations`' end). ``texts``: each field's text column (null when missing); ``event_time``: its
    value in UTC (timestamp); ``event_time_reason``: the column holding its :func:`field_check_sql`; ``floor``
    the earliest event time (naive UTC); ``ceiling`` an SQL expression for the latest (a timestamp)."""
    et = texts["event_type"]
    known = ", ".join(sql_string(t) for t in EVENT_TYPES)
    prefix = CUSTOM_EVENT_PREFIX
    identity = " and ".join(f"{texts[name]} is null" for name in IDENTITY_FIELDS)
    valid_time = f"{event_time_reason} is null and {event_time}"
    shown_ceiling = Sql(f"strftime({ceiling}, {sql_string(REASON_TIME_FORMAT)})")
    return [
        f"case when {et} is not null and {et} not in ({known})"
        f" and not ({et} like {sql_string(prefix + '%')} and length({et}) > {len(prefix)})"
        f" then {UNKNOWN_EVENT_TYPE.sql(value=Sql(et))} end",
        f"case when {identity} then {MISSING_IDENTITY.sql()} end",
        f"case when {valid_time} < timestamp {sql_string(floor.isoformat(sep=' '))}"
        f" then {BEFORE_FLOOR.sql(floor=floor.isoformat(sep=' '))} end",
        f"case when {valid_time} > {ceiling} then {IN_THE_FUTURE.sql(ceiling=shown_ceiling)} end",
    ]


def line_checks_sql(txt: str, nbytes: str, parsed: str, limits: EventLimits) -> list[tuple[str, str]]:
    """DuckDB: the reasons a landing line is refused before its fields are looked at, as (condition, reason)
    pairs in the order they are tested: ``txt`` the line as text (null when not UTF-8), ``nbytes`` its length in
    bytes, ``parsed`` null when it is not JSON."""
    json_type = Sql(f"lower(coalesce(try(json_type({txt})), '?'))")
    return [
        (f"{txt} is null", INVALID_UTF8.sql()),
        (f"{nbytes} > {limits.max_row_bytes}", ROW_TOO_LARGE.sql(limit=limits.max_row_bytes)),
        (f"trim({txt}) = ''", EMPTY_LINE.sql()),
        (f"{parsed} is null", MALFORMED_JSON.sql()),
        (f"left(ltrim({txt}), 1) <> '{{'", NOT_AN_EVENT_OBJECT.sql(json_type=json_type)),
    ]
