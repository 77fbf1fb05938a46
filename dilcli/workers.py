"""Where tasks run: in this process, in worker processes, or on a Dask cluster.

Each runner yields ``(task, result)`` as tasks end; :func:`execute` runs one task and
turns any failure into a one-line reason, so a bad input never stops a batch.
"""

from __future__ import annotations

import os
import signal
import time

from dilcli.batch import BatchError, TaskResult


def execute(job, task):
    """Run one task and turn every failure into a one-line reason (in the worker)."""
    started = time.perf_counter()
    try:
        for folder in {o.parent for o in task.outputs}:
            folder.mkdir(parents=True, exist_ok=True)
        _refuse_overwriting_input(task)
        notes = tuple(dict.fromkeys(job.run(task.input.path, task.outputs) or ()))
    except MemoryError:
        return TaskResult(task.input, "failed", reason="not enough memory")
    except Exception as error:  # a bad input must never stop the batch
        return TaskResult(task.input, "failed", reason=describe_error(error))
    seconds = time.perf_counter() - started
    return TaskResult(task.input, "done", task.outputs, seconds=seconds, warnings=notes)


def describe_error(error):
    """A one-line reason for ``error``; unexpected kinds are named as such."""
    text = " ".join(str(error).split())
    if isinstance(error, OSError) and error.strerror:
        from dilcli.console import display_path

        text = error.strerror + (f": {display_path(error.filename)}" if error.filename else "")
    expected = (ValueError, OSError, BatchError) + _image_errors()
    if isinstance(error, expected):
        return text or type(error).__name__
    return f"unexpected {type(error).__name__}: {text}"


def _image_errors():
    from dilcli.imageio import ImageError

    return (ImageError,)


def _refuse_overwriting_input(task):
    source = os.path.realpath(task.input.path)
    for output in task.outputs:
        if os.path.realpath(output) == source:
            raise BatchError(f"output {output} would overwrite the input")


def local_results(tasks, job, cores):
    """In this process, one task after another, each using ``cores`` cores."""
    from dilcli import _engine

    before = _engine._default_threads
    _engine.set_threads(cores)
    try:
        for task in tasks:
            yield task, execute(job, task)
    finally:
        _engine.set_threads(before)


def pool_results(tasks, job, jobs):
    import concurrent.futures as futures
    import multiprocessing

    # Not fork: this process may run threads (progress, engine, deflate). The fork
    # server imports the heavy modules once, and every worker starts with them.
    context = multiprocessing.get_context("forkserver" if os.name == "posix" else "spawn")
    if os.name == "posix":
        context.set_forkserver_preload(
            ["dilcli.jobs", "dilcli.conv", "dilcli.imageio", "PIL.Image"]
        )
    pool = futures.ProcessPoolExecutor(
        max_workers=min(jobs, len(tasks)), mp_context=context, initializer=_init_worker
    )
    submitted = {pool.submit(execute, job, task): task for task in tasks}
    finished = False
    try:
        for future in futures.as_completed(submitted):
            task = submitted[future]
            try:
                result = future.result()
            except futures.process.BrokenProcessPool:
                result = TaskResult(task.input, "failed", reason="worker process died (killed?)")
            yield task, result
        finished = True
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:  # interrupted or failing fast: stop the workers now
            workers = list((pool._processes or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for process in workers:
                process.terminate()
            for process in workers:
                process.join(timeout=10)


def _init_worker():
    # The main process owns Ctrl-C: it stops the pool and reports. Stopped by it
    # (SIGTERM), a worker unwinds, so a file being written is removed, not left.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    # Processes already fill the cores; threads inside each would only compete.
    from dilcli import _engine

    _engine.set_threads(1)


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def dask_results(tasks, job, address):
    """The same tasks on a Dask cluster; its workers must see the same files."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise BatchError("--scheduler needs Dask: pip install 'dilcli[dask]'") from None
    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError, ValueError) as error:
        raise BatchError(
            f"cannot reach the Dask scheduler at {address}: {describe_error(error)}"
        ) from None
    futures = {}
    try:
        futures = {client.submit(execute, job, task, pure=False): task for task in tasks}
        for future in as_completed(futures):
            task = futures[future]
            try:
                result = future.result()
            except Exception as error:  # a worker lost mid-task
                result = TaskResult(
                    task.input, "failed", reason=f"Dask worker failed: {describe_error(error)}"
                )
            yield task, result
    finally:
        client.cancel(list(futures))
        client.close()
