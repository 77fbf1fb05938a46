"""Where tasks run: in this process, in worker processes, or on a Dask cluster.

Each runner yields ``(task, result)`` as tasks end; :func:`execute` runs one task and
turns any failure into a one-line reason, so a bad input never stops a batch.

A batch ends however it is stopped: Ctrl-C (exit 130) and SIGTERM (exit 143, from
``timeout``, a job scheduler, ``docker stop``) stop the workers and report; worker
processes die with the main process even when it is killed outright.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

from dilcli.batch.tasks import BatchError, Refused, TaskResult
from dilcli.io.atomic import commit_guard

# Seconds a Dask cluster may have no live worker before the remaining tasks fail.
DASK_NO_WORKER_TIMEOUT = 60.0


class Terminated(KeyboardInterrupt):
    """SIGTERM during a batch: unwinds like Ctrl-C, but the exit code is 143."""

    signum = signal.SIGTERM


@contextlib.contextmanager
def stop_on_sigterm():
    """While inside, SIGTERM raises :class:`Terminated` in the main thread, once.

    A second SIGTERM is ignored, so the first one's cleanup (stopping workers,
    removing their temporaries) is not itself cut short. Outside the main thread
    (no signal handlers there) this does nothing.
    """
    raised = False

    def handler(signum, frame):
        nonlocal raised
        if not raised:
            raised = True
            raise Terminated

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def execute(job, task):
    """Run one task and turn every failure into a one-line reason (in the worker)."""
    started = time.perf_counter()
    try:
        for folder in {o.parent for o in task.outputs}:
            folder.mkdir(parents=True, exist_ok=True)
        _refuse_overwriting_input(task)
        with commit_guard(_run_lives(task.guard) if task.guard else None):
            notes = tuple(dict.fromkeys(job.run(task.input.path, task.outputs) or ()))
    except Exception as error:  # a bad input must never stop the batch
        return TaskResult(task.input, "failed", reason=describe_error(error))
    seconds = time.perf_counter() - started
    return TaskResult(task.input, "done", task.outputs, seconds=seconds, warnings=notes)


def _run_lives(marker):
    return lambda: os.path.exists(marker)


def describe_error(error):
    """A one-line reason for ``error``; unexpected kinds are named as such."""
    if isinstance(error, MemoryError):
        return "not enough memory"
    text = " ".join(str(error).split())
    if isinstance(error, OSError) and error.strerror:
        from dilcli.batch.console import display_path

        text = error.strerror + (f": {display_path(error.filename)}" if error.filename else "")
    expected = (ValueError, OSError, BatchError) + _image_errors()
    if isinstance(error, expected):
        return text or type(error).__name__
    return f"unexpected {type(error).__name__}: {text}"


def _image_errors():
    from dilcli.io.images import ImageError

    return (ImageError,)


def _refuse_overwriting_input(task):
    source = os.path.realpath(task.input.path)
    for output in task.outputs:
        if os.path.realpath(output) == source:
            raise BatchError(f"output {output} would overwrite the input")


def local_results(tasks, job, cores):
    """In this process, one task after another, each using ``cores`` cores."""
    from dilcli.core import parallel

    before = parallel._default_threads
    parallel.set_threads(cores)
    try:
        for task in tasks:
            yield task, execute(job, task)
    finally:
        parallel.set_threads(before)


# --- worker processes ---------------------------------------------------------------


def pool_results(tasks, job, jobs):
    """In ``jobs`` worker processes, each single-threaded, one task at a time.

    Each worker has its own pipe and holds one task, so a worker that dies (the OOM
    killer, a crash in a decoder) costs only the input it held: that input is tried
    once more in a fresh worker, and fails if it kills that one too. The dead worker
    is replaced; every other input runs as usual.
    """
    from collections import deque
    from multiprocessing.connection import wait

    context = _worker_context()
    queue = deque(tasks)
    workers = []
    finished = False
    try:
        workers = [_Worker(context, job) for _ in range(min(jobs, len(tasks)))]
        while True:
            for i, worker in enumerate(workers):
                if worker.task is None and queue:
                    if not worker.process.is_alive():  # died idle: it held nothing
                        worker.stop()
                        worker = workers[i] = _Worker(context, job)
                    worker.give(queue.popleft())
            busy = [w for w in workers if w.task is not None]
            if not busy:
                break
            ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
            for worker in busy:
                if worker.conn in ready:
                    result = worker.receive()
                    if result is not None:
                        task, worker.task = worker.task, None
                        yield task, result
                        continue
                elif worker.process.sentinel not in ready:
                    continue
                # The worker died holding a task: retry it once in a fresh worker.
                task, retried = worker.task, worker.retry
                worker.stop()
                workers.remove(worker)
                if retried:
                    if queue:
                        workers.append(_Worker(context, job))
                    yield task, TaskResult(task.input, "failed", reason=worker.death())
                else:
                    fresh = _Worker(context, job)
                    fresh.give(task, retry=True)
                    workers.append(fresh)
        finished = True
    finally:
        if finished:  # idle workers leave when their pipe closes
            for worker in workers:
                worker.conn.close()
            for worker in workers:
                worker.process.join(timeout=10)
        # Interrupted or failing fast: stop them now, all at once. Stopped by SIGTERM,
        # a worker unwinds, so the file it was writing is removed; the batch removes
        # those of any that had to be killed.
        for worker in workers:
            if worker.process.is_alive():
                worker.process.terminate()
        for worker in workers:
            worker.stop()


class _Worker:
    """A worker process, the pipe to it, and the task it holds (None when idle)."""

    def __init__(self, context, job):
        self.conn, child = context.Pipe()
        # The job goes once, with the process; tasks and results go by the pipe.
        self.process = context.Process(target=_serve, args=(child, job), daemon=True)
        self.process.start()
        child.close()
        self.task, self.retry = None, False

    def give(self, task, retry=False):
        self.task, self.retry = task, retry
        with contextlib.suppress(OSError):  # it just died: its sentinel will say so
            self.conn.send(task)

    def receive(self):
        """The result it sent, or None if it died (its pipe closed) instead."""
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            return None

    def stop(self):
        """Stop it if alive: SIGTERM, then SIGKILL after a grace period."""
        self.conn.close()
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        # Joined means reaped, unless the fork server died first (a SIGTERM to the
        # whole group): then the worker is still being killed, and its temporary
        # may be removed only once it is gone.
        from dilcli.io.atomic import _alive

        deadline = time.monotonic() + 5
        while _alive(self.process.pid) and time.monotonic() < deadline:
            time.sleep(0.01)

    def death(self):
        code = self.process.exitcode
        if code == -signal.SIGKILL:
            return "worker process died (killed, out of memory?)"
        if code is not None and code < 0:
            return f"worker process died ({signal.Signals(-code).name})"
        return f"worker process died (exit code {code})"


def _worker_context():
    import multiprocessing

    if os.name != "posix":
        return multiprocessing.get_context("spawn")
    # Not fork: this process may run threads (progress, engine, deflate). The fork
    # server imports the heavy modules once, and every worker starts with them.
    context = multiprocessing.get_context("forkserver")
    preload = ["dilcli.batch.jobs", "dilcli.core.conv", "dilcli.io.images", "PIL.Image"]
    _start_forkserver(context, preload)
    return context


def _start_forkserver(context, preload):
    """Start the fork server so that it imports dilcli from the installation.

    It runs as ``python -c``, which puts the working folder first on ``sys.path``:
    a ``dilcli`` folder there (say, the parent of a clone) would be imported as an
    empty namespace package, and every worker would fail. Python 3.11+ leaves the
    working folder out under ``PYTHONSAFEPATH``; on 3.10 the fork server then imports
    nothing of dilcli, and each worker imports it with this process's ``sys.path``.
    """
    from multiprocessing import forkserver

    if sys.version_info < (3, 11):
        if os.path.lexists("dilcli"):
            preload = [name for name in preload if not name.startswith("dilcli")]
        context.set_forkserver_preload(preload)
        forkserver.ensure_running()
        return
    context.set_forkserver_preload(preload)
    before = os.environ.get("PYTHONSAFEPATH")
    os.environ["PYTHONSAFEPATH"] = "1"
    try:
        forkserver.ensure_running()
    finally:
        if before is None:
            del os.environ["PYTHONSAFEPATH"]
        else:
            os.environ["PYTHONSAFEPATH"] = before


def _serve(conn, job):
    """A worker's life: take a task, send back its result, until the pipe closes."""
    _init_worker()
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        conn.send(execute(job, task))


def _init_worker():
    # The main process owns Ctrl-C: it stops the pool and reports. Stopped by it
    # (SIGTERM), a worker unwinds, so a file being written is removed, not left.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    _die_with_parent()
    # Processes already fill the cores; threads inside each would only compete.
    from dilcli.core import parallel

    parallel.set_threads(1)


def _die_with_parent():
    """On Linux, have the kernel kill this worker when its parent ends.

    The parent is the fork server, which ends when the main process does, even if
    that one is killed outright (SIGKILL): so no worker outlives the main process.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, ctypes.c_ulong(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


# --- Dask ---------------------------------------------------------------------------


def dask_results(tasks, job, address, *, on_band=None):
    """The same tasks on a Dask cluster; its workers must see the same files.

    If the cluster has no live worker for ``DILCLI_DASK_NO_WORKER_TIMEOUT`` seconds
    (an environment variable; default 60), the remaining tasks fail with that
    reason and the batch ends, instead of waiting for workers that never come.
    ``on_band(input path, bands done, bands)`` is called (on the client's thread) as
    the workers report the bands of this batch's streamed inputs.
    """
    try:
        from distributed import Client
    except ImportError:
        raise BatchError("--scheduler needs Dask: pip install 'dilcli[dask]'") from None
    # asyncio stays silent for the rest of the process: it reports the client's
    # abandoned tasks ("Task exception was never retrieved ... AllExit") when they are
    # collected, as late as at exit, after the summary.
    _silence_for_good("asyncio")
    try:
        client = Client(address, timeout="10s")
    except Exception as error:  # OSError, TimeoutError, ValueError, TypeError (tls://)
        raise Refused(
            f"cannot reach the Dask scheduler at {address}: {' '.join(str(error).split())}"
        ) from None
    limit = _no_worker_timeout()
    futures = {}
    # Dask's own warnings and tracebacks (a lost worker, a rescheduled key) stay off the
    # terminal while the batch runs: our one-line reasons say it all.
    with _silenced("distributed"):
        try:
            if on_band is not None:
                _subscribe_bands(client, tasks, on_band)
            yield from _dask_loop(client, job, tasks, futures, limit)
        finally:
            client.cancel(list(futures))
            client.close()


def _subscribe_bands(client, tasks, on_band):
    """Pass the workers' band reports (Dask events) of ``tasks``' inputs to ``on_band``."""
    from dilcli.batch.streamed import BAND_TOPIC

    inputs = {str(task.input.path) for task in tasks}

    def handler(event):
        with contextlib.suppress(Exception):  # progress never stops a batch
            path, done, total = event[1]
            if path in inputs:
                on_band(path, done, total)

    client.subscribe_topic(BAND_TOPIC, handler)


def _dask_loop(client, job, tasks, futures, limit):
    """Submit ``tasks`` (filling ``futures``) and yield results as they end."""
    from distributed import as_completed

    futures.update({client.submit(execute, job, task, pure=False): task for task in tasks})
    remaining = dict(futures)
    ended = as_completed(futures)
    seen = checked = time.monotonic()  # when a worker was last known alive
    while remaining:
        got = False
        for future in ended.next_batch(block=False):
            result = _dask_result(future, futures[future])
            if result is None:  # its worker died before the result left it
                ended.add(future)  # it runs again, when a worker can take it
                continue
            got = True
            yield remaining.pop(future), result
        now = time.monotonic()
        if got:
            seen = now
            continue
        if now - checked >= 1:
            checked = now
            if _has_workers(client):
                seen = now
            elif now - seen >= limit:
                reason = f"no Dask worker alive for {limit:g} s"
                for task in remaining.values():
                    yield task, TaskResult(task.input, "failed", reason=reason)
                return
        time.sleep(0.1)


def _dask_result(future, task):
    """The task's result; None if it cannot be fetched now (the task is rerun)."""
    import asyncio

    try:
        return future.result(timeout=5)
    except (TimeoutError, asyncio.TimeoutError):
        return None
    except Exception as error:  # a worker lost mid-task
        return TaskResult(
            task.input, "failed", reason=f"Dask worker failed: {describe_error(error)}"
        )


@contextlib.contextmanager
def _silenced(*names):
    """While inside, the named loggers and their children print nothing.

    Children too: Dask's logging configuration gives some (``distributed.client``)
    levels of their own, which the parent's level does not override.
    """
    import logging

    known = list(logging.root.manager.loggerDict)
    wanted = {n for n in known for name in names if n == name or n.startswith(name + ".")}
    loggers = [logging.getLogger(name) for name in sorted(wanted | set(names))]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _silence_for_good(name):
    """The logger ``name`` prints nothing more in this process."""
    import logging

    logging.getLogger(name).setLevel(logging.CRITICAL + 1)


def _has_workers(client):
    try:
        return bool(client.nthreads())
    except Exception:  # the scheduler is gone too: no worker reachable
        return False


def _no_worker_timeout():
    text = os.environ.get("DILCLI_DASK_NO_WORKER_TIMEOUT", "")
    try:
        value = float(text)
    except ValueError:
        return DASK_NO_WORKER_TIMEOUT
    return value if value > 0 else DASK_NO_WORKER_TIMEOUT
