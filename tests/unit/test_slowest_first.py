"""The slow-files list that orders `make test` (tests/conftest.py) names files that exist."""

from pathlib import Path

from conftest import SLOWEST_FIRST

REPO = Path(__file__).resolve().parents[2]


def test_every_file_on_the_slowest_first_list_exists_once() -> None:
    assert [p for p in SLOWEST_FIRST if not (REPO / p).is_file()] == []
    assert len(set(SLOWEST_FIRST)) == len(SLOWEST_FIRST)
