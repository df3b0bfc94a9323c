"""Who may read what pulse writes: the process umask and the mode of PULSE_HOME (setting ``file_access``).

PULSE_HOME holds personal data: the landing zone and the collector's dead letters (user ids, user agents,
truncated IPs), the warehouse, the MLflow store, the published profiles. By default every file pulse and the
processes it starts (dbt, DuckDB, Dagster and its daemon and run workers, the MLflow server, the collector)
create is owner-only: ``pulse`` sets the umask 0o077 before it does anything (:func:`apply_umask`), so files are
created 0600 and directories 0700, and child processes inherit it. ``file_access = "group-read"`` (umask 0o027:
0640 / 0750) or ``"group-write"`` (0o007: 0660 / 0770) lets a team's group in (docs/deployment.md).

An existing PULSE_HOME whose mode lets in more than ``file_access`` allows (a home made by an older pulse, or by
hand with a wide umask) is tightened when pulse starts (:func:`tighten_home`), and pulse says so: the files
inside it keep their modes but nobody else can reach them through a 0700 directory. A home pulse may not chmod
(another owner) or a shared directory (the sticky bit, like /tmp) is left alone, with a warning.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

# file_access -> the umask pulse's processes run with
UMASKS = {"owner": 0o077, "group-read": 0o027, "group-write": 0o007}


def umask_for(access: str) -> int:
    try:
        return UMASKS[access]
    except KeyError:
        raise ValueError(f"file_access {access!r}: expected one of {', '.join(UMASKS)}") from None


def apply_umask(access: str) -> int:
    """Set this process's umask for ``access`` (inherited by every child process); returns the previous one."""
    return os.umask(umask_for(access))


def tighten_home(home: Path, access: str) -> str | None:
    """Take from an existing ``home`` the permission bits ``access`` does not allow. Returns what to tell the
    user (it was tightened, or could not be), or None when there was nothing to do (absent, already tight)."""
    mask = umask_for(access)
    try:
        st = home.stat()
    except FileNotFoundError:
        return None
    if not stat.S_ISDIR(st.st_mode):
        return None
    mode = stat.S_IMODE(st.st_mode)
    if not mode & mask:
        return None
    wanted = mode & ~mask
    was, now = stat.filemode(st.st_mode), stat.filemode(stat.S_IFDIR | wanted)
    if mode & stat.S_ISVTX or st.st_uid != os.geteuid():
        why = "a shared directory (sticky bit)" if mode & stat.S_ISVTX else "owned by another user"
        return (
            f"warning: PULSE_HOME {home} is {was}: readable beyond file_access={access}, and {why}, so pulse "
            f"leaves its mode alone; give pulse a home of its own (docs/deployment.md)"
        )
    try:
        os.chmod(home, wanted)
    except OSError as exc:
        return f"warning: PULSE_HOME {home} is {was}: readable beyond file_access={access}; cannot tighten it: {exc}"
    return f"PULSE_HOME {home} was {was}: now {now} (file_access={access}; docs/deployment.md)"
