"""`pulse import`: source files of other trackers and exports -> daily contract files in the landing zone.

>>> summary = import_files("otto", [Path("train.jsonl")], landing=Path(".data/landing"))  # doctest: +SKIP
>>> summary.rows_read, summary.events_written, summary.rejected  # doctest: +SKIP

Formats: ``jsonl``, ``csv``, ``parquet`` (already contract-shaped), ``snowplow``, ``segment``, ``otto`` and
``mapped`` (any CSV / Parquet with a YAML mapping). Each source file becomes, under
``<landing>/events/<YYYY-MM-DD>/``, one ``import-<format>-<sha256 of the file, 12 hex>.jsonl.gz`` per UTC
day of ``event_time``, and its unmappable rows go to ``<landing>/rejected/<same name>.jsonl``; what the import
did (rows, files, the consent declared) to ``<landing>/imports/<same name>.json``. Importing the same bytes
again rewrites the same files. Consent: ``declaration=ConsentDeclaration.parse("personalization", "<basis>")``
sets the declared flags on the events that lack them (pulse/importers/consent.py); by default nothing is
declared. docs/importers.md has every format's field mapping.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pulse.importers.common import (
    PART_BYTES,
    PART_EVENTS,
    FileResult,
    ImportSummary,
    MappingError,
    RowResult,
    Source,
    SourceError,
    import_file,
    write_import_record,
)
from pulse.importers.consent import CONSENT_CHOICES, ConsentDeclaration, ConsentError

if TYPE_CHECKING:
    from pulse.importers.mapped import Mapping

__all__ = [
    "CONSENT_CHOICES",
    "FORMATS",
    "ConsentDeclaration",
    "ConsentError",
    "FileResult",
    "ImportSummary",
    "MappingError",
    "SourceError",
    "import_files",
    "part_limits",
]

FORMATS: tuple[str, ...] = ("jsonl", "csv", "parquet", "snowplow", "segment", "otto", "mapped")

Converter = Callable[[Source], Iterator[RowResult]]


def converter_for(fmt: str, mapping: Mapping | None = None) -> Converter:
    """The row converter of a format (its module is imported only now: the CLI stays quick to start)."""
    if fmt == "jsonl":
        from pulse.importers.contract_files import convert_jsonl

        return convert_jsonl
    if fmt == "csv":
        from pulse.importers.contract_files import convert_csv

        return convert_csv
    if fmt == "parquet":
        from pulse.importers.contract_files import convert_parquet

        return convert_parquet
    if fmt == "snowplow":
        from pulse.importers import snowplow

        return snowplow.convert
    if fmt == "segment":
        from pulse.importers import segment

        return segment.convert
    if fmt == "otto":
        from pulse.importers import otto

        return otto.convert
    if fmt == "mapped":
        if mapping is None:
            raise MappingError("format mapped needs a mapping (--mapping FILE or a shipped name)")
        from pulse.importers.mapped import make_converter

        return make_converter(mapping)
    raise ValueError(f"unknown import format {fmt!r} (formats: {', '.join(FORMATS)})")


def part_limits(max_file_lines: int, max_file_bytes: int) -> tuple[int, int]:
    """The most events and bytes of one landing file an import writes: the import's own part sizes, or
    ingestion's per-file limits (settings max_file_lines, max_file_bytes) where those are lower."""
    return min(PART_EVENTS, max_file_lines), min(PART_BYTES, max_file_bytes)


def import_files(
    fmt: str,
    paths: Sequence[Path | str],
    landing: Path,
    mapping: str | Path | Mapping | None = None,
    progress: bool = False,
    declaration: ConsentDeclaration | None = None,
    part_limits: tuple[int, int] = (PART_EVENTS, PART_BYTES),
) -> ImportSummary:
    """Import each of ``paths`` (see the module docstring). Raises :class:`SourceError` for a file that
    cannot be read at all (the files imported before it stay imported; nothing of the failing one is
    written) and :class:`MappingError` for an invalid mapping.

    ``declaration``: the consent declared for these events (default: none; see pulse/importers/consent.py).
    ``part_limits``: the most events and uncompressed bytes of one landing file (:func:`part_limits`).
    Each file's record of what was imported, with the declaration, goes to ``<landing>/imports/<name>.json``."""
    started = time.perf_counter()
    declaration = declaration or ConsentDeclaration()
    if fmt not in FORMATS:
        raise ValueError(f"unknown import format {fmt!r} (formats: {', '.join(FORMATS)})")
    if mapping is not None and fmt != "mapped":
        raise MappingError(f"a mapping applies to --format mapped only, not {fmt}")
    if fmt == "mapped" and mapping is not None:
        from pulse.importers.mapped import Mapping, load_mapping

        if not isinstance(mapping, Mapping):
            mapping = load_mapping(mapping)
    convert = converter_for(fmt, mapping)  # type: ignore[arg-type]
    summary = ImportSummary(format=fmt, declaration=declaration)
    sources = [Source(Path(p)) for p in paths]  # every file is checked to exist before anything is written
    mapping_path = getattr(mapping, "path", None)
    for source in sources:
        result: FileResult = import_file(
            fmt,
            source,
            convert,
            Path(landing),
            progress=progress,
            first_rejects=summary.first_rejects,
            declaration=declaration,
            part_events=part_limits[0],
            part_bytes=part_limits[1],
        )
        result.record_file = write_import_record(Path(landing), fmt, result, declaration, mapping=mapping_path)
        summary.files.append(result)
    summary.seconds = time.perf_counter() - started
    return summary
