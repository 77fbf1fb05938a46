"""The one way every file command runs: find inputs, plan, run the batch, report, exit.

Inputs, naming, resume, workers, progress, error reporting and exit codes behave the
same for ``convolve``, ``context`` and ``signal`` because they all end here.
"""

from __future__ import annotations

import os
import sys

import click

from dilcli.cli.options import NothingRun


def run_file_batch(
    inputs,
    job,
    *,
    out_dir,
    recursive,
    jobs,
    overwrite,
    fail_fast,
    quiet,
    verbose,
    allow_output_in_input,
    log_path,
    scheduler,
    label,
    extensions=None,
):
    """Find inputs, plan, run and report a batch; exit with the batch's code.

    Every file command ends here, so inputs, naming, resume, workers, progress and
    error reporting behave the same for all. ``extensions`` (default: images) says
    which files in folders are inputs.
    """
    from dilcli.batch.console import BatchConsole
    from dilcli.batch.inputs import check_output_folder, find_inputs
    from dilcli.batch.plan import plan_tasks
    from dilcli.batch.runner import JsonLog, remove_if_unused, run_batch
    from dilcli.batch.tasks import BatchError, Refused

    sniff = extensions is None  # images are recognised by content too
    if extensions is None:
        from dilcli.io.images import IMAGE_EXTENSIONS as extensions
    try:
        check_output_folder(out_dir, inputs, allow_inside=allow_output_in_input)
    except BatchError as error:
        raise click.UsageError(str(error)) from None
    created = not os.path.lexists(out_dir)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as error:
        reason = error.strerror or str(error)
        raise click.BadParameter(f"cannot create {out_dir}: {reason}", param_hint="'-o'") from None
    # Absolute from here on: workers elsewhere (other processes, a Dask cluster whose
    # workers run in other folders) must read and write the same files.
    out_dir = os.path.abspath(out_dir)
    found, skipped = find_inputs(
        inputs, recursive=recursive, extensions=extensions, sniff=sniff, exclude=out_dir
    )
    tasks = plan_tasks(found, out_dir, job)
    try:
        planned = [output for task in tasks for output in task.outputs]
        log = (
            JsonLog(log_path, inputs=found, outputs=planned, out_dir=out_dir) if log_path else None
        )
    except BatchError as error:
        raise click.BadParameter(str(error), param_hint="'--log'") from None

    def on_result(result):
        console.on_result(result)
        if log:
            log.write(result)

    with BatchConsole(len(tasks), quiet=quiet, verbose=verbose, label=label) as console:
        if verbose:
            _print_streamed_plans(tasks, job, console)
        for result in skipped:  # named at once if failed; skipped ones only with -v
            if result.status == "failed" or verbose:
                on_result(result)
            elif log:
                log.write(result)
        try:
            report = run_batch(
                tasks,
                job,
                out_dir=out_dir,
                jobs=jobs or os.cpu_count() or 1,
                overwrite=overwrite,
                fail_fast=fail_fast,
                on_result=on_result,
                scheduler=scheduler,
            )
        except Refused as error:
            raise NothingRun(str(error)) from None
        except BatchError as error:
            raise click.ClickException(str(error)) from None
        finally:
            if log:
                log.close()
    report.results[:0] = skipped
    if created and not report.count("done"):
        remove_if_unused(out_dir)  # a run that wrote nothing leaves no folder behind
    if not found and not skipped:
        kinds = " ".join(sorted(extensions))
        hint = "" if recursive else "; add -r to look in sub-folders"
        console.print(
            f"error: no inputs found in {', '.join(map(str, inputs))} "
            f"(inputs are files ending {kinds}{hint})",
            style="red",
        )
        sys.exit(1)
    console.summary(report, out_dir=out_dir)
    sys.exit(report.exit_code)


def _print_streamed_plans(tasks, job, console):
    """With -v, the plan of each input that will be computed in bands."""
    if not hasattr(job, "plan_details"):
        return
    from dilcli.batch.console import display_path
    from dilcli.batch.streamed import describe

    for task in tasks:
        try:
            details = job.plan_details(task.input.path)
        except Exception:  # the run meets the same problem and reports it
            continue
        if details["streamed"]:
            console.print(f"{display_path(task.input.name)}: {describe(details)}")
