"""One event of a collected batch: checked against the event contract, then enriched by the server.

The checks are the ones ingestion applies, derived from the same declaration (:mod:`pulse.core.contract`:
:func:`~pulse.core.contract.event_violations` is the twin of ingestion's SQL), done per event in Python so that a
client learns at once which event was refused and why, in the words ingestion would use. An event the collector
accepts is one ingestion accepts: the collector's future limit is its clock plus the tolerance, never later than
ingestion's (the end of the landing day plus the tolerance), and its size limit is at most ingestion's.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from pulse.core.contract import (
    FIELDS,
    NOT_AN_EVENT_OBJECT,
    REASON_SEPARATOR,
    EventLimits,
    event_violations,
    json_type_name,
)

# Fields only the server sets: whatever a client sends in them is overwritten (or removed).
SERVER_FIELDS = tuple(f.name for f in FIELDS if f.set_by == "collector")
# Fields only `pulse import` sets: the consent basis a team declares for imported history. A browser's flags are
# the visitor's own choice, never a declaration; whatever a client sends here is removed.
IMPORT_ONLY_FIELDS = tuple(f.name for f in FIELDS if f.set_by == "import")
NOT_FROM_CLIENTS = SERVER_FIELDS + IMPORT_ONLY_FIELDS
_CHECKED = tuple(f for f in FIELDS if f.name not in NOT_FROM_CLIENTS)

# Crawlers, monitors, scripted clients and headless browsers (their user agents say so).
_BOT = re.compile(
    r"bot\b|bot/|crawl|spider|slurp|mediapartners|facebookexternalhit|embedly|quora link preview|"
    r"headless|phantomjs|lighthouse|pingdom|uptime|monitor|curl/|wget/|python-requests|python-urllib|"
    r"aiohttp|httpx|go-http-client|java/|okhttp|libwww|scrapy|node-fetch|axios/",
    re.IGNORECASE,
)


def is_bot(user_agent: str | None) -> bool:
    """True for an empty user agent or one that names a crawler, monitor, HTTP library or headless browser."""
    return not user_agent or _BOT.search(user_agent) is not None


def anonymize_ip(address: str | None, mode: str) -> str | None:
    """``full``: as is; ``truncate``: IPv4 /24, IPv6 /48 (the host part zeroed); ``drop``: None."""
    if not address or mode == "drop":
        return None
    if mode == "full":
        return address
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)


def contract_violation(event: object, now: datetime, limits: EventLimits | None = None) -> str | None:
    """Why ``event`` breaks the contract, every reason in the contract's order joined by "; " as ingestion
    words them (:func:`pulse.core.contract.event_violations`), or None. ``now`` is timezone-aware: an event may be at
    most ``limits.future_tolerance`` after it. Fields outside the contract are kept as they are (ingestion
    ignores them); the server's own fields and ``consent_basis`` are not checked (:func:`enrich` replaces or
    removes them)."""
    if not isinstance(event, dict):
        return NOT_AN_EVENT_OBJECT.text(json_type=json_type_name(event))
    limits = limits or EventLimits()
    ceiling = now.astimezone(UTC).replace(tzinfo=None) + limits.future_tolerance
    reasons = event_violations(event, floor=limits.earliest_event_time, ceiling=ceiling, fields=_CHECKED)
    return REASON_SEPARATOR.join(reasons) if reasons else None


_CONTAINERS = (dict, list)


def nesting_violation(event: object, max_depth: int) -> str | None:
    """Why ``event`` nests objects or arrays too deeply (the event itself is level 1, its ``properties`` level 2),
    or None. Iterative, so no depth can exhaust Python's recursion; a flat event costs one pass over its values."""
    if not isinstance(event, _CONTAINERS):
        return None
    top = event.values() if isinstance(event, dict) else event
    stack = [(child, 2) for child in top if isinstance(child, _CONTAINERS)]
    while stack:
        value, depth = stack.pop()
        if depth > max_depth:
            return f"nested deeper than {max_depth} levels of objects and arrays"
        for child in value.values() if isinstance(value, dict) else value:
            if isinstance(child, _CONTAINERS):
                stack.append((child, depth + 1))
    return None


@dataclass(frozen=True)
class RequestContext:
    """What the server knows of the request that carried a batch."""

    received_at: str
    user_agent: str | None
    ip_address: str | None
    is_bot: bool
    network_user_id: str | None


def has_analytics_consent(event: dict) -> bool:
    """Only an explicit ``consent_analytics: true`` counts (absent means not given)."""
    return event.get("consent_analytics") in (True, "true")


def enrich(event: dict, context: RequestContext) -> dict:
    """The event with the server's fields set: ``received_at``, ``user_agent``, ``is_bot`` always;
    ``ip_address`` and ``network_user_id`` only with analytics consent. A client's ``consent_basis`` is removed
    (:data:`IMPORT_ONLY_FIELDS`)."""
    enriched = {k: v for k, v in event.items() if k not in NOT_FROM_CLIENTS}
    enriched["received_at"] = context.received_at
    enriched["user_agent"] = context.user_agent
    enriched["is_bot"] = context.is_bot
    if has_analytics_consent(event):
        if context.ip_address is not None:
            enriched["ip_address"] = context.ip_address
        if context.network_user_id is not None:
            enriched["network_user_id"] = context.network_user_id
    return enriched
