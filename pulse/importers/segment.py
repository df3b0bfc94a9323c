"""Segment spec messages (one JSON object per line, as Segment's S3 / warehouse exports write them).

``type`` decides the contract type: ``page`` and ``screen`` -> ``page_view``, ``identify`` and ``alias`` ->
``identify``, ``track`` by its ``event`` name (the ecommerce spec v2 names, and their v1 spellings, map to
contract types; any other name -> ``custom.<snake_case name>``), ``group`` -> ``custom.group``.
Traits are not copied (they are usually PII); see docs/importers.md for every field. Consent choices
(``context.consent.categoryPreferences``, Segment's consent management) become the contract's consent flags.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pulse.importers.common import (
    RowError,
    RowResult,
    Source,
    custom_type,
    format_timestamp,
    integer_field,
    json_rows,
    make_event,
    number_field,
    parse_timestamp,
    snake_case,
    text_or_none,
    timestamp_reason,
)
from pulse.importers.consent import flags_from_categories

# Segment ecommerce spec event names (v2, and the v1 spelling) -> contract type.
TRACK_EVENTS = {
    "product_viewed": "product_view",
    "viewed_product": "product_view",
    "product_added": "add_to_cart",
    "added_product": "add_to_cart",
    "product_removed": "remove_from_cart",
    "removed_product": "remove_from_cart",
    "checkout_started": "checkout",
    "started_order": "checkout",
    "order_completed": "purchase",
    "completed_order": "purchase",
    "products_searched": "search",
    "searched_products": "search",
}
PRODUCT_TYPES = ("product_view", "add_to_cart", "remove_from_cart")
# Properties the mapping consumes (the rest is kept in properties).
_PRODUCT_KEYS = ("product_id", "id", "sku", "category", "price", "quantity")


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _timestamp(message: dict[str, Any], key: str) -> Any:
    value = message.get(key)
    if value is None or value == "":
        return None
    parsed = parse_timestamp(value) if isinstance(value, str) else None
    if parsed is None:
        raise RowError(timestamp_reason(key, value if isinstance(value, str) else str(value)))
    return parsed


def map_message(message: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """One Segment message -> (contract event, event_time)."""
    event_id = text_or_none(message.get("messageId"))
    if event_id is None:
        raise RowError("missing messageId")
    kind = str(message.get("type") or "").lower()
    if not kind:
        raise RowError("missing type")
    when = _timestamp(message, "timestamp") or _timestamp(message, "originalTimestamp")
    when = when or _timestamp(message, "receivedAt")
    if when is None:
        raise RowError("missing timestamp")
    received = _timestamp(message, "receivedAt")
    user_id = text_or_none(message.get("userId"))
    anonymous_id = text_or_none(message.get("anonymousId"))
    if kind == "alias":
        anonymous_id = text_or_none(message.get("previousId")) or anonymous_id
    if user_id is None and anonymous_id is None:
        raise RowError("missing identity: neither userId nor anonymousId")
    properties = message.get("properties")
    properties = dict(properties) if isinstance(properties, dict) else {}
    context = message.get("context") if isinstance(message.get("context"), dict) else {}
    page = context.get("page") if isinstance(context.get("page"), dict) else {}
    campaign = context.get("campaign") if isinstance(context.get("campaign"), dict) else {}
    fields: dict[str, Any] = {
        "event_id": event_id,
        "event_type": None,
        "event_time": format_timestamp(when),
        "received_at": format_timestamp(received) if received else None,
        "user_id": user_id,
        "anonymous_id": anonymous_id,
        "page_url": text_or_none(page.get("url")),
        "page_title": text_or_none(page.get("title")),
        "referrer": text_or_none(page.get("referrer")),
        "utm_source": text_or_none(campaign.get("source")),
        "utm_medium": text_or_none(campaign.get("medium")),
        "utm_campaign": text_or_none(campaign.get("name")),
    }
    if kind == "page":
        fields["event_type"] = "page_view"
        for target, key in (("page_url", "url"), ("page_title", "title"), ("referrer", "referrer")):
            fields[target] = text_or_none(properties.pop(key, None)) or fields[target]
        if message.get("name"):
            properties.setdefault("name", message["name"])
    elif kind == "screen":
        fields["event_type"] = "page_view"
        fields["page_title"] = text_or_none(message.get("name")) or text_or_none(properties.pop("name", None))
        properties["screen"] = True
    elif kind in ("identify", "alias"):
        fields["event_type"] = "identify"
        properties = {}  # identify carries traits, usually PII: not copied
    elif kind == "group":
        fields["event_type"] = "custom.group"
        properties = {"group_id": message.get("groupId")} if message.get("groupId") else {}
    elif kind == "track":
        name = message.get("event")
        if not isinstance(name, str) or not name.strip():
            raise RowError("track message without an event name")
        event_type = TRACK_EVENTS.get(snake_case(name)) or custom_type(name)
        fields["event_type"] = event_type
        if event_type in PRODUCT_TYPES:
            product_id = properties.get("product_id") or properties.get("id") or properties.get("sku")
            fields["product_id"] = text_or_none(product_id)
            fields["category"] = text_or_none(properties.get("category"))
            fields["price"] = number_field(properties.get("price"), "price")
            fields["quantity"] = integer_field(properties.get("quantity"), "quantity")
            for key in _PRODUCT_KEYS:
                properties.pop(key, None)
        elif event_type == "purchase":
            revenue_key = "revenue" if properties.get("revenue") not in (None, "") else "total"
            fields["revenue"] = number_field(properties.pop(revenue_key, None), revenue_key)
            fields["order_id"] = text_or_none(properties.pop("order_id", None))
            products = properties.get("products")
            if isinstance(products, list) and products:
                quantities = [integer_field(p.get("quantity"), "quantity") for p in products if isinstance(p, dict)]
                fields["quantity"] = sum(q if q is not None else 1 for q in quantities)
        elif event_type == "checkout":
            fields["order_id"] = text_or_none(properties.pop("order_id", None))
        elif event_type == "search":
            fields["search_query"] = text_or_none(properties.pop("query", None))
    else:
        raise RowError(f"unknown Segment message type: {kind[:40]}")
    consent = context.get("consent") if isinstance(context.get("consent"), dict) else {}
    categories = consent.get("categoryPreferences")
    if isinstance(categories, dict):
        fields.update(flags_from_categories(categories))
    fields["properties"] = properties
    return fields, when


def _message_result(number: int, _text: str, message: dict) -> RowResult:
    fields, when = map_message(message)
    return RowResult(line=number, events=[make_event(fields, when)])


def convert(source: Source) -> Iterator[RowResult]:
    return json_rows(source, _message_result)
