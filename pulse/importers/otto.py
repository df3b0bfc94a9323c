"""OTTO recsys sessions (``{"session": 12, "events": [{"aid": 1, "ts": 1659304800025, "type": "clicks"}]}``).

One source line is one session; each of its events becomes one contract event: ``clicks`` ->
``product_view``, ``carts`` -> ``add_to_cart``, ``orders`` -> ``purchase``. The session is both the
anonymous id and the session id (``otto-<session>``), ``aid`` the product id, and the event id
``otto-<session>-<index in the session>`` is stable across re-imports. ``ts`` is epoch milliseconds (the
published dataset); values below 10^11 are taken as seconds (the Kaggle competition's copy).
An event that cannot be mapped is rejected on its own (``events[<i>]: <reason>``); the session's other
events are kept.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pulse.importers.common import (
    RowError,
    RowResult,
    Source,
    format_timestamp,
    from_epoch,
    json_rows,
    make_event,
)

TYPES = {"clicks": "product_view", "carts": "add_to_cart", "orders": "purchase"}
SECONDS_BELOW = 10**11  # epoch ms have 13 digits today; epoch seconds 10


def _event(session: str, index: int, item: Any) -> tuple[dict[str, Any], Any]:
    if not isinstance(item, dict):
        raise RowError("not a JSON object")
    kind = item.get("type")
    if kind not in TYPES:
        raise RowError(f"unknown type: {str(kind)[:40]}")
    aid, ts = item.get("aid"), item.get("ts")
    if not isinstance(aid, int | str) or isinstance(aid, bool) or aid == "":
        raise RowError("missing aid")
    if not isinstance(ts, int) or isinstance(ts, bool) or ts < 0:
        raise RowError(f"ts is not an epoch timestamp: {str(ts)[:40]}")
    when = from_epoch(ts, "s" if ts < SECONDS_BELOW else "ms")
    fields = {
        "event_id": f"{session}-{index}",
        "event_type": TYPES[kind],
        "event_time": format_timestamp(when),
        "anonymous_id": session,
        "session_id": session,
        "product_id": str(aid),
    }
    return fields, when


def _session_result(number: int, _text: str, obj: dict) -> RowResult:
    session_value = obj.get("session")
    if isinstance(session_value, bool) or not isinstance(session_value, int | str) or session_value == "":
        raise RowError("missing session")
    events = obj.get("events")
    if not isinstance(events, list):
        raise RowError("events is not a list")
    session = f"otto-{session_value}"
    result = RowResult(line=number)
    for index, item in enumerate(events):
        try:
            fields, when = _event(session, index, item)
            event = make_event(fields, when)
        except RowError as exc:
            result.rejects.append((json.dumps(item, ensure_ascii=False)[:65536], f"events[{index}]: {exc}"))
            continue
        result.events.append(event)
    return result


def convert(source: Source) -> Iterator[RowResult]:
    return json_rows(source, _session_result)
