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

import glob
import hashlib
import json
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

RECORD_NAME = ".dilcli-record.jsonl"
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
    """A file to process; ``relative`` is where its outputs go under the output folder."""

    path: Path
    relative: Path


@dataclass(frozen=True)
class Task:
    input: InputFile
    outputs: tuple[Path, ...]
    key: str
    conflict: str | None = None  # why it must not run (it would replace an input)


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
    interrupted: bool = False

    def count(self, status):
        return sum(1 for r in self.results if r.status == status)

    @property
    def failures(self):
        return [r for r in self.results if r.status == "failed"]

    @property
    def exit_code(self):
        if self.interrupted:
            return 130
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
    own is followed; inside folders, such links are not (no loops).
    """
    inputs, skipped, seen = [], [], set()
    excluded = os.path.realpath(exclude) if exclude is not None else None

    def add(path, relative):
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            inputs.append(InputFile(Path(path), Path(relative)))

    for spec in specs:
        spec = str(spec)
        path = Path(spec)
        if not os.path.lexists(path) and _GLOB_CHARS & set(spec):
            matches = sorted(glob.glob(spec, recursive=recursive))
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


def _glob_base(pattern):
    """The folder a glob pattern starts from: its parts before the first wildcard."""
    parts = []
    for part in Path(pattern).parts[:-1]:
        if _GLOB_CHARS & set(part):
            break
        parts.append(part)
    return os.path.join(*parts) if parts else "."


def _walk(folder, recursive, excluded=None):
    """Yield (path, path relative to folder, reason to skip or None), sorted, no loops.

    Links to folders are not followed (so no loops); ``excluded`` (the output folder,
    when the user put it inside an input folder) is not entered.
    """
    stack = [Path()]
    while stack:
        sub = stack.pop()
        try:
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
                if recursive and os.path.realpath(path) != excluded:
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
    return TaskResult(InputFile(Path(path), Path(Path(path).name)), "skipped", reason=reason)


def _failed(path, reason):
    return TaskResult(InputFile(Path(path), Path(Path(path).name)), "failed", reason=reason)


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
    out_dir = Path(out_dir)
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
            outputs = tuple(folder / name for name in _output_names(job, item.path, candidate))
            if taken.isdisjoint(outputs):
                break
            number += 1
            candidate = f"{stem}_{number}"
        taken.update(outputs)
        clashes = [sources[r] for r in map(os.path.realpath, outputs) if r in sources]
        conflict = f"its output would overwrite the input {clashes[0]}" if clashes else None
        tasks.append(Task(item, outputs, _task_key(item.path, outputs, signature), conflict))
    return tasks


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


def _task_key(path, outputs, signature):
    try:
        info = os.stat(path)
        identity = [os.path.realpath(path), info.st_size, info.st_mtime_ns]
    except OSError:
        identity = [os.path.realpath(path), None, None]
    payload = json.dumps([identity, [str(o) for o in outputs], signature])
    return hashlib.sha256(payload.encode()).hexdigest()


# --- the record of finished work ----------------------------------------------------


class Record:
    """Keys of finished tasks, one JSON line each, in the output folder.

    A line is appended only after all of a task's outputs are in place, so a task
    whose key is here is complete; a torn last line (a kill mid-write) is ignored.
    """

    def __init__(self, out_dir):
        self.path = Path(out_dir) / RECORD_NAME
        self.keys = set()
        if self.path.is_file():
            text = self.path.read_text(errors="replace")
            if text and not text.endswith("\n"):  # torn by a kill: end it, keep the rest
                with open(self.path, "a", encoding="utf-8") as handle:
                    handle.write("\n")
            for line in text.splitlines():
                try:
                    self.keys.add(json.loads(line)["key"])
                except (ValueError, KeyError, TypeError):
                    continue

    def is_done(self, task):
        return task.key in self.keys and all(o.is_file() for o in task.outputs)

    def add(self, task):
        self.keys.add(task.key)
        line = json.dumps({"key": task.key, "input": str(task.input.path)}) + "\n"
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)


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

    remove_stale_temporaries(out_dir)
    record = Record(out_dir)

    def finish(task, result):
        if result.status == "done":
            record.add(task)
        report.results.append(result)
        if on_result:
            on_result(result)

    pending = []
    for task in tasks:
        if task.conflict:
            finish(task, TaskResult(task.input, "failed", reason=task.conflict))
        elif not overwrite and record.is_done(task):
            finish(task, TaskResult(task.input, "skipped", task.outputs, reason="already done"))
        else:
            pending.append(task)
    from dilcli import workers

    if scheduler:
        results = workers.dask_results(pending, job, scheduler)
    elif jobs > 1 and len(pending) > 1:
        results = workers.pool_results(pending, job, jobs)
    else:
        results = workers.local_results(pending, job, jobs)
    try:
        for task, result in results:
            finish(task, result)
            if fail_fast and result.status == "failed":
                break
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        results.close()
        remove_stale_temporaries(out_dir)  # those of workers stopped mid-write
    report.seconds = time.perf_counter() - started
    return report


class JsonLog:
    """``--log FILE``: one JSON line per input, and one per output it wrote."""

    def __init__(self, path):
        self.handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()

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
        self.handle.write("".join(json.dumps(line) + "\n" for line in lines))
        self.handle.flush()

    def close(self):
        self.handle.close()
