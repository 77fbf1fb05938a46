"""Write files so that a file under its final name is always complete."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

TEMP_PREFIX = ".dilcli-tmp-"
# Temporaries of other machines (a shared folder under a Dask cluster) count as
# abandoned only after this long: their writers cannot be asked whether they live.
FOREIGN_TEMP_SECONDS = 24 * 3600


class RunEnded(Exception):
    """The run a worker writes for has ended: its outputs must not appear any more."""


_guard = None


@contextlib.contextmanager
def commit_guard(check):
    """While inside, :func:`atomic_write` renames a file into place only if ``check()``.

    Batch workers pass "the run that sent this task still lives"; ``None`` checks
    nothing. One task at a time runs in a worker process, so one guard serves it.
    """
    global _guard
    previous, _guard = _guard, check
    try:
        yield
    finally:
        _guard = previous


@contextlib.contextmanager
def atomic_write(path):
    """Open a temporary file beside ``path``; rename it into place on success.

    The temporary file lives in the same folder, so ``os.replace`` is atomic: a reader
    (or a run killed at any moment) sees the old file, the new one, or none, never a
    partial one. If ``path`` is a symbolic link, the link itself is replaced, never the
    file it points to. On error the temporary file is removed.
    """
    path = Path(path)
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=_owner_prefix(), suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, 0o666 & ~_UMASK)
        if _guard is not None and not _guard():
            raise RunEnded(f"not written: the run that asked for {path.name} has ended")
        try:
            os.replace(temp_name, path)
        except OSError as error:  # name the file the user knows, not the temporary
            raise OSError(error.errno, error.strerror, str(path)) from None
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        if isinstance(error, OSError) and error.strerror and not error.filename:
            # A full disk met while writing: name the output, not nothing.
            raise OSError(error.errno, error.strerror, str(path)) from None
        raise


def remove_stale_temporaries(folder):
    """Delete temporaries left by killed runs (they never carry a final name).

    A temporary names its writer (host and process id), so those of a run still
    writing into the same folder are left alone.
    """
    removed = 0
    host = _host()
    for temp in Path(folder).rglob(f"{TEMP_PREFIX}*.part"):
        owner_host, _, pid = temp.name[len(TEMP_PREFIX) :].partition("~")[0].rpartition("-")
        with contextlib.suppress(OSError, ValueError):
            if owner_host == host:
                if _alive(int(pid)):
                    continue
            elif time.time() - temp.stat().st_mtime < FOREIGN_TEMP_SECONDS:
                continue
            if temp.is_dir() and not temp.is_symlink():  # a Zarr store being written
                shutil.rmtree(temp)
            else:
                temp.unlink()
            removed += 1
    return removed


def _host():
    return "".join(c if c.isalnum() else "_" for c in socket.gethostname()) or "host"


def _owner_prefix():
    return f"{TEMP_PREFIX}{_host()}-{os.getpid()}~"


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    try:  # a killed process that nobody has reaped yet (a zombie) is not writing
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _read_umask():
    # Linux reports it without changing it; elsewhere os.umask can only read it by
    # setting it, which another thread creating a file at that moment would see.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()
