"""Snowplow canonical ("atomic") enriched events -> contract events.

Accepted layouts, recognised from the first line:

- CSV with a header row, entities in "shredded" JSON columns as warehouses export them
  (``contexts_com_snowplowanalytics_snowplow_web_page_1_0_0`` holding ``[{"id": ...}]``, sometimes
  double-nested ``[[{...}]]``; ``unstruct_event_<vendor>_<name>_1_0_0`` holding the event's own data;
  the Snowflake style with only the major version, ``..._web_page_1``, works too);
- TSV with a header row (shredded columns, or the canonical ``contexts`` / ``unstruct_event`` /
  ``derived_contexts`` self-describing JSON columns);
- the enriched TSV stream without a header: the 131 fields of :data:`CANONICAL_FIELDS`, in Snowplow's
  documented order.

``event_time`` is ``dvce_created_tstamp``, else ``derived_tstamp``, else ``collector_tstamp``: Snowplow's own
page-view model computes engaged time from the page pings' ``dvce_created_tstamp`` (10-second buckets), and
pulse computes engaged time from the pings' ``event_time``; the same clock gives the same buckets.
``received_at`` is ``collector_tstamp``. See docs/importers.md for every field and the ecommerce choices.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from pulse.importers.common import (
    RowError,
    RowResult,
    Source,
    SourceError,
    csv_records,
    csv_rows,
    custom_type,
    format_timestamp,
    integer_field,
    number_field,
    parse_json,
    parse_timestamp,
    raise_csv_limit,
    snake_case,
    text_or_none,
    timestamp_reason,
)
from pulse.importers.consent import flags_from_scopes

# The enriched TSV's fields, in order (https://docs.snowplow.io/docs/pipeline/enriched-tsv-format/).
CANONICAL_FIELDS: tuple[str, ...] = (
    "app_id", "platform", "etl_tstamp", "collector_tstamp", "dvce_created_tstamp", "event", "event_id",
    "txn_id", "name_tracker", "v_tracker", "v_collector", "v_etl", "user_id", "user_ipaddress",
    "user_fingerprint", "domain_userid", "domain_sessionidx", "network_userid", "geo_country", "geo_region",
    "geo_city", "geo_zipcode", "geo_latitude", "geo_longitude", "geo_region_name", "ip_isp",
    "ip_organization", "ip_domain", "ip_netspeed", "page_url", "page_title", "page_referrer",
    "page_urlscheme", "page_urlhost", "page_urlport", "page_urlpath", "page_urlquery", "page_urlfragment",
    "refr_urlscheme", "refr_urlhost", "refr_urlport", "refr_urlpath", "refr_urlquery", "refr_urlfragment",
    "refr_medium", "refr_source", "refr_term", "mkt_medium", "mkt_source", "mkt_term", "mkt_content",
    "mkt_campaign", "contexts", "se_category", "se_action", "se_label", "se_property", "se_value",
    "unstruct_event", "tr_orderid", "tr_affiliation", "tr_total", "tr_tax", "tr_shipping", "tr_city",
    "tr_state", "tr_country", "ti_orderid", "ti_sku", "ti_name", "ti_category", "ti_price", "ti_quantity",
    "pp_xoffset_min", "pp_xoffset_max", "pp_yoffset_min", "pp_yoffset_max", "useragent", "br_name",
    "br_family", "br_version", "br_type", "br_renderengine", "br_lang", "br_features_pdf",
    "br_features_flash", "br_features_java", "br_features_director", "br_features_quicktime",
    "br_features_realplayer", "br_features_windowsmedia", "br_features_gears", "br_features_silverlight",
    "br_cookies", "br_colordepth", "br_viewwidth", "br_viewheight", "os_name", "os_family",
    "os_manufacturer", "os_timezone", "dvce_type", "dvce_ismobile", "dvce_screenwidth", "dvce_screenheight",
    "doc_charset", "doc_width", "doc_height", "tr_currency", "tr_total_base", "tr_tax_base",
    "tr_shipping_base", "ti_currency", "ti_price_base", "base_currency", "geo_timezone", "mkt_clickid",
    "mkt_network", "etl_tags", "dvce_sent_tstamp", "refr_domain_userid", "refr_device_tstamp",
    "derived_contexts", "domain_sessionid", "derived_tstamp", "event_vendor", "event_name", "event_format",
    "event_version", "event_fingerprint", "true_tstamp",
)  # fmt: skip

REQUIRED_COLUMNS = ("event_id", "collector_tstamp")
EVENT_TIME_COLUMNS = ("dvce_created_tstamp", "derived_tstamp", "collector_tstamp")
CANONICAL_JSON_COLUMNS = ("contexts", "derived_contexts", "unstruct_event")

# Entity keys: snake_case vendor + name + major version, as in the warehouse column names.
WEB_PAGE = "com_snowplowanalytics_snowplow_web_page_1"
MOBILE_SCREEN = "com_snowplowanalytics_mobile_screen_1"
CLIENT_SESSION = "com_snowplowanalytics_snowplow_client_session_1"
ECOMMERCE = "com_snowplowanalytics_snowplow_ecommerce_"
PRODUCT = ECOMMERCE + "product_1"
CART = ECOMMERCE + "cart_1"
TRANSACTION = ECOMMERCE + "transaction_1"
CHECKOUT_STEP = ECOMMERCE + "checkout_step_1"
ECOMMERCE_ACTION_EVENT = "snowplow_ecommerce_action"
LINK_CLICK = "com_snowplowanalytics_snowplow_link_click_1"
CONSENT_PREFERENCES = "com_snowplowanalytics_snowplow_consent_preferences_1"
CONSENT_WITHDRAWN = "com_snowplowanalytics_snowplow_consent_withdrawn_1"
LEGACY_ADD_TO_CART = "com_snowplowanalytics_snowplow_add_to_cart_1"
LEGACY_REMOVE_FROM_CART = "com_snowplowanalytics_snowplow_remove_from_cart_1"

# Ecommerce plugin action types that are contract types; the others become custom.<type>.
ECOMMERCE_ACTIONS = {
    "product_view": "product_view",
    "add_to_cart": "add_to_cart",
    "remove_from_cart": "remove_from_cart",
    "checkout_step": "checkout",
    "transaction": "purchase",
}

_SHREDDED = re.compile(r"^(contexts|unstruct_event)_(.+?_\d+)(?:_\d+_\d+)?$")
_IGLU = re.compile(r"^iglu:([^/]+)/([^/]+)/[^/]+/(\d+)-\d+-\d+$")


def entity_key(schema: str) -> str | None:
    """``iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0`` ->
    ``com_snowplowanalytics_snowplow_web_page_1`` (the warehouse column's name without its prefix)."""
    m = _IGLU.match(schema or "")
    if not m:
        return None
    vendor, name, major = m.groups()
    return f"{snake_case(vendor)}_{snake_case(name)}_{major}"


def _entities(value: Any) -> list[dict[str, Any]]:
    """The entity objects in a JSON value: ``[{..}]``, ``[[{..}]]``, ``{..}`` or self-describing ``{schema, data}``."""
    if isinstance(value, list):
        out: list[dict[str, Any]] = []
        for item in value:
            out.extend(_entities(item))
        return out
    if isinstance(value, dict):
        if set(value) <= {"schema", "data"} and str(value.get("schema", "")).startswith("iglu:"):
            return _entities(value.get("data"))
        return [value]
    return []


class _Layout:
    """Where a file keeps each entity: shredded columns, and / or the canonical self-describing columns."""

    def __init__(self, header: list[str]) -> None:
        self.header = header
        self.contexts: dict[str, list[str]] = {}
        self.unstruct: list[tuple[str, str]] = []
        for column in header:
            m = _SHREDDED.match(column)
            if not m:
                continue
            kind, key = m.groups()
            if kind == "contexts":
                self.contexts.setdefault(key, []).append(column)
            else:
                self.unstruct.append((key, column))
        self.canonical = [c for c in CANONICAL_JSON_COLUMNS if c in header]


class _Row:
    def __init__(self, layout: _Layout, values: dict[str, str]) -> None:
        self.layout = layout
        self.values = values
        self._canonical: dict[str, list[dict[str, Any]]] | None = None
        self._canonical_unstruct: tuple[str, dict[str, Any]] | None = None

    def get(self, column: str) -> str | None:
        value = self.values.get(column)
        return None if value is None or value == "" or value == "\\N" else value

    def _parse_canonical(self) -> None:
        self._canonical = {}
        for column in ("contexts", "derived_contexts"):
            doc = parse_json(self.get(column), column) if column in self.layout.canonical else None
            for item in (doc or {}).get("data", []) if isinstance(doc, dict) else []:
                key = entity_key(item.get("schema", "")) if isinstance(item, dict) else None
                if key:
                    self._canonical.setdefault(key, []).extend(_entities(item.get("data")))
        doc = (
            parse_json(self.get("unstruct_event"), "unstruct_event")
            if "unstruct_event" in self.layout.canonical
            else None
        )
        inner = doc.get("data") if isinstance(doc, dict) else None
        if isinstance(inner, dict):
            key = entity_key(inner.get("schema", ""))
            data = inner.get("data")
            if key:
                self._canonical_unstruct = (key, data if isinstance(data, dict) else {})

    def contexts(self, key: str) -> list[dict[str, Any]]:
        for column in self.layout.contexts.get(key, ()):
            found = _entities(parse_json(self.get(column), column))
            if found:
                return found
        if self.layout.canonical:
            if self._canonical is None:
                self._parse_canonical()
            return (self._canonical or {}).get(key, [])
        return []

    def context(self, key: str) -> dict[str, Any]:
        found = self.contexts(key)
        return found[0] if found else {}

    def unstruct(self) -> tuple[str, dict[str, Any]] | None:
        """(entity key, data) of the event's self-describing payload, if it has one."""
        for key, column in self.layout.unstruct:
            text = self.get(column)
            if text is not None:
                found = _entities(parse_json(text, column))
                return key, (found[0] if found else {})
        if self.layout.canonical:
            if self._canonical is None:
                self._parse_canonical()
            return self._canonical_unstruct
        return None


# ---------------------------------------------------------------------------------------------- mapping


def _timestamp(row: _Row, column: str) -> datetime | None:
    text = row.get(column)
    if text is None:
        return None
    parsed = parse_timestamp(text)
    if parsed is None:
        raise RowError(timestamp_reason(column, text))
    return parsed


def _product_fields(products: list[dict[str, Any]]) -> dict[str, Any]:
    """Top-level product fields from the first product; every product in properties when there are several."""
    if not products:
        return {}
    first = products[0]
    fields: dict[str, Any] = {
        "product_id": text_or_none(first.get("id")),
        "category": text_or_none(first.get("category")),
        "price": number_field(first.get("price"), "product price"),
        "quantity": integer_field(first.get("quantity"), "product quantity"),
    }
    if len(products) > 1:
        fields["properties.products"] = [
            {
                k: v
                for k, v in {
                    "product_id": text_or_none(p.get("id")),
                    "category": text_or_none(p.get("category")),
                    "price": number_field(p.get("price"), "product price"),
                    "quantity": integer_field(p.get("quantity"), "product quantity"),
                    "name": text_or_none(p.get("name")),
                    "brand": text_or_none(p.get("brand")),
                }.items()
                if v is not None
            }
            for p in products
        ]
    currency = text_or_none(first.get("currency"))
    if currency:
        fields["properties.currency"] = currency
    return fields


def _products_value(products: list[dict[str, Any]]) -> float | None:
    """What an add or remove moves: the sum of price x quantity (1 when absent) of its products."""
    value = 0.0
    for product in products:
        price = number_field(product.get("price"), "product price")
        if price is None:
            return None
        quantity = integer_field(product.get("quantity"), "product quantity")
        value += price * (1 if quantity is None else quantity)
    return round(value, 6) if products else None


def _ecommerce(row: _Row, data: dict[str, Any]) -> dict[str, Any]:
    action = text_or_none(data.get("type"))
    fields: dict[str, Any] = {
        "event_type": ECOMMERCE_ACTIONS.get(action or "") or custom_type(action or ECOMMERCE_ACTION_EVENT)
    }
    if action is None:
        return fields  # no action type: kept as custom.snowplow_ecommerce_action, like Snowplow ignores it
    products = row.contexts(PRODUCT)
    fields.update(_product_fields(products))
    if data.get("name"):
        fields["properties.list_name"] = data["name"]
    if action in ("add_to_cart", "remove_from_cart"):
        fields["value"] = _products_value(products)
        cart = row.context(CART)
        if cart:
            fields["cart_value"] = number_field(cart.get("total_value"), "cart total_value")
            fields["properties.cart_id"] = text_or_none(cart.get("cart_id"))
            fields["properties.currency"] = text_or_none(cart.get("currency")) or fields.get("properties.currency")
    elif action == "checkout_step":
        step = row.context(CHECKOUT_STEP)
        if step:
            fields["properties.checkout_step"] = integer_field(step.get("step"), "checkout step")
    elif action == "transaction":
        transaction = row.context(TRANSACTION)
        if transaction:
            order_id = text_or_none(transaction.get("transaction_id"))
            fields["order_id"] = order_id
            fields["revenue"] = number_field(transaction.get("revenue"), "transaction revenue")
            fields["quantity"] = integer_field(transaction.get("total_quantity"), "transaction total_quantity")
            fields["properties.currency"] = text_or_none(transaction.get("currency"))
            fields["properties.payment_method"] = text_or_none(transaction.get("payment_method"))
            fields["properties.shipping"] = number_field(transaction.get("shipping"), "transaction shipping")
            fields["properties.tax"] = number_field(transaction.get("tax"), "transaction tax")
            fields["properties.discount_amount"] = number_field(transaction.get("discount_amount"), "discount_amount")
            if order_id:
                # One purchase per transaction: a repeated transaction event is a duplicate event.
                fields["event_id"] = f"snowplow-transaction-{order_id}"
    return fields


# Enhanced consent plugin (consent_preferences/1-0-0): what its event_type says of the user's choice.
CONSENT_ALL = {"allow_all": True, "deny_all": False, "withdrawn": False, "expired": False}
CONSENT_SELECTED = ("allow_selected", "implicit_consent")


def _consent(data: dict[str, Any]) -> dict[str, Any]:
    """The contract's consent flags from a Snowplow consent_preferences event: allow_all -> both true;
    deny_all, withdrawn, expired -> both false; allow_selected and implicit_consent -> by the granted
    ``consent_scopes`` (pulse.importers.consent.flags_from_scopes); pending and anything else -> no flags.
    The whole payload stays in properties.data."""
    kind = str(data.get("event_type") or "").lower()
    if kind in CONSENT_ALL:
        return {"consent_analytics": CONSENT_ALL[kind], "consent_personalization": CONSENT_ALL[kind]}
    scopes = data.get("consent_scopes")
    if kind in CONSENT_SELECTED and isinstance(scopes, list):
        return flags_from_scopes(scopes)
    return {}


def _event_fields(row: _Row) -> dict[str, Any]:
    """The event-specific fields (event_type and what goes with it); ``properties.x`` keys are nested later."""
    event = (row.get("event") or "").lower()
    name = row.get("event_name") or event
    unstruct = row.unstruct()
    key, data = unstruct if unstruct else ("", {})
    if event == "page_view" or name == "page_view":
        return {
            "event_type": "page_view",
            "doc_height_px": integer_field(row.get("doc_height"), "doc_height"),
            "viewport_height_px": integer_field(row.get("br_viewheight"), "br_viewheight"),
        }
    if event == "page_ping" or name == "page_ping":
        y_max = integer_field(row.get("pp_yoffset_max"), "pp_yoffset_max")
        return {
            "event_type": "page_ping",
            # Snowplow clamps a negative offset (overscroll) to 0 before using it; so does the contract.
            "scroll_depth_px": max(y_max, 0) if y_max is not None else None,
            "doc_height_px": integer_field(row.get("doc_height"), "doc_height"),
            "viewport_height_px": integer_field(row.get("br_viewheight"), "br_viewheight"),
        }
    if name == ECOMMERCE_ACTION_EVENT or key.endswith(ECOMMERCE_ACTION_EVENT + "_1"):
        return _ecommerce(row, data)
    if name == "link_click" or key == LINK_CLICK:
        return {
            "event_type": "click",
            "element": text_or_none(data.get("targetUrl")),
            "properties.element_id": text_or_none(data.get("elementId")),
            "properties.element_target": text_or_none(data.get("elementTarget")),
        }
    if event == "transaction" or name == "transaction":
        order_id = row.get("tr_orderid")
        return {
            "event_type": "purchase",
            "event_id": f"snowplow-transaction-{order_id}" if order_id else None,
            "order_id": order_id,
            "revenue": number_field(row.get("tr_total"), "tr_total"),
            "properties.currency": row.get("tr_currency"),
            "properties.shipping": number_field(row.get("tr_shipping"), "tr_shipping"),
            "properties.tax": number_field(row.get("tr_tax"), "tr_tax"),
        }
    if event == "transaction_item" or name == "transaction_item":
        return {
            "event_type": "custom.transaction_item",
            "order_id": row.get("ti_orderid"),
            "product_id": row.get("ti_sku"),
            "category": row.get("ti_category"),
            "price": number_field(row.get("ti_price"), "ti_price"),
            "quantity": integer_field(row.get("ti_quantity"), "ti_quantity"),
        }
    if key in (LEGACY_ADD_TO_CART, LEGACY_REMOVE_FROM_CART):
        return {
            "event_type": "add_to_cart" if key == LEGACY_ADD_TO_CART else "remove_from_cart",
            "product_id": text_or_none(data.get("sku")),
            "category": text_or_none(data.get("category")),
            "price": number_field(data.get("unitPrice"), "unitPrice"),
            "quantity": integer_field(data.get("quantity"), "quantity"),
            "properties.currency": text_or_none(data.get("currency")),
        }
    if name == "consent_preferences" or key == CONSENT_PREFERENCES:
        return {
            "event_type": custom_type(name or "consent_preferences"),
            "properties.data": data or None,
            **_consent(data),
        }
    if name == "consent_withdrawn" or key == CONSENT_WITHDRAWN:
        withdrawn_all = data.get("all") is True
        return {
            "event_type": custom_type(name or "consent_withdrawn"),
            "properties.data": data or None,
            **({"consent_analytics": False, "consent_personalization": False} if withdrawn_all else {}),
        }
    if event == "struct":
        return {
            "event_type": custom_type(row.get("se_action"), fallback="struct"),
            "properties.se_category": row.get("se_category"),
            "properties.se_label": row.get("se_label"),
            "properties.se_property": row.get("se_property"),
            "properties.se_value": number_field(row.get("se_value"), "se_value"),
        }
    return {"event_type": custom_type(name), "properties.data": data or None}


def map_row(row: _Row) -> tuple[dict[str, Any], datetime]:
    """One Snowplow event -> (contract event, event_time)."""
    event_id = row.get("event_id")
    if event_id is None:
        raise RowError("missing event_id")
    when = None
    for column in EVENT_TIME_COLUMNS:
        when = _timestamp(row, column)
        if when is not None:
            break
    if when is None:
        raise RowError("no timestamp: dvce_created_tstamp, derived_tstamp and collector_tstamp are all empty")
    received = _timestamp(row, "collector_tstamp")
    client_session = row.context(CLIENT_SESSION)
    anonymous_id = row.get("domain_userid") or text_or_none(client_session.get("userId"))
    user_id = row.get("user_id")
    if anonymous_id is None and user_id is None:
        raise RowError("missing identity: no user_id, domain_userid or client_session userId")
    page_view_id = text_or_none(row.context(WEB_PAGE).get("id")) or text_or_none(row.context(MOBILE_SCREEN).get("id"))
    fields: dict[str, Any] = {
        "event_id": event_id,
        "event_type": None,
        "event_time": format_timestamp(when),
        "received_at": format_timestamp(received) if received else None,
        "user_id": user_id,
        "anonymous_id": anonymous_id,
        "session_id": row.get("domain_sessionid") or text_or_none(client_session.get("sessionId")),
        "page_view_id": page_view_id,
        "page_url": row.get("page_url"),
        "page_title": row.get("page_title"),
        "referrer": row.get("page_referrer"),
        "utm_source": row.get("mkt_source"),
        "utm_medium": row.get("mkt_medium"),
        "utm_campaign": row.get("mkt_campaign"),
    }
    properties: dict[str, Any] = {"app_id": row.get("app_id"), "platform": row.get("platform")}
    for name, value in _event_fields(row).items():
        if name.startswith("properties."):
            properties[name.removeprefix("properties.")] = value
        elif value is not None or name not in fields:
            fields[name] = value
    if fields["event_id"] != event_id:
        properties["snowplow_event_id"] = event_id
    fields["properties"] = {k: v for k, v in properties.items() if v is not None}
    return fields, when


# ---------------------------------------------------------------------------------------------- reading


def _reader_factory(delimiter: str) -> Callable[[Iterator[str]], Any]:
    if delimiter == "\t":
        return lambda lines: csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
    return lambda lines: csv.reader(lines)


def _sniff_delimiter(source: Source) -> str:
    with source.open_binary() as fh:
        try:
            first = fh.readline(1 << 20)
        except (OSError, EOFError) as exc:
            raise SourceError(f"cannot import {source.path}: {exc}") from exc
    return "\t" if b"\t" in first else ","


def convert(source: Source) -> Iterator[RowResult]:
    raise_csv_limit()
    delimiter = _sniff_delimiter(source)
    kind = "TSV" if delimiter == "\t" else "CSV"
    with source.text_stream() as stream:
        records = csv_records(stream, _reader_factory(delimiter))
        try:
            first = next(records, None)
            if first is None:
                return
            _, cells, _ = first
            names = [c.strip().lstrip("\ufeff") for c in cells]
            pending: list[tuple[int, list[str], str]] = []
            if all(c in names for c in REQUIRED_COLUMNS):
                header = names
            elif delimiter == "\t" and len(cells) == len(CANONICAL_FIELDS):
                header = list(CANONICAL_FIELDS)  # the enriched stream: no header, the documented order
                pending.append(first)
            else:
                missing = [c for c in REQUIRED_COLUMNS if c not in names]
                raise SourceError(
                    f"cannot import {source.path}: not Snowplow enriched events ({kind} header lacks "
                    f"{', '.join(missing)}; a TSV without a header must have {len(CANONICAL_FIELDS)} fields)"
                )
            layout = _Layout(header)
            yield from csv_rows(
                _chain(pending, records), header, lambda values, _: map_row(_Row(layout, values)), kind=kind
            )
        except (OSError, EOFError, csv.Error) as exc:
            raise SourceError(f"cannot import {source.path}: {exc}") from exc
        source.finish()


def _chain(
    first: list[tuple[int, list[str], str]], rest: Iterator[tuple[int, list[str], str]]
) -> Iterator[tuple[int, list[str], str]]:
    yield from first
    yield from rest
