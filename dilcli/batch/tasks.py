"""The words of a batch: an input file, its task, the task's result, the batch's report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


class BatchError(Exception):
    """A batch that cannot start (a usage problem): the message says why."""


class Refused(BatchError):
    """A batch that refused to start (its record is unusable, or locked): nothing ran."""


class OutputConflict(Refused):
    """Outputs a batch would write hold another run's results; nothing was run."""


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
    makers: tuple[str, ...] = ()  # each output's own maker: only what makes that file
    # A file that exists while the run that sent this task lives: a worker that outlives
    # its run (main process killed, Dask task left running) writes nothing.
    guard: str = ""


class Note(str):
    """A warning that informs rather than alarms (a multi-frame file read for its first
    frame only): shown with ``-v``, in the summary and in the JSON lines, not as a
    ``warning:`` line. A job returns it among its warnings; it pickles as a string does.
    """

    __slots__ = ()


@dataclass
class TaskResult:
    input: InputFile
    # "done", "skipped" or "failed"; a dry run's plan: "compute", "skip" or "refuse"
    status: str
    outputs: tuple[Path, ...] = ()
    reason: str = ""
    seconds: float = 0.0
    warnings: tuple[str, ...] = ()  # :class:`Note` among them are notes
    details: dict = field(default_factory=dict)  # a dry run's: the job's plan_details()

    @property
    def notes(self):
        """What the job noted for this input (:class:`Note`), once each."""
        return [w for w in self.warnings if isinstance(w, Note)]

    @property
    def problems(self):
        """The warnings proper: damaged data decoded anyway, NaN replaced, ..."""
        return [w for w in self.warnings if not isinstance(w, Note)]


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
