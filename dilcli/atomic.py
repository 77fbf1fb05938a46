"""Write files so that a file under its final name is always complete."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

TEMP_PREFIX = ".dilcli-tmp-"


@contextlib.contextmanager
def atomic_write(path):
    """Open a temporary file beside ``path``; rename it into place on success.

    The temporary file lives in the same folder, so ``os.replace`` is atomic: a reader
    (or a run killed at any moment) sees the old file, the new one, or none, never a
    partial one. If ``path`` is a symbolic link, the link itself is replaced, never the
    file it points to. On error the temporary file is removed.
    """
    path = Path(path)
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, 0o666 & ~_UMASK)
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


def remove_stale_temporaries(folder):
    """Delete temporaries left by a killed run (they never carry a final name)."""
    removed = 0
    for temp in Path(folder).rglob(f"{TEMP_PREFIX}*.part"):
        with contextlib.suppress(OSError):
            temp.unlink()
            removed += 1
    return removed


def _read_umask():
    # os.umask can only be read by setting it; do it once, before any threads start.
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()
