"""Promises of a batch under abuse, as a user would type them.

A rerun never reports a wrong file as done; runs with other parameters or inputs never
silently replace each other's files; nothing is written outside ``-o``; walks end;
the record and the log are never an input and never followed through a link; integer
options are checked when parsed. Each test checks the bytes on disk and the exit code.
"""

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import run_cli as run
from PIL import Image

from dilcli import batch
from dilcli.cli import cli


def files(folder):
    """{relative path: bytes} of every file under ``folder`` but the record."""
    folder = Path(folder)
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink() and p.name != batch.RECORD_NAME
    }


def tree(folder):
    """Every path under ``folder`` (links not followed)."""
    return sorted(
        os.path.relpath(os.path.join(root, name), folder)
        for root, dirs, names in os.walk(folder)
        for name in dirs + names
    )


@pytest.fixture
def photo(tmp_path, rng):
    path = tmp_path / "camera.png"
    Image.fromarray((rng.random((24, 32)) * 255).astype(np.uint8)).save(path)
    return path


def reference(tmp_path, inputs, *options):
    """Outputs of the command in a fresh folder: what a correct run leaves."""
    out = tmp_path / f"ref{len(list(tmp_path.glob('ref*')))}"
    assert run("convolve", *inputs, "-o", out, "-j", "1", *options).exit_code == 0
    return files(out)


@pytest.mark.parametrize(
    "changed",
    [
        ("--gain", "4"),
        ("--map", "signed"),
        ("--mode", "valid"),
        ("--boundary", "wrap"),
        ("--bits", "16"),
    ],
)
def test_a_rerun_with_other_parameters_refuses_and_the_first_stays_right(tmp_path, photo, changed):
    out = tmp_path / "out"
    first = ("convolve", photo, "-o", out, "-d", "1,2", "-j", "1")
    expected = reference(tmp_path, [photo], "-d", "1,2")
    assert run(*first).exit_code == 0
    refused = run(*first, *changed)
    assert refused.exit_code == 2
    assert "camera_laplacian_d1.png and 1 more outputs hold" in refused.output
    assert "--overwrite" in refused.output and len(refused.output.strip().splitlines()) == 1
    assert files(out) == expected  # nothing was touched
    again = run(*first)
    assert "0 done, 1 skipped" in again.output and files(out) == expected
    # --overwrite replaces; then the first command refuses in turn, and its own
    # --overwrite restores exactly the first outputs
    assert run(*first, *changed, "--overwrite").exit_code == 0
    assert run(*first).exit_code == 2
    assert run(*first, "--overwrite").exit_code == 0 and files(out) == expected


def test_two_custom_kernels_never_share_outputs(tmp_path, photo):
    out = tmp_path / "out"
    one = ("convolve", photo, "-o", out, "-d", "1", "-k", "1,0;0,-1")
    assert run(*one).exit_code == 0
    first = files(out)
    assert run("convolve", photo, "-o", out, "-d", "1", "-k", "0,1;-1,0").exit_code == 0
    both = files(out)
    assert set(first) < set(both) and len(both) == 2  # each kernel its own name
    assert "1 skipped" in run(*one).output
    assert files(out) == both


def test_an_input_alone_never_takes_over_a_namesake_s_outputs(tmp_path, rng):
    for folder, seed in (("d1", 1), ("d2", 2)):
        (tmp_path / folder).mkdir()
        pixels = np.random.default_rng(seed).random((16, 16)) * 255
        Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / folder / "x.png")
    both = [tmp_path / "d1" / "x.png", tmp_path / "d2" / "x.png"]
    out = tmp_path / "out"
    assert run("convolve", *both, "-o", out, "-d", "1").exit_code == 0
    expected = files(out)
    assert sorted(expected) == ["x_2_laplacian_d1.png", "x_laplacian_d1.png"]
    alone = run("convolve", both[1], "-o", out, "-d", "1")
    assert alone.exit_code == 2 and "d1/x.png" in alone.output
    assert files(out) == expected
    assert "0 done, 2 skipped" in run("convolve", *both, "-o", out, "-d", "1").output


def test_an_output_changed_on_disk_is_recomputed_not_reported_done(tmp_path, photo):
    out = tmp_path / "out"
    args = ("convolve", photo, "-o", out, "-d", "1,2")
    assert run(*args).exit_code == 0
    expected = files(out)
    target = out / "camera_laplacian_d2.png"
    target.write_bytes(expected["camera_laplacian_d1.png"])  # another image, same name
    result = run(*args)
    assert "1 done, 0 skipped" in result.output and files(out) == expected
    # the same bytes with another time (a copied folder) still count as done
    os.utime(target, ns=(1, 1))
    assert "0 done, 1 skipped" in run(*args).output
    # same size, same times, other bytes: the change time gives it away
    info = os.stat(target)
    data = bytearray(target.read_bytes())
    data[-20] ^= 0xFF
    target.write_bytes(bytes(data))
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert "1 done" in run(*args).output and files(out) == expected


def test_a_changed_input_is_recomputed_not_refused(tmp_path, photo, rng):
    out = tmp_path / "out"
    args = ("convolve", photo, "-o", out, "-d", "1")
    assert run(*args).exit_code == 0
    Image.fromarray((rng.random((24, 32)) * 255).astype(np.uint8)).save(photo)
    assert "1 done" in run(*args).output
    assert files(out) == reference(tmp_path, [photo], "-d", "1")


def test_a_second_run_into_a_busy_folder_stops_at_once(tmp_path, photo):
    out = tmp_path / "out"
    out.mkdir()
    with open(out / batch.RECORD_NAME, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = run("convolve", photo, "-o", out, "-d", "1")
    assert result.exit_code == 2 and "another dilcli run is writing into" in result.output
    assert files(out) == {}


def test_concurrent_runs_leave_a_state_each_rerun_repairs(tmp_path, image_folder):
    out = tmp_path / "out"
    base = [sys.executable, "-m", "dilcli", "convolve", str(image_folder), "-o", str(out)]
    commands = [base + ["-d", "1,2,3,4", "-j", "1"], base + ["-d", "1,2,3,4", "--gain", "3"]]
    runs = [subprocess.Popen(c, stderr=subprocess.PIPE, text=True) for c in commands]
    codes = []
    for process in runs:
        with process:
            codes.append((process.wait(timeout=120), process.communicate()[1]))
    assert sorted(code for code, _ in codes) in ([0, 0], [0, 2]), codes
    for command in commands:
        rerun = subprocess.run(command + ["--overwrite"], capture_output=True, timeout=120)
        assert rerun.returncode == 0
        expected = reference(tmp_path, [image_folder], *command[command.index("-d") :])
        assert files(out) == expected
        again = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0 and "0 done, 4 skipped" in again.stderr


def test_a_glob_with_dot_dot_writes_inside_the_output_folder(tmp_path, photo):
    (tmp_path / "in" / "a").mkdir(parents=True)
    before = tree(tmp_path)
    result = run("convolve", "in/*/../../*.png", "-o", "out", "-d", "1", cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert sorted(set(tree(tmp_path)) - set(before)) == [
        "out",
        f"out/{batch.RECORD_NAME}",
        "out/camera_laplacian_d1.png",
    ]


def test_a_recursive_glob_never_takes_its_own_outputs_as_inputs(tmp_path, photo):
    (tmp_path / "sub").mkdir()
    photo.rename(tmp_path / "sub" / "a.png")
    for number in range(3):
        result = run("convolve", "**/*.png", "-r", "-o", "out", "-d", "1", cwd=tmp_path)
        assert result.exit_code == 0
        assert ("1 done" if number == 0 else "0 done, 1 skipped") in result.output
    assert files(tmp_path / "out") == {"sub/a_laplacian_d1.png": ANY_BYTES}


class _AnyBytes:
    def __eq__(self, other):
        return isinstance(other, bytes) and len(other) > 0


ANY_BYTES = _AnyBytes()


def test_link_cycles_end_and_each_file_is_found_once(tmp_path, photo):
    folder = tmp_path / "d"
    folder.mkdir()
    photo.rename(folder / "p.png")
    os.symlink(".", folder / "self")
    os.symlink("..", folder / "up")
    command = [sys.executable, "-m", "dilcli", "convolve", "d/**/*.png", "-r", "-o", "out"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "1 done" in done.stderr, done.stderr
    walked = run("convolve", "d", "-r", "-o", "out2", cwd=tmp_path)
    assert walked.exit_code == 0 and "1 done" in walked.output


def test_an_output_folder_link_planted_in_out_is_not_followed(tmp_path, photo):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    photo.rename(tmp_path / "in" / "sub" / "x.png")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "out").mkdir()
    os.symlink(elsewhere, tmp_path / "out" / "sub")
    result = run("convolve", tmp_path / "in", "-r", "-o", tmp_path / "out", "-d", "1")
    assert result.exit_code == 1 and "outside the output folder" in result.output
    assert list(elsewhere.iterdir()) == []


def test_the_log_is_never_an_input_nor_followed_through_a_link(tmp_path, photo):
    original = photo.read_bytes()
    result = run("convolve", photo, "-o", tmp_path / "out", "--log", photo)
    assert result.exit_code == 2 and "is an input" in result.output
    assert photo.read_bytes() == original
    target = tmp_path / "precious.txt"
    target.write_text("keep")
    os.symlink(target, tmp_path / "log.jsonl")
    result = run("convolve", photo, "-o", tmp_path / "out", "--log", tmp_path / "log.jsonl")
    assert result.exit_code == 2 and "symbolic link" in result.output
    assert target.read_text() == "keep"


def test_the_record_is_never_followed_through_a_link_or_a_folder(tmp_path, photo):
    out = tmp_path / "out"
    out.mkdir()
    target = tmp_path / "precious.txt"
    target.write_text("keep")
    os.symlink(target, out / batch.RECORD_NAME)
    result = run("convolve", photo, "-o", out, "-d", "1")
    assert result.exit_code == 2 and "symbolic link" in result.output
    assert target.read_text() == "keep" and files(out) == {}
    os.unlink(out / batch.RECORD_NAME)
    (out / batch.RECORD_NAME).mkdir()
    result = run("convolve", photo, "-o", out, "-d", "1")
    assert result.exit_code == 2 and "cannot open the record" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_log_that_cannot_be_written_stops_with_one_line(tmp_path, photo):
    result = run("convolve", photo, "-o", tmp_path / "out", "--log", "/dev/full")
    assert result.exit_code == 1
    assert "cannot write the log /dev/full: No space left on device" in result.output


@pytest.mark.parametrize(
    ("log", "reason"),
    [
        # opens but cannot be appended to: os.fdopen's seek raised OSError, a traceback
        ("/proc/self/status", "cannot open the log /proc/self/status: Invalid argument"),
        ("photo", "is an input or the record; name another file"),
    ],
)
def test_a_refused_log_is_one_line_and_leaves_no_empty_folder(tmp_path, photo, log, reason):
    out = tmp_path / "out"
    result = run("convolve", photo, "-o", out, "--log", photo if log == "photo" else log)
    assert result.exit_code == 2
    assert reason in result.stderr.splitlines()[-1]
    assert not out.exists()  # the folder made for the run is gone again


def test_log_dash_writes_json_lines_to_stdout(tmp_path, photo):
    result = CliRunner().invoke(
        cli, ["convolve", str(photo), "-o", str(tmp_path / "out"), "-d", "1", "--log", "-"]
    )
    assert result.exit_code == 0 and not (Path.cwd() / "-").exists()
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0]["status"] == "done" and lines[0]["input"] == str(photo)
    assert lines[1]["output"].endswith("camera_laplacian_d1.png")


@pytest.mark.parametrize("extra", [["--log", "/dev/stdout"], ["--json", "--log", "/dev/stdout"]])
def test_log_to_dev_stdout_is_standard_output_once(tmp_path, photo, extra):
    # /dev/stdout is a link, which logs never follow: it names the stream instead.
    result = run("convolve", photo, "-o", tmp_path / "out", "-d", "1", *extra)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["type"] for line in lines] == ["input", "output", "summary"]


def test_log_to_dev_stderr_keeps_stdout_empty(tmp_path, photo):
    result = run("convolve", photo, "-o", tmp_path / "out", "-d", "1", "--log", "/dev/stderr")
    assert result.exit_code == 0 and result.stdout == ""
    assert '"type": "summary"' in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["-d", str(2**63)], "from 1 to 2147483647"),
        (["-d", str(2**31)], "from 1 to 2147483647"),
        (["-d", "1,2,,4"], "empty item"),
        (["-d", "1-99999999999"], "from 1 to 2147483647"),
    ],
)
def test_integer_options_are_checked_when_parsed(tmp_path, photo, args, message):
    result = run("convolve", photo, "-o", tmp_path / "out", *args)
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "out").exists()


def test_starlet_levels_are_checked_when_parsed(tmp_path, photo):
    result = run("context", photo, "--preset", "starlet", "--levels", "63", "-o", tmp_path / "o")
    assert result.exit_code == 2 and "1<=x<=30" in result.output


def test_a_record_that_cannot_be_written_stops_with_one_line(tmp_path, photo, monkeypatch):
    real_write = os.write

    def full_disk(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(batch.RECORD_NAME):
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_disk)
    result = run("convolve", photo, "-o", tmp_path / "out", "-d", "1")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: cannot write the record {tmp_path / 'out' / batch.RECORD_NAME}: "
        "No space left on device"
    ]
    monkeypatch.setattr(os, "write", real_write)
    assert "1 done" in run("convolve", photo, "-o", tmp_path / "out", "-d", "1").output


def test_an_output_name_too_long_is_named_with_the_reason(tmp_path):
    long = tmp_path / ("a" * 240 + ".png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(long)
    result = run("convolve", long, "-o", tmp_path / "out", "-d", "1")
    assert result.exit_code == 1
    assert "_laplacian_d1.png is 257 bytes long; file systems allow 255" in result.output
    assert ".dilcli-tmp" not in result.output


def test_no_inputs_is_an_error_with_a_hint_and_leaves_no_folder(tmp_path, photo):
    (tmp_path / "tiles" / "a").mkdir(parents=True)
    photo.rename(tmp_path / "tiles" / "a" / "x.png")
    result = run("convolve", tmp_path / "tiles", "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert "no inputs found" in result.output and "add -r" in result.output
    assert ".png" in result.output and not (tmp_path / "out").exists()
    failed = run("convolve", tmp_path / "missing.png", "-o", tmp_path / "out")
    assert failed.exit_code == 1 and not (tmp_path / "out").exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    assert run("convolve", tmp_path / "missing.png", "-o", kept).exit_code == 1
    assert kept.is_dir()  # a folder the user made stays


def test_the_summary_says_where_outputs_went_and_no_rate_when_all_skipped(tmp_path, photo):
    args = ("convolve", photo, "-o", tmp_path / "out", "-d", "1")
    assert "; outputs in " in run(*args).output
    again = run(*args).output
    assert "0 done, 1 skipped" in again and "files/s" not in again


def test_signals_report_replaced_nan_and_honour_max_samples(tmp_path):
    table = tmp_path / "n.csv"
    table.write_text("a,b\n1,nan\n2,3\n4,5\n")
    result = run("signal", table, "-o", tmp_path / "out", "-d", "1")
    assert result.exit_code == 0 and "1 NaN or infinite value(s) replaced by 0" in result.output
    refused = run("signal", table, "-o", tmp_path / "o2", "-d", "1", "--max-samples", "3")
    assert refused.exit_code == 1 and "6 values, over the limit of 3" in refused.output


def test_a_fifo_record_or_log_fails_at_once_instead_of_hanging(tmp_path, photo):
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / batch.RECORD_NAME)
    os.mkfifo(tmp_path / "log")
    command = [sys.executable, "-m", "dilcli", "convolve", str(photo), "-d", "1"]
    for extra, message in (
        (["-o", str(out)], "is not a regular file"),
        (["-o", str(tmp_path / "o2"), "--log", str(tmp_path / "log")], "no process is reading"),
    ):
        done = subprocess.run(command + extra, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and message in done.stderr, done.stderr


def test_a_garbage_record_is_skipped_line_by_line(tmp_path, photo):
    out = tmp_path / "out"
    out.mkdir()
    nested = "[" * 100_000 + "\n"
    long_line = "x" * (batch.record.MAX_RECORD_LINE + 10) + "\n"
    (out / batch.RECORD_NAME).write_text(nested + long_line + '{"key": 1}\n')
    result = run("convolve", photo, "-o", out, "-d", "1")
    assert result.exit_code == 0 and "1 done" in result.output
    assert "0 done, 1 skipped" in run("convolve", photo, "-o", out, "-d", "1").output


def test_the_log_never_appends_to_a_file_that_is_not_a_log(tmp_path, photo):
    out = tmp_path / "out"
    assert run("convolve", photo, "-o", out, "-d", "1").exit_code == 0
    output = out / "camera_laplacian_d1.png"
    before = output.read_bytes()
    other = tmp_path / "other.png"
    other.write_bytes(photo.read_bytes())
    result = run("convolve", other, "-o", out, "-d", "1", "--log", output)
    assert result.exit_code == 2 and "is not a dilcli log" in result.output
    assert output.read_bytes() == before
    os.link(photo, tmp_path / "hard.png")
    result = run("convolve", photo, "-o", tmp_path / "o3", "--log", tmp_path / "hard.png")
    assert result.exit_code == 2 and "by another name" in result.output
    planned = run(
        "convolve",
        other,
        "-o",
        tmp_path / "o4",
        "--log",
        tmp_path / "o4" / "other_laplacian_d1.png",
    )
    assert planned.exit_code == 2 and "one of this run's outputs" in planned.output
    log = out / "run.jsonl"  # a log in the output folder is fine, and grows
    for _ in range(2):
        assert run("convolve", photo, "-o", out, "-d", "1", "--log", log).exit_code == 0
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [entry["type"] for entry in entries if entry["type"] != "output"] == [
        "input", "summary", "input", "summary"
    ]  # fmt: skip


def test_more_dilations_or_other_limits_are_not_another_run(tmp_path, photo):
    out = tmp_path / "out"
    assert run("convolve", photo, "-o", out, "-d", "1,2").exit_code == 0
    first = files(out)
    grown = run("convolve", photo, "-o", out, "-d", "1,2,4", "--montage", "--max-pixels", "0")
    assert grown.exit_code == 0 and "1 done" in grown.output
    assert all(files(out)[name] == data for name, data in first.items())
    assert files(out) == reference(tmp_path, [photo], "-d", "1,2,4", "--montage")
    assert run("convolve", photo, "-o", out, "-d", "2", "--gain", "3").exit_code == 2


def test_a_worker_whose_run_has_ended_writes_nothing(tmp_path, photo):
    """The run's marker goes when the run does: a late worker's rename is refused."""
    from dilcli.batch import inputs, plan, runner, workers
    from dilcli.io.atomic import atomic_write

    class LateJob:
        def output_names(self, stem, suffix):
            return [f"{stem}.out"]

        def signature(self):
            return {}

        def run(self, input_path, output_paths):
            for marker in output_paths[0].parent.glob(f"{runner.RUN_MARKER_PREFIX}*"):
                marker.unlink()  # as if the main process were killed meanwhile
            with atomic_write(output_paths[0]) as handle:
                handle.write(b"late")

    found, _ = inputs.find_inputs([photo])
    tasks = plan.plan_tasks(found, tmp_path / "out", LateJob())
    report = runner.run_batch(tasks, LateJob(), out_dir=tmp_path / "out")
    assert report.failures and "has ended" in report.failures[0].reason
    assert not (tmp_path / "out" / "camera.out").exists()
    assert workers.describe_error(ValueError("x")) == "x"


def test_file_commands_refuse_a_million_dilations_when_parsed(tmp_path, photo):
    result = run("convolve", photo, "-o", tmp_path / "x", "-d", "1-999999")
    assert result.exit_code == 2 and "over the limit of 1,024" in result.output
    assert not (tmp_path / "x").exists()


def test_an_unusable_scheduler_address_is_one_line_and_exit_2(tmp_path, photo):
    pytest.importorskip("distributed")
    result = run("convolve", photo, "-o", tmp_path / "o", "--scheduler", "tls://127.0.0.1:1")
    assert result.exit_code == 2 and "cannot reach the Dask scheduler" in result.output
