"""Owner-only files: the umask pulse sets (file_access) and the mode of PULSE_HOME (pulse/core/file_access.py).
The end-to-end check of every file real runs write is tests/integration/test_no_leaks.py."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pulse.cli import commands as cli
from pulse.core.file_access import UMASKS, apply_umask, tighten_home
from pulse.core.settings import BY_NAME

PULSE = Path(sys.executable).parent / "pulse"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _loose(root: Path) -> list[str]:
    return [
        f"{stat.filemode(p.lstat().st_mode)} {p}"
        for p in [root, *root.rglob("*")]
        if not p.is_symlink() and _mode(p) & 0o077
    ]


def test_the_setting_offers_exactly_the_known_umasks() -> None:
    assert BY_NAME["file_access"].choices == tuple(UMASKS) == ("owner", "group-read", "group-write")
    assert BY_NAME["file_access"].default == "owner"


@pytest.mark.parametrize(
    ("access", "file_mode", "dir_mode"),
    [("owner", 0o600, 0o700), ("group-read", 0o640, 0o750), ("group-write", 0o660, 0o770)],
)
def test_the_umask_gives_each_access_its_modes(tmp_path: Path, access: str, file_mode: int, dir_mode: int) -> None:
    apply_umask(access)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("x")
    assert (_mode(tmp_path / "d"), _mode(tmp_path / "d" / "f")) == (dir_mode, file_mode)


def test_a_wide_home_is_tightened_and_pulse_says_so(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    os.chmod(home, 0o755)
    notice = tighten_home(home, "owner")
    assert _mode(home) == 0o700
    assert notice == f"PULSE_HOME {home} was drwxr-xr-x: now drwx------ (file_access=owner; docs/deployment.md)"
    assert tighten_home(home, "owner") is None  # nothing more to do
    assert tighten_home(tmp_path / "absent", "owner") is None


def test_the_group_keeps_what_file_access_grants_it_and_the_setgid_bit(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    os.chmod(home, 0o2777)  # setgid: new files take the directory's group (how a team shares a home)
    assert tighten_home(home, "group-read") is not None
    assert _mode(home) == 0o2750
    os.chmod(home, 0o750)
    assert tighten_home(home, "group-read") is None and _mode(home) == 0o750


def test_a_shared_directory_is_left_alone_with_a_warning(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # like /tmp
    notice = tighten_home(shared, "owner")
    assert _mode(shared) == 0o1777
    assert notice is not None and notice.startswith("warning:") and "sticky bit" in notice


def test_every_command_sets_the_umask_and_tightens_the_home(tmp_path: Path, monkeypatch, capsys) -> None:
    home = tmp_path / "home"
    home.mkdir()
    os.chmod(home, 0o755)
    monkeypatch.setenv("PULSE_HOME", str(home))
    os.umask(0)
    assert cli.main(["settings"]) == 0
    assert _mode(home) == 0o700
    assert os.umask(0o077) == 0o077
    assert "was drwxr-xr-x: now drwx------" in capsys.readouterr().err

    (home / "settings.toml").write_text('file_access = "group-read"\n')
    os.chmod(home, 0o777)
    assert cli.main(["settings"]) == 0
    assert os.umask(0o077) == 0o027 and _mode(home) == 0o750
    assert "file_access" in capsys.readouterr().out

    monkeypatch.setenv("PULSE_FILE_ACCESS", "everyone")
    assert cli.main(["settings"]) == 2
    assert "PULSE_FILE_ACCESS='everyone'" in capsys.readouterr().err


def test_a_home_made_by_the_cli_is_owner_only_whatever_the_callers_umask(tmp_path: Path) -> None:
    """`pulse demo` in a process started with the umask 000: the home, the landing zone, the demo's files and
    Dagster's instance file are owner-only all the same."""
    home = tmp_path / "new" / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_") and k != "DAGSTER_HOME"}
    proc = subprocess.run(
        [str(PULSE), "demo", "--users", "5", "--days", "1"],
        env=env | {"PULSE_HOME": str(home)},
        umask=0,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    files = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".jsonl") or p.name.endswith(".jsonl.gz") for p in files)
    assert (home / "dagster_home" / "dagster.yaml") in files
    assert _loose(home) == []
