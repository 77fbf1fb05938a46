"""What a batch tells the person at the terminal: progress, failures, the summary.

Everything goes to stderr, so data on stdout pipes cleanly. Rich draws a live bar
only on a terminal; ``NO_COLOR`` is honoured by rich itself.
"""

from __future__ import annotations

import os
import sys


def display_path(path, *, short=False):
    """A path safe to print on one line: control characters (newlines) escaped.

    ``short``: an absolute path below the working folder is shown relative to it.
    """
    text = str(path)
    if short and os.path.isabs(text):
        import contextlib

        with contextlib.suppress(ValueError, OSError):
            relative = os.path.relpath(text)
            if not relative.startswith(".."):
                text = relative
    if text.isprintable():
        return text
    return text.encode("unicode_escape").decode("ascii")


#: Notes (a multi-frame file read for its first frame only) repeated in the summary.
MAX_SUMMARY_NOTES = 5


class BatchConsole:
    """Progress and messages for one batch; use as a context manager."""

    def __init__(self, total, *, quiet=False, verbose=False, label="processing"):
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False, soft_wrap=True)
        self.quiet, self.verbose, self.total, self.label = quiet, verbose, total, label
        self.progress = None
        self.task_id = None
        self.bands = {}  # input path -> its bar of bands, while it is computed in bands
        self.ended = set()  # inputs whose result came (a cluster's late reports are dropped)

    @property
    def live(self):
        """Whether bars are drawn: on a terminal, without -q or -v."""
        return self.console.is_terminal and not (self.quiet or self.verbose)

    def __enter__(self):
        if self.live and self.total > 1:
            self._start()
            self.task_id = self.progress.add_task(self.label, total=self.total, rate="")
        return self

    def _start(self):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.progress.start()

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()
        return False

    def on_band(self, path, done, total):
        """Called as a band of an input computed in bands ends: a bar of its bands
        (on a terminal), the same for local runs and Dask clusters."""
        if not self.live or path in self.ended:
            return
        if self.progress is None:
            self._start()
        bar = self.bands.get(path)
        if bar is None:
            name = display_path(os.path.basename(path))
            bar = self.bands[path] = self.progress.add_task(f"{name} bands", total=total, rate="")
        self.progress.update(bar, completed=done)
        if done >= total:
            self.progress.remove_task(self.bands.pop(path))

    def print(self, message, style=None):
        self.console.print(message, style=style, markup=False)

    def on_result(self, result):
        """Called as each input ends: advance the bar, name failures at once."""
        name = display_path(result.input.name)
        if result.status == "failed":
            self.print(f"error: {name}: {result.reason}", style="red")
        elif not self.quiet:
            for warning in result.problems:
                self.print(f"warning: {name}: {warning}", style="yellow")
        if result.status != "failed" and self.verbose:
            detail = f" ({result.reason})" if result.reason else ""
            outputs = ", ".join(display_path(o.name) for o in result.outputs)
            self.print(f"{result.status}: {name}{detail}" + (f" -> {outputs}" if outputs else ""))
            for note in result.notes:
                self.print(f"  note: {note}")
        self.ended.add(str(result.input.path))
        bar = self.bands.pop(str(result.input.path), None)
        if bar is not None:  # a failed input's bands stop here
            self.progress.remove_task(bar)
        if self.task_id is not None:
            task = next(task for task in self.progress.tasks if task.id == self.task_id)
            rate = (task.completed + 1) / task.elapsed if task.elapsed else 0
            self.progress.update(self.task_id, advance=1, rate=f"{rate:.1f}/s")

    def summary(self, report, out_dir=None):
        """The closing lines: counts, time, throughput, and every failure again."""
        failures = report.failures
        if failures and len(report.results) > 1 and not self.quiet:
            self.print(f"{len(failures)} input(s) failed:", style="red")
            for result in failures:
                self.print(f"  {display_path(result.input.name)}: {result.reason}", style="red")
        if report.interrupted:
            self.print(
                "interrupted: finished outputs are kept; rerun the command to resume",
                style="yellow",
            )
        if self.quiet:
            return
        noted = [(result, note) for result in report.results for note in result.notes]
        for result, note in noted[:MAX_SUMMARY_NOTES]:
            self.print(f"note: {display_path(result.input.name)}: {note}")
        if len(noted) > MAX_SUMMARY_NOTES:
            self.print(f"note: and {len(noted) - MAX_SUMMARY_NOTES} more (see -v or --json)")
        done, skipped = report.count("done"), report.count("skipped")
        line = f"{done} done, {skipped} skipped, {len(failures)} failed in {report.seconds:.1f} s"
        if done and report.seconds > 0:
            rate = done / report.seconds
            # Big images take minutes each: "0.0 files/s" would say nothing.
            line += f" ({rate:.1f} files/s)" if rate >= 0.5 else f" ({1 / rate:.1f} s per file)"
        if out_dir is not None and (done or skipped):
            line += f"; outputs in {display_path(out_dir, short=True)}"
        self.print(line)


def error(message):
    """One line on stderr, for errors outside a batch."""
    sys.stderr.write(f"error: {message}\n")


def plan_lines(results, sizes):
    """A dry run's plan, for people: per input what would happen and why, its outputs
    (with the size of each already on disk) and the job's plan details."""
    lines = []
    for result, result_sizes in zip(results, sizes):
        reason = f" ({result.reason})" if result.reason else ""
        lines.append(f"{result.status:<8} {display_path(result.input.name)}{reason}")
        for output, size in zip(result.outputs, result_sizes):
            on_disk = ""
            if size is not None:  # what a skip keeps, or a run replaces
                on_disk = f"  ({size:,} bytes{'' if result.status == 'skip' else ' on disk now'})"
            lines.append(f"  {display_path(output, short=True)}{on_disk}")
        for key, value in result.details.items():
            lines.append(f"  {key}: {value}")
    return lines
