"""Landing files for the ingestion bookkeeping tests (watermark, changed days)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path


def land_page_views(events: Path, day: date, name: str = "part.jsonl", n: int = 1) -> Path:
    """Write ``n`` page views of one anonymous visitor at 10:00 on ``day`` to ``events/<day>/<name>``."""
    folder = events / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps(
            {"event_id": f"{day}-{name}-{i}", "event_type": "page_view", "event_time": f"{day}T10:00:00Z"}
            | {"anonymous_id": "a1"}
        )
        for i in range(n)
    ]
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path
