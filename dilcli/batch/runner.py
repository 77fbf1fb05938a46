"""One batch from start to end: skip what is done, refuse what would mix runs, run the
rest, record each result, and report.

Every command that turns input files into output files ends here (see
:mod:`dilcli.batch` for what a job is).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from dilcli.batch.record import RECORD_NAME, OutputConflict, Record
from dilcli.batch.tasks import BatchError, BatchReport, TaskResult


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
    from dilcli.io.atomic import remove_stale_temporaries

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
    from dilcli.batch.console import display_path

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
    from dilcli.batch import workers
    from dilcli.io.atomic import remove_stale_temporaries

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
