"""The progress bar of pulse's long commands (``pulse demo``, ``pulse import``): tqdm's, on stderr.

Beside the bar it shows running counts (``12,345 events``), formatted only when tqdm redraws, so a caller may
update them for every row it reads.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

__all__ = ["ProgressBar"]


class ProgressBar(tqdm):
    """``tqdm(desc=label, total=total)`` on stderr, redrawn at most every 0.2 s, nothing at all when not
    ``enabled``; ``counts`` (name -> number) follow the bar. Extra keyword arguments go to tqdm (``unit``,
    ``unit_scale``)."""

    def __init__(self, label: str, total: int, enabled: bool, **kwargs: Any) -> None:
        self.counts: dict[str, int] = {}
        kwargs.setdefault("mininterval", 0.2)
        super().__init__(total=total, desc=label, disable=not enabled, file=sys.stderr, **kwargs)

    def advance_to(self, done: int, **counts: int) -> None:
        """Set the position to ``done`` (of ``total``) and the counts."""
        self.counts.update(counts)
        if done > self.n:
            self.update(done - self.n)

    @property
    def format_dict(self) -> dict[str, Any]:
        shown = super().format_dict
        if self.counts:
            shown["postfix"] = "  ".join(f"{value:,} {name}" for name, value in self.counts.items())
        return shown
