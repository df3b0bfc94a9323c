"""Event contract v1.3: the fields pulse accepts, their types, and the event types.

docs/event-contract.md is the human description; this module is the one the code uses. Ingestion
(:mod:`pulse.ingest`) turns these declarations into one SQL validation pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
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

# RFC 3339 date-time: full date, 'T' (or a space), full time, and a zone (Z or an offset).
RFC3339_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
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
