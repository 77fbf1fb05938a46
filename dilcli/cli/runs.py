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
    json_output,
    dry_run,
    scheduler,
    label,
    extensions=None,
):
    """Find inputs, plan, run and report a batch; exit with the batch's code.

    Every file command ends here, so inputs, naming, resume, workers, progress and
    error reporting behave the same for all. ``extensions`` (default: images) says
    which files in folders are inputs. ``json_output`` (``--json``) writes the JSON
    lines to stdout, as ``--log -`` does; ``dry_run`` says what would be done, and
    writes nothing.
    """
    from dilcli.batch.console import BatchConsole
    from dilcli.batch.inputs import check_output_folder, find_inputs
    from dilcli.batch.plan import plan_tasks
    from dilcli.batch.runner import STANDARD_STREAMS, JsonLog, remove_if_unused, run_batch
    from dilcli.batch.tasks import BatchError, Refused

    sniff = extensions is None  # images are recognised by content too
    if extensions is None:
        from dilcli.io.images import IMAGE_EXTENSIONS as extensions
    if dry_run and log_path not in (None, *STANDARD_STREAMS):
        raise click.UsageError("--dry-run writes nothing, no --log either; --json prints its plan")
    try:
        check_output_folder(out_dir, inputs, allow_inside=allow_output_in_input)
    except BatchError as error:
        raise click.UsageError(str(error)) from None
    created = not os.path.lexists(out_dir)
    if not dry_run:
        try:
            os.makedirs(out_dir, exist_ok=True)
        except OSError as error:
            reason = error.strerror or str(error)
            raise click.BadParameter(
                f"cannot create {out_dir}: {reason}", param_hint="'-o'"
            ) from None
    # Absolute from here on: workers elsewhere (other processes, a Dask cluster whose
    # workers run in other folders) must read and write the same files.
    out_dir = os.path.abspath(out_dir)
    found, skipped = find_inputs(
        inputs, recursive=recursive, extensions=extensions, sniff=sniff, exclude=out_dir
    )
    tasks = plan_tasks(found, out_dir, job)
    logs = []
    try:
        planned = [output for task in tasks for output in task.outputs]
        # One log per destination: --json and --log /dev/stdout are one stream.
        paths = (["-"] if json_output else []) + ([log_path] if log_path else [])
        paths = {STANDARD_STREAMS.get(path, path): path for path in reversed(paths)}.values()
        for path in paths:
            logs.append(JsonLog(path, inputs=found, outputs=planned, out_dir=out_dir))
    except BatchError as error:
        for log in logs:
            log.close()
        if created and not dry_run:
            remove_if_unused(out_dir)  # a refused log leaves no empty folder behind
        raise click.BadParameter(str(error), param_hint="'--log'") from None

    def log_result(result, sizes=None):
        try:
            for log in logs:
                log.write(result, sizes)
        except BatchError as error:  # stdout closed early (| head), a full disk
            raise click.ClickException(str(error)) from None

    def on_result(result):
        console.on_result(result)
        log_result(result)

    if dry_run:
        _report_dry_run(
            tasks, job, skipped, inputs, extensions, out_dir=out_dir, overwrite=overwrite,
            recursive=recursive, log_result=log_result, logs=logs, quiet=quiet,
        )  # fmt: skip
    with BatchConsole(len(tasks), quiet=quiet, verbose=verbose, label=label) as console:
        if verbose:
            _print_streamed_plans(tasks, job, console)
        for result in skipped:  # named at once if failed; skipped ones only with -v
            if result.status == "failed" or verbose:
                on_result(result)
            else:
                log_result(result)
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
                on_band=console.on_band,
            )
        except Refused as error:
            _close(logs, {"run": "refused", "why": str(error), "exit_code": 2})
            raise NothingRun(str(error)) from None
        except BatchError as error:
            _close(logs, None)
            raise click.ClickException(str(error)) from None
        except BaseException:
            _close(logs, None)
            raise
    report.results[:0] = skipped
    if created and not report.count("done"):
        remove_if_unused(out_dir)  # a run that wrote nothing leaves no folder behind
    exit_code = report.exit_code
    if not found and not skipped:
        console.print(_no_inputs_message(inputs, extensions, recursive), style="red")
        exit_code = 1
    else:
        console.summary(report, out_dir=out_dir)
    _close(logs, _summary(report, out_dir, exit_code))
    sys.exit(exit_code)


def _no_inputs_message(inputs, extensions, recursive):
    kinds = " ".join(sorted(extensions))
    hint = "" if recursive else "; add -r to look in sub-folders"
    return (
        f"error: no inputs found in {', '.join(map(str, inputs))} "
        f"(inputs are files ending {kinds}{hint})"
    )


def _summary(report, out_dir, exit_code):
    """The JSON summary of a run: counts, time, notes, where the outputs are, exit code."""
    summary = {
        # Not "status" nor "input": scripts that pick input lines by those keys keep working.
        "run": "interrupted" if report.interrupted else "finished",
        "done": report.count("done"),
        "skipped": report.count("skipped"),
        "failed": len(report.failures),
        "seconds": round(report.seconds, 4),
        "out_dir": out_dir,
        "exit_code": exit_code,
    }
    notes = sum(len(result.notes) for result in report.results)
    if notes:
        summary["notes"] = notes
    return summary


def _as_planned(result):
    """A result of the input search as a dry run words it: ``skipped`` is ``skip``."""
    import dataclasses

    return dataclasses.replace(result, status="skip") if result.status == "skipped" else result


def _close(logs, summary):
    """Write the summary (if any) to every JSON log, and close them."""
    from dilcli.batch.tasks import BatchError

    try:
        for log in logs:
            if summary is not None:
                log.write_summary(summary)
    except BatchError as error:
        raise click.ClickException(str(error)) from None
    finally:
        for log in logs:
            log.close()


def _report_dry_run(tasks, job, skipped, inputs, extensions, *, out_dir, overwrite, recursive,
                    log_result, logs, quiet):  # fmt: skip
    """``--dry-run``: what the run would write and why, on stdout (JSON with --json);
    exits as the run would refuse or fail before it starts (2: refused, 1: some input
    would fail, 0: all would run or be skipped). Nothing is written."""
    from dilcli.batch.console import display_path, plan_lines
    from dilcli.batch.runner import dry_run
    from dilcli.batch.tasks import Refused

    try:
        results, sizes, refusal = dry_run(tasks, job, out_dir=out_dir, overwrite=overwrite)
    except Refused as error:
        _close(logs, {"dry_run": True, "run": "refused", "why": str(error), "exit_code": 2})
        raise NothingRun(str(error)) from None
    # Files the search passed over (a FIFO in a folder) are skipped, by the run too.
    results[:0] = [_as_planned(result) for result in skipped]
    sizes[:0] = [[] for _ in skipped]
    counts = {status: 0 for status in ("compute", "skip", "refuse", "failed")}
    for result in results:
        counts[result.status] += 1
    exit_code = 2 if refusal else 1 if counts["refuse"] or counts["failed"] else 0
    if not results:
        click.echo(_no_inputs_message(inputs, extensions, recursive), err=True)
        exit_code = 1
    if logs:
        for result, result_sizes in zip(results, sizes):
            log_result(result, result_sizes)
    else:
        for line in plan_lines(results, sizes):
            click.echo(line)
    summary = {"dry_run": True, **counts, "out_dir": out_dir, "exit_code": exit_code}
    if refusal:
        summary["refused"] = refusal
    _close(logs, summary)
    if not quiet and results:
        words = {
            "compute": "to compute",
            "skip": "to skip",
            "refuse": "refused",
            "failed": "failed",
        }
        total = ", ".join(f"{n} {words[s]}" for s, n in counts.items() if n)
        where = display_path(out_dir, short=True)
        click.echo(f"dry run: {total}; nothing written (outputs would go to {where})", err=True)
    if refusal:
        click.echo(f"error: the run would not start: {refusal}", err=True)
    sys.exit(exit_code)


def _print_streamed_plans(tasks, job, console):
    """With -v, the plan of each input that will be computed in bands."""
    from dilcli.batch.console import display_path
    from dilcli.batch.streamed import describe

    for task in tasks:
        try:
            details = job.plan_details(task.input.path)
        except Exception:  # the run meets the same problem and reports it
            continue
        if details.get("streamed"):
            console.print(f"{display_path(task.input.name)}: {describe(details)}")
