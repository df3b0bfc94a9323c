"""pulse.core.progress.ProgressBar: tqdm on stderr with running counts; silent when disabled."""

from __future__ import annotations

import pytest

from pulse.core.progress import ProgressBar


def test_the_bar_shows_its_label_position_and_counts(capsys: pytest.CaptureFixture[str]) -> None:
    bar = ProgressBar("pulse demo", 4, True, unit="day", mininterval=0)
    bar.advance_to(1, events=1200)
    bar.advance_to(4, events=34567)
    bar.advance_to(3, events=40000)  # never backwards; the counts still move
    bar.close()
    err = capsys.readouterr().err
    assert "pulse demo" in err and "4/4" in err and "34,567 events" in err
    assert bar.n == 4 and bar.counts == {"events": 40000}


def test_bytes_are_shown_in_megabytes(capsys: pytest.CaptureFixture[str]) -> None:
    bar = ProgressBar("pulse import x.csv", 3_000_000, True, unit="B", unit_scale=True, unit_divisor=1000)
    bar.advance_to(3_000_000, rows=10, events=12)
    bar.close()
    err = capsys.readouterr().err
    assert "3.00M/3.00M" in err and "B/s" in err and "10 rows  12 events" in err


def test_a_disabled_bar_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    bar = ProgressBar("pulse demo", 4, False)
    bar.advance_to(4, events=5)
    bar.close()
    assert capsys.readouterr().err == ""
