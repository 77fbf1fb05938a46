"""Hostile paths: odd names, special files, links, and outputs that must stay put.

Names with spaces, unicode, newlines and a leading dash are processed and named as
they are; messages escape control characters; FIFOs and devices are never opened (a
subprocess with a timeout proves it: an open would block); link loops and dangling
links are reported; nothing is written outside the output folder, and an output that
is a link is replaced, never followed.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli as run
from PIL import Image

from dilcli import batch
from dilcli.batch import workers
from dilcli.batch.console import display_path
from dilcli.io.atomic import atomic_write
from dilcli.io.images import ImageError, load_image

HOSTILE_NAMES = [
    "with space.png",
    "ünïcødé 画像.png",
    "new\nline.png",
    "tab\there.png",
    "-dash.png",
    "quote'\"semi;colon.png",
    "$(touch pwned).png",
    "back\\slash.png",
    "star*and?.png",
    "dots..png",
]


def png_bytes():
    from io import BytesIO

    buffer = BytesIO()
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(6, 8)).save(buffer, format="PNG")
    return buffer.getvalue()


def snapshot(folder):
    """Every path under ``folder`` with its size and modification time."""
    found = {}
    for root, folders, files in os.walk(folder):
        for name in folders + files:
            path = Path(root, name)
            info = path.lstat()
            found[str(path.relative_to(folder))] = (info.st_size, info.st_mtime_ns)
    return found


@pytest.fixture
def hostile(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in HOSTILE_NAMES:
        (folder / name).write_bytes(png_bytes())
    return folder


def test_hostile_names_are_processed_and_outputs_stay_in_the_output_folder(hostile, tmp_path):
    out = tmp_path / "out"
    before = snapshot(tmp_path)
    result = run("convolve", hostile, "-o", out, "-d", "1,2", "-j", "1")
    assert result.exit_code == 0, result.output
    assert f"{len(HOSTILE_NAMES)} done, 0 skipped, 0 failed" in result.output
    written = sorted(p.name for p in out.iterdir() if p.name != batch.RECORD_NAME)
    stems = [Path(name).stem for name in HOSTILE_NAMES]
    assert written == sorted(f"{stem}_laplacian_d{d}.png" for stem in stems for d in (1, 2))
    after = snapshot(tmp_path)
    new = {path for path in after if path not in before}
    assert all(path == "out" or path.startswith("out" + os.sep) for path in new), new
    assert {path: after[path] for path in before} == before  # inputs untouched
    assert not any("pwned" in path for path in after if "$(" not in path)
    for name in written:
        assert load_image(out / name).data.shape == (6, 8)


def test_control_characters_in_names_are_escaped_in_messages(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "bad\nname.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage")
    (folder / "ok\x1b[31mred.png").write_bytes(png_bytes())
    log = tmp_path / "log.jsonl"
    result = run(
        "convolve", folder, "-o", tmp_path / "out", "-d", "1", "-j", "1", "-v", "--log", log
    )
    assert result.exit_code == 1
    assert f"error: {folder}/bad\\nname.png: damaged PNG file" in result.output
    assert "ok\\x1b[31mred.png" in result.output and "\x1b" not in result.output
    for line in result.output.splitlines():  # one line per message, each with a known start
        assert line.startswith(("error: ", "done: ", "1 input(s) failed", "  ", "1 done")), line
    inputs = {json.loads(line).get("input") for line in log.read_text().splitlines()}
    assert str(folder / "bad\nname.png") in inputs  # the log keeps the real name
    assert display_path("a\nb\tc") == "a\\nb\\tc" and display_path("plain ü") == "plain ü"
    error = PermissionError(13, "Permission denied", "out/x\ny.png")
    assert workers.describe_error(error) == "Permission denied: out/x\\ny.png"


def test_a_leading_dash_after_double_dash_and_odd_output_folders(hostile, tmp_path, monkeypatch):
    monkeypatch.chdir(hostile)
    out = tmp_path / "-out dir\nwith newline"
    result = run("convolve", "-o", out, "-d", "1", "--", "-dash.png", "./with space.png")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir() if p.name != batch.RECORD_NAME) == [
        "-dash_laplacian_d1.png",
        "with space_laplacian_d1.png",
    ]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_files_fail_with_a_reason(hostile, tmp_path):
    path = hostile / "with space.png"
    path.chmod(0)
    try:
        with pytest.raises(ImageError, match="permission denied"):
            load_image(path)
        result = run("convolve", path, "-o", tmp_path / "out")
        assert result.exit_code == 1 and "permission denied" in result.output
    finally:
        path.chmod(0o644)


def test_paths_through_a_file_are_reported(hostile, tmp_path):
    # As root nothing is unreadable; a file standing where a folder is expected is.
    result = run("convolve", hostile / "-dash.png" / "x.png", "-o", tmp_path / "out")
    assert result.exit_code == 1 and "x.png: cannot read: Not a directory" in result.output


SPECIAL_PROBE = """
import sys
from click.testing import CliRunner
from dilcli.cli import cli
from dilcli.io.images import ImageError, load_image

for path in sys.argv[2:]:
    try:
        load_image(path)
    except ImageError as error:
        print(f"load {path}: {error}")
result = CliRunner().invoke(cli, ["convolve", *sys.argv[2:], "-o", sys.argv[1], "-j", "1"])
print(result.output, end="")
print(f"exit {result.exit_code}")
"""


def test_fifos_and_devices_are_never_opened(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    specials = [str(fifo), os.devnull, "/dev/zero"]
    done = subprocess.run(
        [sys.executable, "-c", SPECIAL_PROBE, str(tmp_path / "out"), *specials],
        capture_output=True,
        text=True,
        timeout=60,  # opening the FIFO would block until then
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert f"load {fifo}: special file (FIFO), not opened" in lines
    assert f"load {os.devnull}: special file (device or socket), not opened" in lines
    assert f"error: {fifo}: special file (FIFO), not opened" in lines
    assert "error: /dev/zero: special file (device or socket), not opened" in lines
    assert lines[-1] == "exit 1"
    assert "Traceback" not in done.stdout + done.stderr


def test_links_loops_and_dangling_links(hostile, tmp_path):
    links = tmp_path / "links"
    links.mkdir()
    (links / "good.png").symlink_to(hostile / "with space.png")
    (links / "dangling.png").symlink_to(tmp_path / "missing.png")
    (links / "loop1.png").symlink_to(links / "loop2.png")
    (links / "loop2.png").symlink_to(links / "loop1.png")
    (links / "up").symlink_to(tmp_path, target_is_directory=True)  # a loop if followed
    out = tmp_path / "out"
    result = run("convolve", links, "-o", out, "-d", "1", "-j", "1", "-r", "-v")
    assert result.exit_code == 0, result.output
    assert (
        f"skipped: {links}/dangling.png (dangling link (its target does not exist))"
        in result.output
    )
    assert (
        f"skipped: {links}/loop1.png (broken link: Too many levels of symbolic links)"
        in result.output
    )
    assert f"skipped: {links}/up (link to a folder, not followed)" in result.output
    assert sorted(p.name for p in out.iterdir() if p.name != batch.RECORD_NAME) == [
        "good_laplacian_d1.png"
    ]
    # named on the command line, a broken link is a failure, and a link to a folder is followed
    named = run("convolve", links / "loop1.png", links / "dangling.png", "-o", tmp_path / "o2")
    assert named.exit_code == 1
    assert f"error: {links}/loop1.png: broken link" in named.output
    assert f"error: {links}/dangling.png: dangling link" in named.output
    (tmp_path / "to_in").symlink_to(hostile, target_is_directory=True)
    followed = run("convolve", tmp_path / "to_in", "-o", tmp_path / "o3", "-d", "1", "-j", "1")
    assert f"{len(HOSTILE_NAMES)} done" in followed.output
    with pytest.raises(ImageError, match="cannot read: Too many levels of symbolic links"):
        load_image(links / "loop1.png")
    with pytest.raises(ImageError, match="no such file"):
        load_image(links / "dangling.png")


def test_an_output_that_is_a_link_is_replaced_not_followed(hostile, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    target = tmp_path / "direct.png"
    target.symlink_to(victim)
    with atomic_write(target) as handle:
        handle.write(b"new")
    assert not target.is_symlink() and target.read_bytes() == b"new"
    assert victim.read_text() == "keep me"
    out = tmp_path / "out"
    out.mkdir()
    planted = out / "with space_laplacian_d1.png"
    planted.symlink_to(victim)
    result = run("convolve", hostile / "with space.png", "-o", out, "-d", "1")
    assert result.exit_code == 0, result.output
    assert not planted.is_symlink() and load_image(planted).data.shape == (6, 8)
    assert victim.read_text() == "keep me"


def test_an_output_link_to_the_input_never_overwrites_it(hostile, tmp_path):
    source = hostile / "with space.png"
    content = source.read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    (out / "with space_laplacian_d1.png").symlink_to(source)
    result = run("convolve", source, "-o", out, "-d", "1")
    assert result.exit_code == 1 and "would overwrite the input" in result.output
    assert source.read_bytes() == content
