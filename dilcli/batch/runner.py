"""One batch from start to end: skip what is done, refuse what would mix runs, run the
rest, record each result, and report.

Every command that turns input files into output files ends here (see
:mod:`dilcli.batch` for what a job is).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import stat
import time
from pathlib import Path

from dilcli.batch.record import RECORD_NAME, OutputConflict, Record, output_size
from dilcli.batch.tasks import BatchError, BatchReport, TaskResult


def run_batch(
    tasks,
    job,
    *,
    out_dir,
    jobs=1,
    overwrite=False,
    fail_fast=False,
    on_result=None,
    scheduler=None,
    on_band=None,
):
    """Run ``tasks``, skipping those the record says are done; report each result.

    ``jobs > 1`` runs tasks in worker processes, ``scheduler`` (an address) on a Dask
    cluster; outputs do not depend on either. ``on_result(result)`` is called in the
    main process as each task ends; ``on_band(input path, bands done, bands)`` as each
    band of an input computed in bands is (in this process or on the cluster; not
    from worker processes). A ``KeyboardInterrupt`` stops the batch; the report says
    it was interrupted.
    """
    started = time.perf_counter()
    report = BatchReport()
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    from dilcli.io.atomic import remove_stale_temporaries

    with Record(out_dir) as record, _run_marker(out_dir) as marker:
        remove_stale_temporaries(out_dir)

        def finish(task, result):
            if result.status == "done":
                record.add(task)
            report.results.append(result)
            if on_result:
                on_result(result)

        pending, ready = [], []
        decisions = [(task, decide(task, record, overwrite=overwrite)) for task in tasks]
        for task, (action, reason, _) in decisions:
            if action == "refuse":
                ready.append((task, TaskResult(task.input, "failed", reason=reason)))
            elif action == "skip":
                ready.append((task, TaskResult(task.input, "skipped", task.outputs, reason=reason)))
            else:
                pending.append(dataclasses.replace(task, guard=marker))
        _refuse_conflicts([pair for _, (_, _, found) in decisions for pair in found])
        for task, result in ready:
            finish(task, result)
        _run_pending(pending, job, finish, report, out_dir, jobs, fail_fast, scheduler, on_band)
    report.seconds = time.perf_counter() - started
    return report


RUN_MARKER_PREFIX = ".dilcli-run-"


@contextlib.contextmanager
def _run_marker(out_dir):
    """A file in the output folder that exists exactly while this run does.

    Workers commit an output only while it exists (:func:`dilcli.io.atomic.commit_guard`):
    the marker goes when the run ends, however it ends, and the next run (which holds
    the record's lock, so no other run lives) removes any a killed run left behind. So a
    worker orphaned by a killed main process, or a Dask task still running after the
    client stopped, never writes over the next run's files.
    """
    for stale in Path(out_dir).glob(f"{RUN_MARKER_PREFIX}*"):
        with contextlib.suppress(OSError):
            stale.unlink()
    marker = Path(out_dir) / f"{RUN_MARKER_PREFIX}{os.getpid()}-{os.urandom(8).hex()}"
    marker.touch()
    try:
        yield str(marker)
    finally:
        with contextlib.suppress(OSError):
            marker.unlink()


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


def decide(task, record, *, overwrite=False):
    """What a run does with ``task``: ``(action, reason, conflicts)``.

    ``action`` is ``"refuse"`` (the plan found it must not run: it would replace an
    input, or its names are too long), ``"skip"`` (done, outputs unchanged) or
    ``"compute"``; ``conflicts`` lists ``(output, input)`` for the outputs of a task to
    compute that hold another run's unchanged result, which make the whole run refuse
    to start (see :func:`_refuse_conflicts`). The real run and the dry run both ask
    here, so a dry run says what the run would do.
    """
    if task.conflict:
        return "refuse", task.conflict, []
    if overwrite:
        return "compute", "--overwrite", []
    why = record.why_not_done(task)
    if why is None:
        return "skip", "already done", []
    return "compute", why, record.conflicts(task)


def conflict_message(found):
    """The one line that refuses a run whose outputs hold other runs' results."""
    from dilcli.batch.console import display_path

    output, source = found[0]
    what = f"{display_path(output, short=True)}"
    what += f" and {len(found) - 1} more outputs hold" if len(found) > 1 else " holds"
    return (
        f"{what} the result of another run (other parameters, or another input: "
        f"{display_path(source, short=True)}); rerun with --overwrite to replace, "
        "or choose another -o"
    )


def _refuse_conflicts(found):
    """Stop before anything runs if outputs hold another run's unchanged results."""
    if found:
        raise OutputConflict(conflict_message(found))


def dry_run(tasks, job, *, out_dir, overwrite=False):
    """What :func:`run_batch` would do, writing nothing: ``(results, sizes, refusal)``.

    One :class:`TaskResult` per task with status ``compute``, ``skip`` or ``refuse``
    and the reason, ``details`` from the job's ``plan_details(input_path)``; ``sizes``
    holds, per task, the size in bytes of each output on disk now (None where there is
    none); ``refusal`` is the line with which the run would refuse to start (outputs
    holding another run's results), or None. The record is read, never created or
    changed, and nothing else is opened for writing.
    """
    results, sizes, found = [], [], []
    with Record(out_dir, read_only=True) as record:
        for task in tasks:
            action, reason, conflicts = decide(task, record, overwrite=overwrite)
            if conflicts:
                from dilcli.batch.console import display_path

                action = "refuse"
                reason = f"{display_path(conflicts[0][0].name)} holds another run's result"
                found += conflicts
            details = _plan_details(job, task.input.path)
            outputs = () if task.conflict else task.outputs
            results.append(TaskResult(task.input, action, outputs, reason, details=details))
            sizes.append([output_size(output) for output in outputs])
    return results, sizes, conflict_message(found) if found else None


def _plan_details(job, path):
    """``job.plan_details(path)``; what the run would fail with, as ``problem``."""
    from dilcli.batch.workers import describe_error

    try:
        return getattr(job, "plan_details", lambda path: {})(path)
    except Exception as error:  # a bad input is reported, as the run would report it
        return {"problem": describe_error(error)}


def _run_pending(pending, job, finish, report, out_dir, jobs, fail_fast, scheduler, on_band):
    """Run the tasks not done yet, calling ``finish(task, result)`` as each ends.

    Ctrl-C and SIGTERM stop it the same way: workers are stopped, their temporaries
    removed, and ``report.interrupted`` names the signal.
    """
    from dilcli.batch import streamed, workers
    from dilcli.io.atomic import remove_stale_temporaries

    if scheduler:
        results = workers.dask_results(pending, job, scheduler, on_band=on_band)
    elif jobs > 1 and len(pending) > 1:
        results = workers.pool_results(pending, job, jobs)
    else:
        results = workers.local_results(pending, job, jobs)
    with workers.stop_on_sigterm(), streamed.band_progress(on_band):
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


#: ``--log`` names that mean the process's own streams (links, which logs never follow).
STANDARD_STREAMS = {"-": "stdout", "/dev/stdout": "stdout", "/dev/stderr": "stderr"}


class JsonLog:
    """``--json`` and ``--log FILE``: one JSON line per input, one per output it wrote,
    and a summary last (the format is in the README, "Scripting").

    ``-`` (or ``/dev/stdout``) is standard output (``--json``), ``/dev/stderr`` standard
    error. The log is appended to, never through a
    link, and is never an input or the record (by any name); an existing file is
    appended to only if it is a dilcli log already (JSON lines), so a mistyped name
    never damages an image or an output. A FIFO nobody reads is refused, not waited
    on. A log that cannot be written stops the batch with a :class:`BatchError`
    (finished outputs are kept).
    """

    def __init__(self, path, *, inputs=(), outputs=(), out_dir=None):
        self.name = str(path)
        self.standard = self.name in STANDARD_STREAMS
        if self.standard:
            import sys

            self.handle = getattr(sys, STANDARD_STREAMS[self.name])
            return
        real = os.path.realpath(path)
        protected = {os.path.realpath(item.path) for item in inputs}
        if out_dir is not None:
            protected.add(os.path.realpath(Path(out_dir) / RECORD_NAME))
        if real in protected:
            raise BatchError(f"the log {path} is an input or the record; name another file")
        if real in {os.path.realpath(output) for output in outputs}:
            raise BatchError(f"the log {path} is one of this run's outputs; name another file")
        protected_ids = set()  # the same files by another name (hard links)
        for name in protected:
            with contextlib.suppress(OSError):
                info = os.stat(name)
                protected_ids.add((info.st_dev, info.st_ino))
        try:
            # Not blocking: a FIFO nobody reads fails at once (ENXIO) instead of hanging.
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NONBLOCK
            fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o666)
        except OSError as error:
            reason = error.strerror or str(error)
            if os.path.islink(path):
                reason = "it is a symbolic link, which dilcli does not follow"
            elif error.errno == errno.ENXIO:
                reason = "it is a FIFO that no process is reading"
            raise BatchError(f"cannot open the log {path}: {reason}") from None
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode):
            reason = None
            if (info.st_dev, info.st_ino) in protected_ids:
                reason = "is an input or the record (by another name)"
            elif info.st_size and _first_byte(path) not in (b"{", None):
                reason = "exists and is not a dilcli log (JSON lines)"
            if reason:
                os.close(fd)
                raise BatchError(f"the log {path} {reason}; name another file")
        try:
            os.set_blocking(fd, True)
            self.handle = os.fdopen(fd, "a", encoding="utf-8")
        except OSError as error:  # a file that opens but cannot be appended to (/proc)
            os.close(fd)
            raise BatchError(f"cannot open the log {path}: {error.strerror or error}") from None

    def write(self, result, sizes=None):
        """One line for ``result``'s input, then one per output it wrote (a dry run: per
        output it would write, with ``sizes``, the size of each on disk now or None)."""
        entry = {
            "type": "input",
            "input": str(result.input.path),
            "status": result.status,
            "reason": result.reason or None,
            "seconds": round(result.seconds, 4),
            "outputs": [str(o) for o in result.outputs],
        }
        if result.problems:
            entry["warnings"] = result.problems
        if result.notes:
            entry["notes"] = list(result.notes)
        if result.details:
            entry["details"] = result.details
        lines = [entry]
        if sizes is not None:
            status, source = result.status, entry["input"]
            lines += [
                {
                    "type": "output",
                    "output": str(o),
                    "input": source,
                    "status": status,
                    "size": size,
                }
                for o, size in zip(result.outputs, sizes)
            ]
        elif result.status == "done":
            lines += [
                {"type": "output", "output": str(o), "input": entry["input"]}
                for o in result.outputs
            ]
        self._write(lines)

    def write_summary(self, summary):
        """The last line: ``{"type": "summary", ...}`` with the counts and exit code."""
        self._write([{"type": "summary", **summary}])

    def _write(self, lines):
        try:
            self.handle.write("".join(json.dumps(line) + "\n" for line in lines))
            self.handle.flush()
        except OSError as error:
            shown = STANDARD_STREAMS.get(self.name, self.name)  # --json: stdout, not '-'
            raise BatchError(f"cannot write the log {shown}: {error.strerror or error}") from None

    def close(self):
        if not self.standard:
            import contextlib

            with contextlib.suppress(OSError):  # a failed flush was reported by write()
                self.handle.close()


def _first_byte(path):
    """The first byte of a regular file, or None if it cannot be read."""
    try:
        with open(path, "rb") as handle:
            return handle.read(1)
    except OSError:
        return None
