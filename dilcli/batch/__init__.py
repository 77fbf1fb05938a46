"""Batches of files: finding inputs, naming outputs, resuming, running workers, reporting.

One module each: :mod:`~dilcli.batch.tasks` (inputs, tasks, results),
:mod:`~dilcli.batch.inputs` (files, folders, globs), :mod:`~dilcli.batch.plan`
(output names), :mod:`~dilcli.batch.record` (what is done, and whose),
:mod:`~dilcli.batch.runner` (one batch, start to end), :mod:`~dilcli.batch.workers`
(processes and Dask), :mod:`~dilcli.batch.jobs` (what one input becomes) and
:mod:`~dilcli.batch.console` (what the terminal shows).

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
as ``output_names(stem, suffix, frames=count)``. ``plan_details(input_path) -> dict``
(``{}`` by default, in :class:`~dilcli.batch.jobs.Job`) is what ``--dry-run`` shows of
an input besides its outputs. A warning that is a :class:`~dilcli.batch.tasks.Note`
informs rather than alarms (shown with ``-v``, in the summary and the JSON lines).
"""

# The names of the former single module ``dilcli.batch``, for scripts that use them.
_MOVED = {
    "BatchError": "tasks", "InputFile": "tasks", "Task": "tasks", "TaskResult": "tasks",
    "BatchReport": "tasks", "find_inputs": "inputs", "check_output_folder": "inputs",
    "plan_tasks": "plan", "NAME_MAX": "plan", "Record": "record", "RECORD_NAME": "record",
    "Refused": "tasks", "OutputConflict": "tasks", "run_batch": "runner",
    "JsonLog": "runner", "remove_if_unused": "runner",
}  # fmt: skip


def __getattr__(name):
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(f"dilcli.batch.{_MOVED[name]}"), name)
    raise AttributeError(f"module 'dilcli.batch' has no attribute {name!r}")
