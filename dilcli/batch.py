"""Batches of files: finding inputs, naming outputs, resuming, running workers, reporting.

Every command that turns input files into output files (``convolve``, ``context``,
``signal``) hands a *job* to :func:`run_batch`. A job is a picklable object with

- ``output_names(stem, suffix) -> list[str]``: the file names it writes for one
  input (``suffix`` is the input's extension, lower case, for jobs that keep it);
- ``signature() -> dict``: every parameter that changes its outputs (for resume);
- ``run(input_path, output_paths)``: does the work, writing each output atomically,
  raising an exception whose message is the reason when the input is bad; it may
  return warnings (strings: a damaged file decoded anyway, NaN replaced, ...).

A job that writes one set of outputs per frame of an input (``--frames all``) also has
``count_frames(path) -> int | None`` (None: one set, as usual); the count is passed on
as ``output_names(stem, suffix, frames=count)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

RECORD_NAME = ".dilcli-record.jsonl"
NAME_MAX = 255  # bytes in one file name, on every common file system
_GLOB_CHARS = set("*?[")
_MAGIC = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"GIF87a",
    b"GIF89a",
    b"II*\x00",
    b"MM\x00*",
    b"BM",
    b"\x93NUMPY",
)


class BatchError(Exception):
    """A batch that cannot start (a usage problem): the message says why."""


@dataclass(frozen=True)
class InputFile:
    """A file to process.

    ``path`` is absolute (workers in other processes, other folders or other machines
    read the same file); ``relative`` is where its outputs go under the output folder,
    never with ``..``; ``shown`` is how messages name it (as the user wrote it).
    """

    path: Path
    relative: Path
    shown: str = ""

    @property
    def name(self):
        """The path for messages: as the user wrote it."""
        return self.shown or str(self.path)


@dataclass(frozen=True)
class Task:
    """One input's work: its outputs, and what the record knows it by.

    ``maker`` names the input (its real path) and every parameter of the job: two
    tasks with one maker write the same files from the same file. ``key`` adds the
    input's size and time and the output names: a task with this key is done when its
    recorded outputs are still on disk.
    """

    input: InputFile
    outputs: tuple[Path, ...]
    key: str
    conflict: str | None = None  # why it must not run (it would replace an input)
    maker: str = ""


@dataclass
class TaskResult:
    input: InputFile
    status: str  # "done", "skipped" or "failed"
    outputs: tuple[Path, ...] = ()
    reason: str = ""
    seconds: float = 0.0
    warnings: tuple[str, ...] = ()


@dataclass
class BatchReport:
    results: list[TaskResult] = field(default_factory=list)
    seconds: float = 0.0
    # The signal that stopped the batch: 2 (SIGINT, Ctrl-C) or 15 (SIGTERM); 0 if none.
    interrupted: int = 0

    def count(self, status):
        return sum(1 for r in self.results if r.status == status)

    @property
    def failures(self):
        return [r for r in self.results if r.status == "failed"]

    @property
    def exit_code(self):
        if self.interrupted:
            return 128 + self.interrupted  # as the shell reports a process the signal ended
        return 1 if self.failures else 0


# --- finding inputs -----------------------------------------------------------------


def find_inputs(specs, *, recursive=False, extensions=frozenset(), sniff=True, exclude=None):
    """Expand files, folders and glob patterns into input files.

    Returns ``(inputs, skipped)``, ``skipped`` being ``TaskResult``s that say why a
    path was left out (missing, special file, dangling link, ...). Hidden entries of
    folders are ignored; folder entries count when their extension is in
    ``extensions`` or, with ``sniff``, their first bytes look like an image or array.
    A path named on its own that cannot be an input (a FIFO, a device, a broken link)
    is *failed*, not skipped: the user asked for it. A link to a folder named on its
    own is followed; inside folders and under ``**``, such links are not, and no
    folder is entered twice, so walks always end. Nothing under ``exclude`` (the
    output folder) is ever an input.
    """
    inputs, skipped, seen = [], [], set()
    excluded = os.path.realpath(exclude) if exclude is not None else None

    def add(path, relative):
        real = os.path.realpath(path)
        if real in seen or (excluded and _is_within(real, excluded)):
            return
        seen.add(real)
        inputs.append(InputFile(Path(os.path.abspath(path)), _confined(relative, path), str(path)))

    for spec in specs:
        spec = str(spec)
        path = Path(spec)
        if not os.path.lexists(path) and _GLOB_CHARS & set(spec):
            matches = sorted(_glob(spec, recursive=recursive, excluded=excluded))
            if not matches:
                skipped.append(_failed(path, "no file matches this pattern"))
            base = _glob_base(spec)
            for match in matches:
                reason = _unusable(Path(match))
                if reason:
                    skipped.append(_skipped(Path(match), reason))
                elif not Path(match).is_dir():
                    add(match, os.path.relpath(match, base))  # mirrors 'tiles/**/*.tif'
            continue
        reason = _unusable(path)
        if reason and reason != "link to a folder, not followed":
            skipped.append(_failed(path, reason))
        elif path.is_dir():
            for file, relative, why in _walk(path, recursive, excluded):
                if why:
                    skipped.append(_skipped(file, why))
                elif file.suffix.lower() in extensions or (sniff and _looks_like_data(file)):
                    add(file, relative)
        else:
            add(path, path.name)
    return inputs, skipped


def _is_within(path, folder):
    """Whether ``path`` is ``folder`` or lies below it (both absolute and normalised)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _confined(relative, path):
    """``relative`` made safe to join to the output folder: no ``..``, never absolute.

    A glob such as ``'in/*/../../*.png'`` matches files outside its fixed part; their
    outputs go to the top of the output folder, under their own name.
    """
    relative = os.path.normpath(relative)
    if os.path.isabs(relative) or relative == ".." or relative.startswith(".." + os.sep):
        return Path(Path(path).name)
    return Path(relative)


def _glob_base(pattern):
    """The folder a glob pattern starts from: its parts before the first wildcard."""
    parts = []
    for part in Path(pattern).parts[:-1]:
        if _GLOB_CHARS & set(part):
            break
        parts.append(part)
    return os.path.join(*parts) if parts else "."


def _glob(pattern, *, recursive, excluded=None):
    """Paths matching ``pattern``, like :func:`glob.glob`, but walks that always end.

    ``**`` (with ``recursive``) descends into real sub-folders only: links to folders
    are not followed and no folder is entered twice, so link cycles cannot make it
    loop. Names starting with ``.`` match only a pattern part starting with ``.``, as
    in the shell; ``excluded`` (the output folder) is not entered.
    """
    import fnmatch

    parts = Path(pattern).parts
    root, parts = (parts[0], parts[1:]) if os.path.isabs(pattern) else ("", parts)
    visited = set()

    def entries(folder):
        try:
            with os.scandir(folder or ".") as listing:
                return sorted(listing, key=lambda e: e.name)
        except OSError:
            return []

    def walk(folder, index):
        if index == len(parts):
            yield folder
            return
        part = parts[index]
        if recursive and part == "**":
            real = os.path.realpath(folder or ".")
            if real in visited or (excluded and _is_within(real, excluded)):
                return
            visited.add(real)
            yield from walk(folder, index + 1)  # ** matches no folder too
            for entry in entries(folder):
                if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
                    yield from walk(os.path.join(folder, entry.name), index)
        elif not _GLOB_CHARS & set(part):
            path = os.path.join(folder, part)
            if index + 1 == len(parts) and os.path.lexists(path) or os.path.isdir(path):
                yield from walk(path, index + 1)
        else:
            part = part.replace("**", "*")
            for entry in entries(folder):
                hidden = entry.name.startswith(".") and not part.startswith(".")
                if not hidden and fnmatch.fnmatchcase(entry.name, part):
                    yield from walk(os.path.join(folder, entry.name), index + 1)

    # One match per path: '**/**' can reach a file by more than one route.
    return list(dict.fromkeys(walk(root, 0)))


def _walk(folder, recursive, excluded=None):
    """Yield (path, path relative to folder, reason to skip or None), sorted, no loops.

    Links to folders are not followed and no folder is entered twice (bind mounts),
    so walks end; ``excluded`` (the output folder, when the user put it inside an
    input folder) is not entered.
    """
    stack, visited = [Path()], set()
    while stack:
        sub = stack.pop()
        try:
            info = os.stat(folder / sub)
            if (info.st_dev, info.st_ino) in visited:
                continue
            visited.add((info.st_dev, info.st_ino))
            entries = sorted(os.scandir(folder / sub), key=lambda e: e.name)
        except OSError as error:
            yield folder / sub, sub, f"cannot list folder: {error.strerror or error}"
            continue
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path, relative = Path(entry.path), sub / entry.name
            if entry.is_dir(follow_symlinks=False):
                if recursive and not (excluded and _is_within(os.path.realpath(path), excluded)):
                    subfolders.append(relative)
                continue
            reason = _unusable(path)
            if reason and "folder" in reason:
                if recursive:
                    yield path, relative, reason
                continue
            yield path, relative, reason
        stack.extend(reversed(subfolders))


def _unusable(path):
    """Why ``path`` cannot be an input (without opening it), or None."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return "no such file or folder"
    except OSError as error:
        return f"cannot read: {error.strerror or error}"
    if stat.S_ISLNK(info.st_mode):
        try:
            info = path.stat()
        except FileNotFoundError:
            return "dangling link (its target does not exist)"
        except OSError as error:  # ELOOP for link loops
            return f"broken link: {error.strerror or error}"
        if stat.S_ISDIR(info.st_mode):
            return "link to a folder, not followed"
    if stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode):
        return None
    kind = "FIFO" if stat.S_ISFIFO(info.st_mode) else "device or socket"
    return f"special file ({kind}), not opened"


def _looks_like_data(path):
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        return False
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    return any(head.startswith(magic) for magic in _MAGIC)


def _skipped(path, reason):
    return TaskResult(_unplanned(path), "skipped", reason=reason)


def _failed(path, reason):
    return TaskResult(_unplanned(path), "failed", reason=reason)


def _unplanned(path):
    return InputFile(Path(os.path.abspath(path)), Path(Path(path).name), str(path))


def check_output_folder(out_dir, specs, *, allow_inside=False):
    """Refuse an output folder that is an input folder, or lies inside one unless allowed."""
    out_real = Path(os.path.realpath(out_dir))
    for spec in specs:
        if not Path(spec).is_dir():
            continue
        in_real = Path(os.path.realpath(spec))
        if out_real == in_real:
            raise BatchError(f"output folder {out_dir} is the input folder {spec}")
        if in_real in out_real.parents and not allow_inside:
            raise BatchError(
                f"output folder {out_dir} lies inside input folder {spec} "
                "(add --allow-output-in-input if you mean it)"
            )


# --- planning -----------------------------------------------------------------------


def plan_tasks(inputs, out_dir, job):
    """One task per input: output paths under ``out_dir`` and a resume key.

    Outputs mirror each input's sub-folder. Inputs whose outputs would share names
    are told apart, never overwritten: two with one stem in one folder (``a.png``,
    ``a.jpg``) get their extension in the stem, and any that still collide (``x.png``
    from two folders named on the command line) a number, ``x_2``. A task whose
    output would replace another input of the batch gets a ``conflict``: it fails
    instead of running.
    """
    out_dir = Path(os.path.abspath(out_dir))
    by_target = {}
    for item in inputs:
        by_target.setdefault((item.relative.parent, item.path.stem), []).append(item)
    signature = _canonical(job.signature())
    sources = {os.path.realpath(item.path): item.path for item in inputs}
    taken, tasks = set(), []
    for item in inputs:
        stem = item.path.stem
        same_stem = by_target[(item.relative.parent, stem)]
        if len({other.path.suffix.lower() for other in same_stem}) > 1:
            stem = f"{stem}_{item.path.suffix.lstrip('.').lower() or 'noext'}"
        folder = out_dir / item.relative.parent
        candidate, number = stem, 1
        while True:
            names = _output_names(job, item.path, candidate)
            outputs = tuple(folder / name for name in names)
            if taken.isdisjoint(outputs):
                break
            number += 1
            candidate = f"{stem}_{number}"
        taken.update(outputs)
        clashes = [sources[r] for r in map(os.path.realpath, outputs) if r in sources]
        conflict = f"its output would overwrite the input {clashes[0]}" if clashes else None
        outside = [
            o for o, n in zip(outputs, names) if not os.path.isabs(n) and not _inside(o, out_dir)
        ]
        if outside:
            conflict = f"its output {outside[0]} would lie outside the output folder {out_dir}"
        too_long = [o.name for o in outputs if len(os.fsencode(o.name)) > NAME_MAX]
        if too_long:
            size = len(os.fsencode(too_long[0]))
            conflict = (
                f"its output name {too_long[0]} is {size} bytes long; file systems allow "
                f"{NAME_MAX} (rename the input)"
            )
        maker = _digest([os.path.realpath(item.path), signature])
        key = _task_key(item.path, maker, [_record_name(o, out_dir) for o in outputs])
        tasks.append(Task(item, outputs, key, conflict, maker))
    return tasks


def _inside(output, out_dir):
    """Whether ``output`` lies inside ``out_dir``, links resolved as far as they exist.

    The last part is not resolved: a link there is replaced, never followed. A name
    the job made absolute (``signal --plot FILE``) is a place the user chose, and is
    not checked.
    """
    real = os.path.join(os.path.realpath(os.path.dirname(output)), os.path.basename(output))
    return _is_within(real, os.path.realpath(out_dir)) and _is_within(
        os.path.normpath(output), os.path.normpath(out_dir)
    )


def _record_name(output, out_dir):
    """How the record names an output: relative to the output folder (which may move)."""
    relative = os.path.relpath(output, out_dir)
    return Path(output).as_posix() if relative.startswith("..") else Path(relative).as_posix()


def _output_names(job, path, stem):
    suffix = path.suffix.lower()
    count_frames = getattr(job, "count_frames", None)
    frames = count_frames(path) if count_frames is not None else None
    if frames is None:
        return job.output_names(stem, suffix)
    return job.output_names(stem, suffix, frames=frames)


def _canonical(value):
    return json.dumps(value, sort_keys=True, default=_json_default)


def _json_default(value):
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot record {type(value).__name__}")


def _task_key(path, maker, outputs):
    try:
        info = os.stat(path)
        identity = [info.st_size, info.st_mtime_ns]
    except OSError:
        identity = [None, None]
    return _digest([maker, identity, list(outputs)])


def _digest(value):
    return hashlib.sha256(json.dumps(value).encode()).hexdigest()


# --- the record of finished work ----------------------------------------------------


class Refused(BatchError):
    """A batch that refused to start (its record is unusable, or locked): nothing ran."""


class OutputConflict(Refused):
    """Outputs a batch would write hold another run's results; nothing was run."""


class Record:
    """What finished tasks wrote, one JSON line each, in the output folder.

    A line names a task's key and, for each of its outputs, the size, modification
    time and SHA-256 of the file it wrote. A task counts as done only while every
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

    def __init__(self, out_dir):
        self.out_dir = Path(os.path.abspath(out_dir))
        self.path = self.out_dir / RECORD_NAME
        self.done = {}  # key -> {output name: identity}
        self.owner = {}  # output name -> (maker, identity, input)
        self._fd = None

    def __enter__(self):
        try:
            flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
            self._fd = os.open(self.path, flags, 0o666)
        except OSError as error:
            reason = error.strerror or str(error)
            if os.path.islink(self.path):
                reason = "it is a symbolic link, which dilcli does not follow (remove it)"
            raise Refused(f"cannot open the record {self.path}: {reason}") from None
        try:
            self._lock()
            self._load()
        except BaseException:
            os.close(self._fd)
            raise
        return self

    def __exit__(self, *exc):
        os.close(self._fd)  # and with it the lock
        return False

    def _lock(self):
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Refused(
                f"another dilcli run is writing into {self.out_dir}; wait for it to end "
                "or choose another -o"
            ) from None
        except OSError:  # a file system without locks: go on unlocked
            pass

    def _load(self):
        with open(self._fd, "rb", closefd=False) as handle:
            data = handle.read()
        if data and not data.endswith(b"\n"):  # torn by a kill: end it, keep the rest
            self._append(b"\n")
        for line in data.decode("utf-8", "replace").splitlines():
            try:
                entry = json.loads(line)
                key, outputs = entry["key"], entry.get("outputs")
                if not isinstance(outputs, dict):
                    continue  # a record of an older dilcli: proves nothing
                self.done[key] = outputs
                for name, identity in outputs.items():
                    self.owner[name] = (entry.get("maker"), identity, entry.get("input", "?"))
            except (ValueError, KeyError, TypeError, AttributeError):
                continue

    @property
    def keys(self):
        return set(self.done)

    def is_done(self, task):
        """Whether every output of ``task`` is on disk as the record says it wrote it."""
        written = self.done.get(task.key)
        names = [_record_name(o, self.out_dir) for o in task.outputs]
        if written is None or set(written) != set(names):
            return False
        return all(_unchanged(o, written[n]) for o, n in zip(task.outputs, names))

    def conflicts(self, task):
        """``(output, input it holds the result of)`` for each output of ``task`` that
        holds, unchanged, what another maker (other parameters or input) wrote.

        The same input changed since (edited, replaced) is the same maker: its outputs
        are simply recomputed.
        """
        found = []
        for output in task.outputs:
            owner = self.owner.get(_record_name(output, self.out_dir))
            if owner and owner[0] != task.maker and _unchanged(output, owner[1]):
                found.append((output, owner[2]))
        return found

    def add(self, task):
        """Record ``task``'s outputs as they are on disk now (it has just written them)."""
        outputs = {_record_name(o, self.out_dir): _identity(o) for o in task.outputs}
        entry = {"key": task.key, "maker": task.maker, "input": str(task.input.path)}
        entry["outputs"] = outputs
        self._append((json.dumps(entry) + "\n").encode())
        self.done[task.key] = outputs
        for name, identity in outputs.items():
            self.owner[name] = (task.maker, identity, str(task.input.path))

    def _append(self, data):
        try:
            written = os.write(self._fd, data)
            if written != len(data):
                raise OSError(28, "No space left on device")
        except OSError as error:
            raise BatchError(
                f"cannot write the record {self.path}: {error.strerror or error}"
            ) from None


def _identity(path):
    """What the record keeps of an output: its size, SHA-256, and where it sits."""
    info = os.stat(path)
    return {
        "size": info.st_size,
        "sha256": _sha256(path),
        "stat": [info.st_ino, info.st_mtime_ns, info.st_ctime_ns],
    }


def _unchanged(path, identity):
    """Whether ``path`` still holds the content recorded as ``identity``.

    The same inode with the same modification and change times is the same file (a
    change time cannot be set back by hand); anything else (a copied or restored
    folder, a touched file) is judged by its content.
    """
    try:
        info = os.lstat(path)
        size, digest, where = identity["size"], identity["sha256"], identity["stat"]
    except (OSError, TypeError, KeyError):
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


# --- running ------------------------------------------------------------------------


def run_batch(
    tasks, job, *, out_dir, jobs=1, overwrite=False, fail_fast=False, on_result=None, scheduler=None
):
    """Run ``tasks``, skipping those the record says are done; report each result.

    ``jobs > 1`` runs tasks in worker processes, ``scheduler`` (an address) on a Dask
    cluster; outputs do not depend on either. ``on_result(result)`` is called in the
    main process as each task ends. A ``KeyboardInterrupt`` stops the batch; the
    report says it was interrupted.
    """
    started = time.perf_counter()
    report = BatchReport()
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    from dilcli.atomic import remove_stale_temporaries

    with Record(out_dir) as record:
        remove_stale_temporaries(out_dir)

        def finish(task, result):
            if result.status == "done":
                record.add(task)
            report.results.append(result)
            if on_result:
                on_result(result)

        pending, ready = [], []
        for task in tasks:
            if task.conflict:
                ready.append((task, TaskResult(task.input, "failed", reason=task.conflict)))
            elif not overwrite and record.is_done(task):
                done = TaskResult(task.input, "skipped", task.outputs, reason="already done")
                ready.append((task, done))
            else:
                pending.append(task)
        if not overwrite:
            _refuse_conflicts(pending, record)
        for task, result in ready:
            finish(task, result)
        _run_pending(pending, job, finish, report, out_dir, jobs, fail_fast, scheduler)
    report.seconds = time.perf_counter() - started
    return report


def remove_if_unused(out_dir):
    """Remove the output folder if it holds nothing but an empty record.

    For a folder this run created and wrote nothing into; a folder with anything else
    in it is left as it is.
    """
    import contextlib

    record = Path(out_dir) / RECORD_NAME
    with contextlib.suppress(OSError):
        if record.is_file() and not record.is_symlink() and record.stat().st_size == 0:
            record.unlink()
        Path(out_dir).rmdir()  # fails, as it should, unless empty


def _refuse_conflicts(tasks, record):
    """Stop before anything runs if outputs hold another run's unchanged results."""
    found = [pair for task in tasks for pair in record.conflicts(task)]
    if not found:
        return
    from dilcli.console import display_path

    output, source = found[0]
    what = f"{display_path(output, short=True)}"
    what += f" and {len(found) - 1} more outputs hold" if len(found) > 1 else " holds"
    raise OutputConflict(
        f"{what} the result of another run (other parameters, or another input: "
        f"{display_path(source, short=True)}); rerun with --overwrite to replace, "
        "or choose another -o"
    )


def _run_pending(pending, job, finish, report, out_dir, jobs, fail_fast, scheduler):
    """Run the tasks not done yet, calling ``finish(task, result)`` as each ends.

    Ctrl-C and SIGTERM stop it the same way: workers are stopped, their temporaries
    removed, and ``report.interrupted`` names the signal.
    """
    from dilcli import workers
    from dilcli.atomic import remove_stale_temporaries

    if scheduler:
        results = workers.dask_results(pending, job, scheduler)
    elif jobs > 1 and len(pending) > 1:
        results = workers.pool_results(pending, job, jobs)
    else:
        results = workers.local_results(pending, job, jobs)
    with workers.stop_on_sigterm():
        try:
            try:
                for task, result in results:
                    finish(task, result)
                    if fail_fast and result.status == "failed":
                        break
            finally:
                results.close()  # stops the workers
                remove_stale_temporaries(out_dir)  # those of workers stopped mid-write
        except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM as workers.Terminated
            report.interrupted = int(getattr(stop, "signum", 2))


class JsonLog:
    """``--log FILE``: one JSON line per input, and one per output it wrote.

    ``-`` is standard output. The log is appended to, never through a link, and is
    never one of the inputs or the record; a log that cannot be written stops the
    batch with a :class:`BatchError` (finished outputs are kept).
    """

    def __init__(self, path, *, inputs=(), out_dir=None):
        self.name = str(path)
        if self.name == "-":
            import sys

            self.handle = sys.stdout
            return
        real = os.path.realpath(path)
        protected = {os.path.realpath(item.path) for item in inputs}
        if out_dir is not None:
            protected.add(os.path.realpath(Path(out_dir) / RECORD_NAME))
        if real in protected:
            raise BatchError(f"the log {path} is an input or the record; name another file")
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
            self.handle = os.fdopen(os.open(path, flags, 0o666), "a", encoding="utf-8")
        except OSError as error:
            reason = error.strerror or str(error)
            if os.path.islink(path):
                reason = "it is a symbolic link, which dilcli does not follow"
            raise BatchError(f"cannot open the log {path}: {reason}") from None

    def write(self, result):
        entry = {
            "input": str(result.input.path),
            "status": result.status,
            "reason": result.reason or None,
            "seconds": round(result.seconds, 4),
            "outputs": [str(o) for o in result.outputs],
        }
        if result.warnings:
            entry["warnings"] = list(result.warnings)
        lines = [entry] + [
            {"output": str(o), "input": entry["input"]}
            for o in result.outputs
            if result.status == "done"
        ]
        try:
            self.handle.write("".join(json.dumps(line) + "\n" for line in lines))
            self.handle.flush()
        except OSError as error:
            raise BatchError(
                f"cannot write the log {self.name}: {error.strerror or error}"
            ) from None

    def close(self):
        if self.name != "-":
            import contextlib

            with contextlib.suppress(OSError):  # a failed flush was reported by write()
                self.handle.close()
