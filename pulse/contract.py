"""Event contract v1.3: the fields pulse accepts, their types, the event types, and the value rules.

docs/event-contract.md is the human description; this module is the one the code uses. Ingestion
(:mod:`pulse.ingest`) turns these declarations into one SQL validation pass.

The value rules (what a number, an integer, a timestamp, a string, a boolean or a JSON object field accepts) are
written here once per field type, twice side by side: in Python (:func:`value_violation`, over a JSON-decoded
value: the collector and the importers) and in SQL (:func:`value_violation_sql`, over the text DuckDB extracts
from a landing line and its JSON type: ingestion). tests/unit/test_value_rules.py runs one table of cases through
the collector, the importers and ingestion and requires the same verdict and reason from each.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
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


@dataclass(frozen=True)
class Field:
    name: str
    type: FieldType
    required: bool = False
    min_value: float | None = None
    max_value: float | None = None


FIELDS: tuple[Field, ...] = (
    Field("event_id", "string", required=True),
    Field("event_type", "string", required=True),
    Field("event_time", "timestamp", required=True),
    Field("received_at", "timestamp"),
    Field("user_id", "string"),
    Field("anonymous_id", "string"),
    Field("session_id", "string"),
    Field("page_view_id", "string"),
    Field("page_url", "string"),
    Field("page_title", "string"),
    Field("referrer", "string"),
    Field("utm_source", "string"),
    Field("utm_medium", "string"),
    Field("utm_campaign", "string"),
    Field("product_id", "string"),
    Field("category", "string"),
    Field("price", "double", min_value=0),
    Field("quantity", "bigint", min_value=0),
    Field("order_id", "string"),
    Field("revenue", "double", min_value=0),
    Field("value", "double", min_value=0),
    Field("cart_value", "double", min_value=0),
    Field("search_query", "string"),
    Field("element", "string"),
    Field("scroll_depth_pct", "double", min_value=0, max_value=100),
    Field("scroll_depth_px", "bigint", min_value=0),
    Field("doc_height_px", "bigint", min_value=0),
    Field("viewport_height_px", "bigint", min_value=0),
    Field("consent_analytics", "boolean"),
    Field("consent_personalization", "boolean"),
    # Set by `pulse import --consent ... --consent-basis TEXT` on the events whose consent flags it filled in
    # (the lawful basis the importing team declared); absent when the flags are the event's own. Not accepted
    # from clients by the collector. See docs/importers.md, "Consent".
    Field("consent_basis", "string"),
    Field("properties", "json"),
    # Set by the collector (pulse collect), not by clients: see docs/collection.md.
    Field("user_agent", "string"),
    Field("ip_address", "string"),
    Field("is_bot", "boolean"),
    Field("network_user_id", "string"),
)


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

# The reasons, after the field's name ("price is not a number: abc").
NOT_A_NUMBER = "is not a number"
NOT_FINITE = "is not a finite number"
NOT_AN_INTEGER = "is not an integer"
OUT_OF_RANGE = "is outside the 64-bit integer range"
NOT_A_TIMESTAMP = "is not an RFC 3339 timestamp"
OFFSET_TOO_WIDE = "has a UTC offset beyond ±18:00"
NOT_A_STRING = "is not a string"
NOT_A_BOOLEAN = "is not a boolean"
NOT_AN_OBJECT = "is not a JSON object"
SHOWN_CHARS = 40  # of the value, in a reason

_NUMBER = re.compile(NUMBER_PATTERN)
_INTEGER = re.compile(INTEGER_PATTERN)
_NON_FINITE = re.compile(NON_FINITE_PATTERN)
_RFC3339 = re.compile(RFC3339_PATTERN)
_OFFSET = re.compile(OFFSET_PATTERN)


class ValueRuleError(ValueError):
    """A value that breaks a value rule. ``rule`` is the reason without the field's name (``is not a number``);
    ``str()`` adds the value."""

    def __init__(self, rule: str, value: object) -> None:
        self.rule = rule
        self.value = value
        super().__init__(f"{rule}: {value[:SHOWN_CHARS] if isinstance(value, str) else _shown(value)}")

    def reason(self, name: str) -> str:
        """The reason naming the field: ``price is not a number: abc``."""
        return f"{name} {self}"


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


def _shown(value: object) -> str:
    """A JSON-decoded value as JSON text (what the sender wrote), for a reason."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))[:SHOWN_CHARS]
    except (TypeError, ValueError, RecursionError):
        return str(value)[:SHOWN_CHARS]


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
                return f"{f.name} is below {f.min_value:g}"
            if f.max_value is not None and number > f.max_value:
                return f"{f.name} is above {f.max_value:g}"
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


def _reason_sql(f: Field, rule: str, text: str) -> str:
    return f"{sql_string(f'{f.name} {rule}: ')} || left({text}, {SHOWN_CHARS})"


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

    def reason(rule: str) -> str:
        return _reason_sql(f, rule, text)

    bounds = "".join(
        f" when {typed} {op} {bound:g} then '{f.name} is {word} {bound:g}'"
        for op, word, bound in (("<", "below", f.min_value), (">", "above", f.max_value))
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
