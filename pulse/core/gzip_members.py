"""How pulse writes gzip: a file is a series of gzip members, each compressed on its own (readers such as
``gzip.open`` and DuckDB see one stream), so a writer can append to a file, or compress its blocks in threads,
without holding the whole file. Same bytes in, same bytes out: zlib's gzip header has mtime 0 and no name.

Used by the demo generator (pulse/demo/generator.py) and the importers (pulse/importers/common.py) for the landing
zone's ``.jsonl.gz`` day files.
"""

from __future__ import annotations

import zlib

__all__ = ["gzip_member"]


def gzip_member(data: bytes | memoryview, level: int) -> bytes:
    """``data`` as one complete gzip member, compressed at ``level`` (1 fastest .. 9 smallest)."""
    comp = zlib.compressobj(level, zlib.DEFLATED, 31)
    return comp.compress(data) + comp.flush()
