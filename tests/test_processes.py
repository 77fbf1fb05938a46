"""Processes that end: signals, killed workers, a killed main process, lost Dask workers.

Run as a user would: ``python -m dilcli ... -j 2`` in its own session (process group),
so that every process it started can be found, and must be gone when it ends.
"""

import contextlib
import filecmp
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dilcli import batch
from dilcli.io.atomic import TEMP_PREFIX, atomic_write

ARGS = ["convolve", "-k", "laplacian", "-d", "1,2,4,8,16,32"]
SUMMARY = "interrupted: finished outputs are kept; rerun the command to resume"


def make_images(folder, count, size):
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True)
    for i in range(count):
        pixels = (rng.random(size + (3,)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i:02d}.png")
    return folder


SLOW_COUNT = 100


@pytest.fixture(scope="module")
def slow_source(tmp_path_factory):
    """Enough large images that a signal lands while workers are busy, even when this
    test process is starved of the CPU for seconds on a loaded machine."""
    return make_images(tmp_path_factory.mktemp("slow") / "in", SLOW_COUNT, (512, 512))


@pytest.fixture(scope="module")
def small_source(tmp_path_factory):
    return make_images(tmp_path_factory.mktemp("small") / "in", 5, (48, 64))


def dilcli(*args, cwd=None, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "dilcli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: pgid == pid
        cwd=cwd,
        env=env,
    )


def outputs(folder):
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    )


def wait_for_outputs(folder, count, process, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if folder.is_dir() and len(list(folder.glob("*_d*.png"))) >= count:
            return
        if process.poll() is not None:
            pytest.fail(f"dilcli ended early: {process.communicate()}")
        time.sleep(0.02)
    pytest.fail("no outputs appeared")


def _stat(pid):
    """(state, ppid, pgrp) of a process from /proc, or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1]), int(fields[2])


def _processes():
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def live_group_members(pgid):
    """Processes of the group that still run (a zombie nobody reaped runs no code)."""
    found = []
    for pid in _processes():
        info = _stat(pid)
        if info and info[2] == pgid and info[0] != "Z":
            found.append(pid)
    return found


def assert_group_ends(pgid, grace=5.0):
    deadline = time.monotonic() + grace
    while live_group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = live_group_members(pgid)
    assert not left, [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in left]
    with contextlib.suppress(ProcessLookupError):  # only zombies, if anything, remain
        os.killpg(pgid, 0)


def children(pid):
    return [p for p in _processes() if (info := _stat(p)) and info[1] == pid]


def counts(stderr):
    """(done, skipped, failed) from the summary line."""
    found = re.findall(r"(\d+) done, (\d+) skipped, (\d+) failed", stderr)
    assert found, stderr
    return tuple(map(int, found[-1]))


def assert_all_decodable(folder):
    for path in folder.rglob("*.png"):
        with Image.open(path) as image:
            image.load()


@pytest.mark.parametrize(
    "target, jobs", [("main", "2"), ("group", "2"), ("main", "1")], ids=["main", "group", "j1"]
)
def test_sigterm_stops_the_batch_like_ctrl_c_with_exit_143(tmp_path, slow_source, target, jobs):
    out = tmp_path / "out"
    process = dilcli(*ARGS, slow_source, "-o", out, "-j", jobs)
    wait_for_outputs(out, 2, process)
    if target == "main":  # as `timeout` and `docker stop` do
        process.send_signal(signal.SIGTERM)
    else:  # as a job scheduler may: every process of the job
        os.killpg(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert SUMMARY in stderr and "Traceback" not in stderr, stderr
    assert counts(stderr)[1:] == (0, 0)
    assert_group_ends(process.pid)
    assert not list(out.rglob(f"{TEMP_PREFIX}*"))
    finished = outputs(out)
    assert 0 < len(finished) < SLOW_COUNT * 6
    assert_all_decodable(out)


def test_a_killed_worker_costs_only_the_input_it_held(tmp_path, slow_source):
    out = tmp_path / "out"
    process = dilcli(*ARGS, slow_source, "-o", out, "-j", "2")
    wait_for_outputs(out, 2, process)
    # The workers are children of the fork server, itself a child of dilcli.
    workers = [pid for child in children(process.pid) for pid in children(child)]
    assert len(workers) == 2, workers
    os.kill(workers[0], signal.SIGKILL)  # as the kernel's OOM killer would
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert f"{SLOW_COUNT} done, 0 skipped, 0 failed" in stderr, stderr
    assert len(outputs(out)) == SLOW_COUNT * 6
    assert not list(out.rglob(f"{TEMP_PREFIX}*"))
    assert_all_decodable(out)
    assert_group_ends(process.pid)


class KillingJob:
    """Writes ``<stem>.txt``; ``poison`` kills its worker every time, ``once`` the first time.

    Every attempt is counted in ``attempts.jsonl``, beside the inputs.
    """

    def __init__(self, log):
        self.log = str(log)

    def output_names(self, stem, suffix, frames=None):
        return [f"{stem}.txt"]

    def signature(self):
        return {"job": "killing"}

    def run(self, input_path, output_paths):
        name = Path(input_path).name
        with open(self.log, "a") as log:
            log.write(json.dumps(name) + "\n")
        attempts = Path(self.log).read_text().splitlines().count(json.dumps(name))
        if name == "poison.txt" or (name == "once.txt" and attempts == 1):
            os.kill(os.getpid(), signal.SIGKILL)
        with atomic_write(output_paths[0]) as handle:
            handle.write(Path(input_path).read_bytes())


def test_an_input_that_kills_its_worker_is_retried_once_then_fails_alone(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    names = ["poison.txt", "once.txt"] + [f"plain{i}.txt" for i in range(6)]
    for name in names:
        (source / name).write_text(name)
    log = tmp_path / "attempts.jsonl"
    job = KillingJob(log)
    inputs, _ = batch.find_inputs([source], extensions={".txt"}, sniff=False)
    tasks = batch.plan_tasks(inputs, tmp_path / "out", job)
    report = batch.run_batch(tasks, job, out_dir=tmp_path / "out", jobs=2)
    status = {r.input.path.name: (r.status, r.reason) for r in report.results}
    assert status.pop("poison.txt") == ("failed", "worker process died (killed, out of memory?)")
    assert set(status.values()) == {("done", "")}
    assert len(status) == len(names) - 1
    assert report.exit_code == 1 and not report.interrupted
    attempts = [json.loads(line) for line in log.read_text().splitlines()]
    assert attempts.count("poison.txt") == 2 and attempts.count("once.txt") == 2
    assert all(attempts.count(name) == 1 for name in names[2:])
    for name in names[1:]:
        assert (tmp_path / "out" / name).read_text() == name


def test_children_end_when_the_main_process_is_killed(tmp_path, slow_source):
    out = tmp_path / "out"
    process = dilcli(*ARGS, slow_source, "-o", out, "-j", "2")
    wait_for_outputs(out, 2, process)
    workers = [pid for child in children(process.pid) for pid in children(child)]
    assert len(workers) == 2, workers
    process.kill()  # SIGKILL: no handler, no cleanup in the main process
    process.communicate(timeout=30)
    assert_group_ends(process.pid)
    assert_all_decodable(out)


def test_a_dilcli_folder_in_the_working_folder_is_not_imported_by_workers(tmp_path, small_source):
    # The parent of a clone named dilcli: ./dilcli is a folder without __init__.py.
    script = Path(sys.executable).with_name("dilcli")
    if not script.is_file():
        pytest.skip("no dilcli script beside the interpreter")
    parent = tmp_path / "parent"
    (parent / "dilcli").mkdir(parents=True)
    done = subprocess.run(
        [str(script), *ARGS, str(small_source), "-o", "out", "-j", "2"],
        cwd=parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "5 done, 0 skipped, 0 failed" in done.stderr
    assert len(outputs(parent / "out")) == 5 * 6


# --- Dask ---------------------------------------------------------------------------


DASK_WARNINGS = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning",
    "ignore::ResourceWarning",
    "ignore::pytest.PytestUnraisableExceptionWarning",
)


@pytest.fixture
def dask_cluster(tmp_path):
    """A scheduler and one worker (no nanny), each a process, on 127.0.0.1 only.

    The worker runs in a folder of its own; yields (address, worker, its folder).
    """
    pytest.importorskip("distributed")
    scheduler_file = tmp_path / "scheduler.json"
    worker_folder = tmp_path / "worker-cwd"
    worker_folder.mkdir()
    common = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    started = []
    try:
        started.append(
            subprocess.Popen(
                [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1"]
                + ["--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file)],
                start_new_session=True,
                **common,
            )
        )
        deadline = time.monotonic() + 60
        address = None
        while address is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError, KeyError):
                address = json.loads(scheduler_file.read_text())["address"]
            time.sleep(0.1)
        assert address, "the Dask scheduler did not start"
        worker = subprocess.Popen(
            [sys.executable, "-m", "dask", "worker", "--scheduler-file", str(scheduler_file)]
            + ["--host", "127.0.0.1", "--no-nanny", "--nthreads", "1", "--no-dashboard"]
            + ["--local-directory", str(tmp_path / "dask-space")],
            cwd=worker_folder,
            start_new_session=True,
            **common,
        )
        started.append(worker)
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(1, timeout=60)
        yield address, worker, worker_folder
    finally:
        for process in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


@DASK_WARNINGS
def test_dask_with_relative_paths_writes_where_the_client_says(
    tmp_path, small_source, dask_cluster
):
    address, _, worker_folder = dask_cluster
    here = tmp_path / "client-cwd"
    (here / "in").mkdir(parents=True)
    for image in small_source.iterdir():
        (here / "in" / image.name).write_bytes(image.read_bytes())
    local = subprocess.run(
        [sys.executable, "-m", "dilcli", *ARGS, "in", "-o", "local", "-j", "1"],
        cwd=here,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert local.returncode == 0, local.stderr
    remote = subprocess.run(
        [sys.executable, "-m", "dilcli", *ARGS, "in", "-o", "out", "--scheduler", address],
        cwd=here,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert remote.returncode == 0, remote.stderr
    assert "5 done, 0 skipped, 0 failed" in remote.stderr
    assert outputs(here / "out") == outputs(here / "local") and len(outputs(here / "out")) == 30
    for name in outputs(here / "out"):
        assert filecmp.cmp(here / "out" / name, here / "local" / name, shallow=False), name
    assert not list(worker_folder.iterdir())


@DASK_WARNINGS
def test_dask_batch_ends_when_no_worker_is_alive(tmp_path, slow_source, dask_cluster):
    address, worker, _ = dask_cluster
    out = tmp_path / "out"
    env = dict(os.environ, DILCLI_DASK_NO_WORKER_TIMEOUT="5")
    process = dilcli(*ARGS, slow_source, "-o", out, "--scheduler", address, env=env)
    wait_for_outputs(out, 7, process)  # the first input's 6 outputs, and more
    os.killpg(worker.pid, signal.SIGKILL)  # the cluster's only worker
    killed = time.monotonic()
    _, stderr = process.communicate(timeout=60)
    assert time.monotonic() - killed < 30
    assert process.returncode == 1, stderr
    assert "Traceback" not in stderr and "WARNING" not in stderr, stderr
    # Every input left is failed with a reason: the timeout, or the lost worker itself
    # (which one comes first depends on the scheduler's timing).
    reasons = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert reasons and all(
        "no Dask worker alive for 5 s" in line or "Dask worker failed" in line for line in reasons
    ), stderr
    done, skipped, failed = counts(stderr)
    assert skipped == 0 and failed > 0 and done + failed == SLOW_COUNT  # none left waiting
    assert_group_ends(process.pid)


def test_dask_loggers_with_levels_of_their_own_are_silenced_too():
    # Dask's logging configuration gives distributed.client a level of its own: its
    # "Couldn't gather 1 keys, rescheduling" once reached the terminal mid-batch.
    import logging

    pytest.importorskip("distributed")
    from dilcli.batch.workers import _silenced

    client_log = logging.getLogger("distributed.client")
    before = client_log.level
    with _silenced("distributed", "asyncio"):
        assert not client_log.isEnabledFor(logging.CRITICAL)
        assert not logging.getLogger("distributed.worker").isEnabledFor(logging.CRITICAL)
    assert client_log.level == before  # restored after the batch


def test_a_dask_batch_leaves_asyncio_silent_for_the_rest_of_the_process(dask_cluster):
    # Dask's abandoned tasks are reported by asyncio when collected, as late as at exit
    # ("Task exception was never retrieved ... AllExit"): a traceback after the summary.
    import logging

    from dilcli.batch import workers

    address, _, _ = dask_cluster
    asyncio_log = logging.getLogger("asyncio")
    before = asyncio_log.level
    try:
        assert list(workers.dask_results([], None, address)) == []
        assert not asyncio_log.isEnabledFor(logging.CRITICAL)
    finally:
        asyncio_log.setLevel(before)
