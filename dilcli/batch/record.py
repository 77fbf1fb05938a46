"""The record of finished work: what each task wrote, so reruns skip only what is done.

A rerun trusts an output only while it is still the file recorded (docs/design.md,
section 15); the latest line naming an output says which input and parameters made it.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

from dilcli.batch.tasks import BatchError, OutputConflict, Refused  # noqa: F401 - re-exported

RECORD_NAME = ".dilcli-record.jsonl"
# A record line is one task's outputs (a few hundred bytes each, a thousand frames at
# most): a longer line is not an entry, and is skipped without being held in memory.
MAX_RECORD_LINE = 1 << 24


def _record_name(output, out_dir):
    """How the record names an output: relative to the output folder (which may move)."""
    relative = os.path.relpath(output, out_dir)
    return Path(output).as_posix() if relative.startswith("..") else Path(relative).as_posix()


class Record:
    """What finished tasks wrote, one JSON line each, in the output folder.

    A line names a task's key and, for each of its outputs, the size, modification
    time and SHA-256 of the file it wrote (of every file of a folder it wrote: a Zarr
    store). A task counts as done only while every
    output on disk is still that file (same size and time, or same content), so a
    replaced, edited or deleted output is recomputed, never reported as done. The
    latest line naming an output says whose result it holds: a task with another key
    (other parameters, another input) must not silently replace it
    (:meth:`conflicts`). Lines are appended only after a task's outputs are in place;
    a torn last line (a kill mid-write) is ignored.

    Open it as a context manager: it holds an exclusive lock on the record for the
    whole run, so a second run into the same folder stops at once instead of mixing
    its files with this one's. The record is never followed through a link.
    """

    def __init__(self, out_dir, *, read_only=False):
        self.out_dir = Path(os.path.abspath(out_dir))
        self.path = self.out_dir / RECORD_NAME
        self.done = {}  # key -> {output name: identity}
        self.owner = {}  # output name -> (maker, identity, input)
        self.makers = set()  # the makers of finished tasks (input and parameters)
        self._fd = None
        # A dry run's: read what is there (nothing if there is no record), create and
        # change nothing, under a shared lock (a run writing meanwhile is refused).
        self.read_only = read_only

    def __enter__(self):
        if self.read_only and not os.path.lexists(self.path):
            return self
        try:
            # Not blocking: a FIFO planted under the record's name must not hang the run.
            flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NONBLOCK
            if self.read_only:
                flags = os.O_RDONLY | os.O_NONBLOCK
            self._fd = os.open(self.path, flags | getattr(os, "O_NOFOLLOW", 0), 0o666)
        except OSError as error:
            reason = error.strerror or str(error)
            if os.path.islink(self.path):
                reason = "it is a symbolic link, which dilcli does not follow (remove it)"
            raise Refused(f"cannot open the record {self.path}: {reason}") from None
        try:
            if not stat.S_ISREG(os.fstat(self._fd).st_mode):
                raise Refused(f"the record {self.path} is not a regular file (remove it)")
            os.set_blocking(self._fd, True)
            self._lock()
            self._load()
        except BaseException:
            os.close(self._fd)
            raise
        return self

    def __exit__(self, *exc):
        if self._fd is not None:
            os.close(self._fd)  # and with it the lock
        return False

    def _lock(self):
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            return
        try:
            mode = fcntl.LOCK_SH if self.read_only else fcntl.LOCK_EX
            fcntl.flock(self._fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Refused(
                f"another dilcli run is writing into {self.out_dir}; wait for it to end "
                "or choose another -o"
            ) from None
        except OSError:  # a file system without locks: go on unlocked
            pass

    def _load(self):
        """Read the record a line at a time; lines that are not entries are skipped."""
        last = b"\n"
        with open(self._fd, "rb", closefd=False) as handle:
            while line := handle.readline(MAX_RECORD_LINE + 1):
                last = line[-1:]
                if len(line) > MAX_RECORD_LINE:  # garbage: skip to its end
                    while (rest := handle.readline(MAX_RECORD_LINE)) and rest[-1:] != b"\n":
                        pass
                    last = rest[-1:] or last
                    continue
                self._read_entry(line)
        if last != b"\n" and not self.read_only:  # torn by a kill: end it, keep the rest
            self._append(b"\n")

    def _read_entry(self, line):
        try:
            entry = json.loads(line)
            key, outputs = entry["key"], entry.get("outputs")
            if not isinstance(outputs, dict):
                return  # a record of an older dilcli: proves nothing
            self.done[key] = outputs
            self.makers.add(entry.get("maker"))
            for name, identity in outputs.items():
                maker = identity.get("maker", entry.get("maker"))
                self.owner[name] = (maker, identity, entry.get("input", "?"))
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            return

    @property
    def keys(self):
        return set(self.done)

    def is_done(self, task):
        """Whether every output of ``task`` is on disk as the record says it wrote it."""
        return self.why_not_done(task) is None

    def why_not_done(self, task):
        """None if ``task`` is done (see :meth:`is_done`), else why it must run."""
        written = self.done.get(task.key)
        names = [_record_name(o, self.out_dir) for o in task.outputs]
        if written is None:
            if task.maker and task.maker in self.makers:
                return "the input changed since it was done"
            makers = zip(task.outputs, _makers(task))
            if any(self._owner_maker(output) == maker for output, maker in makers):
                return "new outputs; those already made are written again"
            return "not done before"
        if set(written) != set(names):
            return "its outputs are other files than those recorded"
        for output, name in zip(task.outputs, names):
            if not _unchanged(output, written[name]):
                return f"{output.name} changed or went missing since it was written"
        return None

    def _owner_maker(self, output):
        """The maker the record names for ``output``, or None."""
        return self.owner.get(_record_name(output, self.out_dir), (None,))[0]

    def conflicts(self, task):
        """``(output, input it holds the result of)`` for each output of ``task`` that
        holds, unchanged, what another maker (other parameters or input) wrote.

        The same input changed since (edited, replaced) is the same maker: its outputs
        are simply recomputed.
        """
        found = []
        for output, maker in zip(task.outputs, _makers(task)):
            owner = self.owner.get(_record_name(output, self.out_dir))
            if owner and owner[0] != maker and _unchanged(output, owner[1]):
                found.append((output, owner[2]))
        return found

    def add(self, task):
        """Record ``task``'s outputs as they are on disk now (it has just written them)."""
        outputs = {_record_name(o, self.out_dir): _identity(o) for o in task.outputs}
        entry = {"key": task.key, "maker": task.maker, "input": str(task.input.path)}
        for identity, maker in zip(outputs.values(), _makers(task)):
            identity["maker"] = maker
        entry["outputs"] = outputs
        self._append((json.dumps(entry) + "\n").encode())
        self.done[task.key] = outputs
        self.makers.add(task.maker)
        for name, identity in outputs.items():
            self.owner[name] = (identity["maker"], identity, str(task.input.path))

    def _append(self, data):
        try:
            written = os.write(self._fd, data)
            if written != len(data):
                raise OSError(28, "No space left on device")
        except OSError as error:
            raise BatchError(
                f"cannot write the record {self.path}: {error.strerror or error}"
            ) from None


def _makers(task):
    """What made each output of ``task``: its own maker, or the task's."""
    return task.makers or (task.maker,) * len(task.outputs)


def _identity(path):
    """What the record keeps of an output: its size, SHA-256, and where it sits.

    A folder (a Zarr store) is kept as its files: their total size, one SHA-256 of
    every file's name and content, and a digest of every file's place and times
    (:func:`_folder_files`); ``"folder": true`` says so.
    """
    info = os.lstat(path)
    if stat.S_ISDIR(info.st_mode):
        files = _folder_files(path)
        if files is None:
            raise OSError(21, "holds something other than files and folders", str(path))
        return {
            "size": sum(item.st_size for _, item in files),
            "sha256": _folder_sha256(path, files),
            "stat": _folder_stat(info, files),
            "folder": True,
        }
    info = os.stat(path)
    return {
        "size": info.st_size,
        "sha256": _sha256(path),
        "stat": [info.st_ino, info.st_mtime_ns, info.st_ctime_ns],
    }


def source_identity(path):
    """``[size, mtime_ns]`` of an input, which a task's key holds (a changed input is
    computed again); a folder's (a Zarr store's) are its files' total size and one
    digest of their names, sizes and times (chunks rewritten in place change no
    folder's time)."""
    info = os.stat(path)
    if not stat.S_ISDIR(info.st_mode):
        return [info.st_size, info.st_mtime_ns]
    files = _folder_files(path) or []
    names = [[name, item.st_size, item.st_mtime_ns] for name, item in files]
    return [sum(item.st_size for _, item in files), _digest(names)]


def _digest(value):
    return hashlib.sha256(json.dumps(value).encode()).hexdigest()


def output_size(path):
    """Bytes of the output at ``path`` (a file, or a folder's files; links are not
    followed), or None if there is none."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if stat.S_ISREG(info.st_mode):
        return info.st_size
    if stat.S_ISDIR(info.st_mode):
        files = _folder_files(path)
        return None if files is None else sum(item.st_size for _, item in files)
    return None


def _unchanged(path, identity):
    """Whether ``path`` still holds the content recorded as ``identity``.

    The same inode with the same modification and change times is the same file (a
    change time cannot be set back by hand); anything else (a copied or restored
    folder, a touched file) is judged by its content. A folder output is the same
    while every file in it is (the same names, places and times, or the same content);
    a file or folder added, removed or changed in it makes it another.
    """
    try:
        info = os.lstat(path)
        size, digest, where = identity["size"], identity["sha256"], identity["stat"]
        folder = bool(identity.get("folder"))
    except (OSError, TypeError, KeyError, AttributeError):
        return False
    if folder:
        if not stat.S_ISDIR(info.st_mode):
            return False
        try:
            files = _folder_files(path)
            if files is None or sum(item.st_size for _, item in files) != size:
                return False
            if _folder_stat(info, files) == where:
                return True
            return _folder_sha256(path, files) == digest
        except OSError:
            return False
    if not stat.S_ISREG(info.st_mode) or info.st_size != size:
        return False
    if [info.st_ino, info.st_mtime_ns, info.st_ctime_ns] == where:
        return True
    try:
        return _sha256(path) == digest
    except OSError:
        return False


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _folder_files(path):
    """``[(name relative to path, lstat)]`` of every file below the folder ``path``,
    sorted; None if it holds anything but files and folders (a link, a FIFO)."""
    files = []
    for root, folders, names in os.walk(path):
        folders.sort()
        for name in [*folders, *names]:
            full = os.path.join(root, name)
            info = os.lstat(full)
            relative = os.path.relpath(full, path).replace(os.sep, "/")
            if stat.S_ISREG(info.st_mode):
                files.append((relative, info))
            elif not stat.S_ISDIR(info.st_mode):
                return None
    return sorted(files, key=lambda item: item[0])


def _folder_stat(info, files):
    """The folder's place and every file's name, place and times, as one digest."""
    return _digest(
        [[info.st_ino]]
        + [
            [name, item.st_ino, item.st_size, item.st_mtime_ns, item.st_ctime_ns]
            for name, item in files
        ]
    )


def _folder_sha256(path, files):
    """One SHA-256 of every file's name and content: the same for a copy of the folder."""
    digest = hashlib.sha256()
    for name, _ in files:
        digest.update(f"{name}\0{_sha256(os.path.join(path, name))}\n".encode())
    return digest.hexdigest()
