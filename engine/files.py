"""Writing files so that a reader only ever sees a whole old or a whole new version,
and so that no other local user can read them.

Patient notes end up in drafts, the history store and exports, so every file the
app writes is private to its owner (0600) and every folder it makes is 0700,
whatever the umask.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
SHARED_BITS = 0o077  # what group and other users could do


def private_dir(path: Path, *, tighten: bool = False) -> Path:
    """Make `path` (and any missing parents) as folders only the owner can enter.

    A folder that already exists is left as it is unless `tighten` is set: the
    app's own folders are tightened, a folder the user names for an export is not.
    """
    missing = [folder for folder in (path, *path.parents) if not folder.exists()]
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    for folder in missing:
        make_private(folder)  # mkdir's mode is filtered by the umask; this is not
    if tighten:
        make_private(path)
    return path


def make_private(path: Path) -> None:
    """Take group and other permissions off a file or folder this user owns.

    Only permissions are taken away: a folder the user made read-only stays read-only.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    if info.st_uid != os.getuid():
        return  # not ours to change; doctor reports it
    mode = stat.S_IMODE(info.st_mode)
    if mode & SHARED_BITS:
        os.chmod(path, mode & ~SHARED_BITS)


def create_private_file(path: Path) -> None:
    """Create `path` empty as 0600 if it does not exist, so nothing is ever written to it readable."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, PRIVATE_FILE_MODE)
    os.close(fd)
    make_private(path)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` so that `path` is always either old or new, never torn.

    The text goes to a temporary file (0600) in the same folder, is flushed and
    synced, then `os.replace`d over the old file (a rename within one folder is
    atomic).
    """
    private_dir(path.parent)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
