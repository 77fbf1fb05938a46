"""The batch machinery as a user meets it: real processes, signals, workers, Dask."""

import filecmp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from dilcli.cli import cli
from dilcli.io.atomic import TEMP_PREFIX


def make_images(folder, count, size=(96, 128), seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        sub = folder / ("nested" if i % 3 == 0 else "")
        sub.mkdir(exist_ok=True)
        Image.fromarray((rng.random(size + (3,)) * 255).astype(np.uint8)).save(
            sub / f"img{i:02d}.png"
        )
    return folder


def dilcli(*args, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "dilcli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kwargs,
    )


def outputs(folder):
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    )


def assert_all_decodable(folder):
    for path in folder.rglob("*.png"):
        with Image.open(path) as image:
            image.load()


def assert_same_files(a, b):
    assert outputs(a) == outputs(b)
    for name in outputs(a):
        assert filecmp.cmp(a / name, b / name, shallow=False), name


def wait_for_outputs(folder, count, process, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if folder.is_dir() and len(list(folder.rglob("*_d*.png"))) >= count:
            return
        if process.poll() is not None:
            pytest.fail(f"dilcli ended early: {process.communicate()}")
        time.sleep(0.02)
    pytest.fail("no outputs appeared")


ARGS = ["convolve", "-r", "-k", "laplacian", "-d", "1,2,4,8,16,32"]


def test_nested_folder_with_bad_files_exit_1_good_outputs_decodable(tmp_path):
    source = make_images(tmp_path / "in", 5)
    (source / "nested" / "truncated.png").write_bytes((source / "img01.png").read_bytes()[:200])
    (source / "fake.jpg").write_bytes(b"this is text")
    process = dilcli(*ARGS, source, "-o", tmp_path / "out", "-j", "2")
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 1
    assert "Traceback" not in stderr + stdout
    assert "truncated.png" in stderr and "fake.jpg" in stderr
    assert "5 done, 0 skipped, 2 failed" in stderr
    assert len(outputs(tmp_path / "out")) == 5 * 6
    assert_all_decodable(tmp_path / "out")


def test_workers_give_byte_identical_outputs(tmp_path):
    source = make_images(tmp_path / "in", 6)
    runner = CliRunner()
    for jobs in ("1", "2"):
        result = runner.invoke(
            cli, [*ARGS, str(source), "-o", str(tmp_path / f"j{jobs}"), "-j", jobs]
        )
        assert result.exit_code == 0, result.output
    assert_same_files(tmp_path / "j1", tmp_path / "j2")


def test_sigkill_mid_run_then_rerun_completes_identically(tmp_path):
    source = make_images(tmp_path / "in", 48, size=(512, 512))
    reference = tmp_path / "reference"
    assert (
        CliRunner().invoke(cli, [*ARGS, str(source), "-o", str(reference), "-j", "1"]).exit_code
        == 0
    )
    out = tmp_path / "out"
    process = dilcli(*ARGS, source, "-o", out, "-j", "2")
    wait_for_outputs(out, 3, process)
    os.killpg(process.pid, signal.SIGKILL)  # the main process and its workers, like kill -9
    process.communicate(timeout=30)
    finished = outputs(out)
    assert 0 < len(finished) < len(outputs(reference))
    assert_all_decodable(out)  # a file under its final name is always complete
    rerun = dilcli(*ARGS, source, "-o", out, "-j", "2")
    _, stderr = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, stderr
    assert "skipped" in stderr
    assert_same_files(reference, out)
    assert not list(out.rglob(f"{TEMP_PREFIX}*"))


def test_a_killed_worker_costs_no_input_and_a_rerun_has_nothing_left(tmp_path):
    source = make_images(tmp_path / "in", 48, size=(512, 512))
    out = tmp_path / "out"
    process = dilcli(*ARGS, source, "-o", out, "-j", "2")
    wait_for_outputs(out, 2, process)
    # The pool's workers are children of the fork server, itself a child of dilcli.
    workers = [pid for child in _children(process.pid) for pid in _children(child)]
    assert workers, "no worker processes found"
    os.kill(workers[0], signal.SIGKILL)  # as the kernel's OOM killer would
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr  # the input it held ran again in a new worker
    assert "Traceback" not in stderr
    assert len(outputs(out)) == 48 * 6
    assert_all_decodable(out)
    rerun = dilcli(*ARGS, source, "-o", out, "-j", "2")
    _, stderr = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, stderr
    assert "0 done, 48 skipped" in stderr


def test_ctrl_c_stops_cleanly_with_exit_130(tmp_path):
    # Enough work that the batch is still running when the signal comes, even when
    # this test is starved of the CPU for seconds on a loaded machine.
    source = make_images(tmp_path / "in", 160, size=(512, 512))
    out = tmp_path / "out"
    process = dilcli(*ARGS, source, "-o", out, "-j", "2")
    wait_for_outputs(out, 2, process)
    os.killpg(process.pid, signal.SIGINT)  # what the terminal sends on Ctrl-C
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert_all_decodable(out)


def test_log_has_a_line_per_input_and_output(tmp_path):
    import json

    source = make_images(tmp_path / "in", 2)
    (source / "bad.png").write_bytes(b"nope")
    log = tmp_path / "run.jsonl"
    result = CliRunner().invoke(
        cli, [*ARGS, str(source), "-o", str(tmp_path / "o"), "-j", "1", "--log", str(log)]
    )
    assert result.exit_code == 1
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    inputs = [e for e in lines if "status" in e]
    assert sorted(e["status"] for e in inputs) == ["done", "done", "failed"]
    assert sum("output" in e for e in lines) == 2 * 6
    assert next(e for e in inputs if e["status"] == "failed")["reason"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_dask_cluster_gives_the_same_outputs_as_local(tmp_path):
    distributed = pytest.importorskip("distributed")
    source = make_images(tmp_path / "in", 4)
    local = tmp_path / "local"
    assert CliRunner().invoke(cli, [*ARGS, str(source), "-o", str(local), "-j", "1"]).exit_code == 0
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        result = CliRunner().invoke(
            cli,
            [
                *ARGS,
                str(source),
                "-o",
                str(tmp_path / "dask"),
                "--scheduler",
                cluster.scheduler_address,
            ],
        )
        assert result.exit_code == 0, result.output
        rerun = CliRunner().invoke(
            cli,
            [
                *ARGS,
                str(source),
                "-o",
                str(tmp_path / "dask"),
                "--scheduler",
                cluster.scheduler_address,
            ],
        )
        assert "0 done, 4 skipped" in rerun.output
    assert_same_files(local, tmp_path / "dask")


def test_local_runs_never_import_dask(tmp_path):
    source = make_images(tmp_path / "in", 3)
    code = (
        "import sys; from dilcli.cli import main; sys.argv = ['dilcli', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "loaded = [m for m in sys.modules if m.startswith(('dask', 'distributed'))]\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *ARGS, str(source), "-o", str(tmp_path / "o"), "-j", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def _children(pid):
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize("dry_run", [True, False])
def test_json_into_a_pipe_closed_early_is_one_line_not_a_traceback(tmp_path, dry_run):
    # `dilcli convolve ... --json | head -1`: the dry run's JSON lines went through a
    # path that let the log's BatchError out as a traceback
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(300):  # more JSON than a pipe holds (64 KiB), so the writer meets EPIPE
        np.save(folder / f"signal_with_a_long_name_{i:04d}.npy", np.zeros((4, 4), np.float32))
    args = ["convolve", folder, "-o", tmp_path / "out", "-d", "1-8", "--json"]
    process = dilcli(*args, *(["--dry-run"] if dry_run else []))
    first = process.stdout.readline()
    process.stdout.close()  # as head -1 does
    try:
        process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    errors = process.stderr.read()
    process.stderr.close()
    assert first.startswith('{"type": "input"')
    assert process.returncode == 1
    assert "Traceback" not in errors
    assert "Error: cannot write the log stdout: Broken pipe" in errors.splitlines()
    if dry_run:
        assert not (tmp_path / "out").exists()
