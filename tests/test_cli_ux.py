"""A tool that explains itself (issue 14): help in sections with examples, shell
completion, --json, --dry-run, --name templates, custom kernel names, honest notes."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
from conftest import REPO, run_cli
from PIL import Image

FILE_COMMANDS = ("convolve", "context", "signal")


def snapshot(folder):
    """Every path under ``folder`` with its size, time and content: what 'untouched' means."""
    found = {}
    for path in sorted(Path(folder).rglob("*")):
        info = path.lstat()
        content = path.read_bytes() if path.is_file() and not path.is_symlink() else None
        found[path.relative_to(folder).as_posix()] = (info.st_size, info.st_mtime_ns, content)
    return found


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def photo(tmp_path, rng):
    folder = tmp_path / "in"
    folder.mkdir(exist_ok=True)
    path = folder / "photo.png"
    Image.fromarray((rng.random((20, 24)) * 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture
def animation(tmp_path, rng):
    """A GIF of three different frames."""
    path = tmp_path / "in" / "anim.gif"
    path.parent.mkdir(exist_ok=True)
    frames = [Image.fromarray((rng.random((16, 16)) * 255).astype(np.uint8)) for _ in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    return path


# --- help that teaches ---------------------------------------------------------------


def help_of(*command):
    result = run_cli(*command, "--help", terminal_width=100)
    assert result.exit_code == 0
    return result.output


def sections(text):
    """{section heading: the option lines under it} of a --help text."""
    found, current = {}, None
    for line in text.splitlines():
        if re.fullmatch(r"[A-Z][\w ]*:", line):
            current = found.setdefault(line[:-1], [])
        elif current is not None and line.startswith("  -"):
            current.append(line.split()[0].rstrip(","))
    return found


@pytest.mark.parametrize("command", FILE_COMMANDS)
def test_file_commands_list_their_options_in_sections(command):
    found = sections(help_of(command))
    order = [name for name in found if name != "Options"]
    expected = ["Inputs", "Stack" if command == "context" else "Kernel", "Output", "Batch"]
    assert order == expected
    assert found["Options"] == ["-h"]  # nothing else is left without a section
    assert found["Output"][0] == "-o"  # the required option leads its section
    assert {"--json", "--dry-run", "--log", "-j"} <= set(found["Batch"])
    assert {"-r"} <= set(found["Inputs"]) and "--name" in found["Output"]


def test_section_help_texts_line_up():
    columns = set()
    for line in help_of("convolve").splitlines():
        match = re.match(r"(  -\S.*?  +)\S", line)
        if match and len(match[1]) <= 34:
            columns.add(len(match[1]))
    assert len(columns) == 1, columns


def test_every_command_has_an_example_and_the_top_level_too():
    from dilcli.cli import cli

    top = help_of()
    assert "Examples:" in top and "dilcli convolve sample_images" in top
    for name in cli.list_commands(click.Context(cli)):
        assert re.search(r"Examples?:\n    dilcli " + name, help_of(name)), name


def test_the_top_level_lists_whole_command_summaries():
    from dilcli.cli import cli

    top = help_of()
    for name in cli.list_commands(click.Context(cli)):
        summary = cli.get_command(click.Context(cli), name).get_short_help_str(limit=1000)
        assert summary.endswith(".") and "..." not in summary
        flat = " ".join(top.split())
        assert f"{name} {summary}" in flat, name


def test_kernels_help_describes_format_and_gives_an_example():
    text = help_of("kernels")
    assert "json: a list of objects" in text and "dilcli kernels --format json" in text


# --- shell completion ----------------------------------------------------------------


def complete(words, shell="bash"):
    """What click's completion answers for ``words`` (the last one being typed)."""
    env = {
        "_DILCLI_COMPLETE": f"{shell}_complete",
        "COMP_WORDS": " ".join(["dilcli", *words]),
        "COMP_CWORD": str(len(words)),
    }
    result = run_cli(*[], env=env, prog_name="dilcli")
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_kernel_names_complete_after_k():
    assert {"plain,laplacian", "plain,laplacian4"} <= set(complete(["convolve", "-k", "lap"]))
    assert "plain,sobel" not in complete(["convolve", "-k", "lap"])
    assert "file,lap" in complete(["convolve", "-k", "lap"])  # kernel files too
    assert "plain,difference" in complete(["signal", "--kernel", "d"])  # 1-D names
    assert "plain,b3spline" in complete(["context", "-k", "b3"])


def test_presets_and_formats_complete():
    assert complete(["context", "--preset", "s"]) == ["plain,starlet"]
    # rf-table and rf-map take options after a colon, so their --preset is text: it
    # completed nothing
    assert complete(["rf-table", "--preset", "wav"]) == ["plain,wavenet"]
    assert complete(["rf-map", "--preset", "res"]) == ["plain,resnet50"]
    assert "plain,deeplab-v3-os8" in complete(["rf-table", "--preset", "deep"])
    assert set(complete(["convolve", "--format", ""])) == {
        "plain,png",
        "plain,tiff",
        "plain,npy",
        "plain,zarr",
    }


def test_completion_never_imports_numpy():
    code = (
        "import os, sys\n"
        "os.environ.update(_DILCLI_COMPLETE='zsh_complete', COMP_WORDS='dilcli convolve -k lap',"
        " COMP_CWORD='3')\n"
        "from dilcli.cli import cli\n"
        "try: cli(prog_name='dilcli')\n"
        "except SystemExit: pass\n"
        "assert 'numpy' not in sys.modules, 'completion imported numpy'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "laplacian4" in done.stdout


def test_the_readme_documents_completion_for_three_shells():
    text = (REPO / "README.md").read_text()
    for shell in ("bash", "zsh", "fish"):
        assert f"_DILCLI_COMPLETE={shell}_source dilcli" in text


# --- --json --------------------------------------------------------------------------


def test_json_prints_an_object_per_input_and_output_then_a_summary(photo, animation, tmp_path):
    out = tmp_path / "out"
    result = run_cli("convolve", photo.parent, "-o", out, "-d", "1,2", "--json")
    assert result.exit_code == 0
    lines = json_lines(result.stdout)  # stdout is JSON only; progress went to stderr
    assert [line["type"] for line in lines].count("input") == 2
    outputs = [line for line in lines if line["type"] == "output"]
    assert sorted(Path(line["output"]).name for line in outputs) == [
        "anim_laplacian_d1.png", "anim_laplacian_d2.png",
        "photo_laplacian_d1.png", "photo_laplacian_d2.png",
    ]  # fmt: skip
    assert all(Path(line["output"]).is_file() for line in outputs)
    summary = lines[-1]
    assert summary["type"] == "summary" and lines.count(summary) == 1
    assert (summary["done"], summary["skipped"], summary["failed"]) == (2, 0, 0)
    assert summary["exit_code"] == 0 and summary["out_dir"] == str(out)
    assert summary["run"] == "finished"
    # scripts written for the old --log picked input lines by "status": still exactly those
    assert [line for line in lines if "status" in line] == [
        line for line in lines if line["type"] == "input"
    ]
    assert "2 done" in result.stderr
    rerun = json_lines(run_cli("convolve", photo.parent, "-o", out, "-d", "1,2", "--json").stdout)
    assert [line["status"] for line in rerun if line["type"] == "input"] == ["skipped"] * 2
    assert rerun[-1]["skipped"] == 2


def test_log_dash_is_the_same_writer_as_json(photo, tmp_path):
    one = run_cli("convolve", photo, "-o", tmp_path / "a", "-d", "1", "--json").stdout
    other = run_cli("convolve", photo, "-o", tmp_path / "b", "-d", "1", "--log", "-").stdout

    def shape(text):
        return [sorted(line) for line in json_lines(text)]

    assert shape(one) == shape(other) and len(json_lines(one)) == 3


def test_json_reports_failures_with_the_exit_code(photo, tmp_path):
    (photo.parent / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    result = run_cli("convolve", photo.parent, "-o", tmp_path / "out", "-d", "1", "--json")
    assert result.exit_code == 1
    lines = json_lines(result.stdout)
    failed = [line for line in lines if line.get("status") == "failed"]
    assert len(failed) == 1 and failed[0]["reason"] and failed[0]["outputs"] == []
    assert lines[-1]["failed"] == 1 and lines[-1]["exit_code"] == 1


def test_json_and_log_together_write_the_same_lines(photo, tmp_path):
    log = tmp_path / "run.jsonl"
    result = run_cli("convolve", photo, "-o", tmp_path / "out", "-d", "1", "--json", "--log", log)
    assert result.exit_code == 0
    assert json_lines(result.stdout) == json_lines(log.read_text())


def test_json_with_no_inputs_still_ends_with_a_summary(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    Image.new("L", (4, 4)).save(tmp_path / "empty" / "sub" / "x.png")
    result = run_cli("convolve", tmp_path / "empty", "-o", tmp_path / "out", "--json")
    assert result.exit_code == 1 and "add -r" in result.stderr
    assert json_lines(result.stdout)[-1]["exit_code"] == 1
    assert not (tmp_path / "out").exists()


# --- --dry-run -----------------------------------------------------------------------


def test_a_dry_run_writes_nothing(photo, animation, tmp_path):
    before = snapshot(tmp_path)
    for extra in ([], ["--json"], ["--montage", "-v"], ["--overwrite", "--log", "-"]):
        result = run_cli("convolve", photo.parent, "-o", tmp_path / "out", "--dry-run", *extra)
        assert result.exit_code == 0, result.output
    assert snapshot(tmp_path) == before  # no output folder, record, log or temporary


def test_a_dry_run_after_a_run_changes_nothing_and_says_skip(photo, tmp_path):
    out = tmp_path / "out"
    assert run_cli("convolve", photo, "-o", out, "-d", "1,2").exit_code == 0
    record = out / ".dilcli-record.jsonl"
    with open(record, "ab") as handle:
        handle.write(b'{"torn')  # a killed run's last line: a real run would end it
    before = snapshot(tmp_path)
    result = run_cli("convolve", photo, "-o", out, "-d", "1,2", "--dry-run")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0].startswith("skip ")
    assert "photo.png (already done)" in result.stdout
    size = (out / "photo_laplacian_d1.png").stat().st_size
    assert f"out/photo_laplacian_d1.png  ({size:,} bytes)" in result.stdout
    assert "1 to skip; nothing written" in result.stderr
    assert snapshot(tmp_path) == before


def test_a_dry_run_gives_the_reason_of_each_decision(photo, tmp_path, rng):
    out = tmp_path / "out"
    assert run_cli("convolve", photo, "-o", out, "-d", "1,2").exit_code == 0
    (out / "photo_laplacian_d2.png").unlink()
    plan = json_lines(
        run_cli("convolve", photo, "-o", out, "-d", "1,2", "--dry-run", "--json").stdout
    )
    entry = plan[0]
    assert entry["type"] == "input" and entry["status"] == "compute"
    assert entry["reason"] == "photo_laplacian_d2.png changed or went missing since it was written"
    sizes = {Path(line["output"]).name: line["size"] for line in plan if line["type"] == "output"}
    on_disk = (out / "photo_laplacian_d1.png").stat().st_size
    assert sizes == {"photo_laplacian_d1.png": on_disk, "photo_laplacian_d2.png": None}
    assert plan[-1] == {
        "type": "summary", "dry_run": True, "compute": 1, "skip": 0, "refuse": 0, "failed": 0,
        "out_dir": str(out), "exit_code": 0,
    }  # fmt: skip
    Image.fromarray((rng.random((20, 24)) * 255).astype(np.uint8)).save(photo)
    changed = run_cli("convolve", photo, "-o", out, "-d", "1,2", "--dry-run")
    assert (
        "compute  " in changed.stdout and "(the input changed since it was done)" in changed.stdout
    )
    more = run_cli("convolve", photo, "-o", out, "-d", "1,2,4", "--dry-run").stdout
    assert "(new outputs; those already made are written again)" in more
    forced = run_cli("convolve", photo, "-o", out, "-d", "1,2", "--dry-run", "--overwrite")
    assert "(--overwrite)" in forced.stdout


def test_a_dry_run_says_the_run_would_refuse_and_exits_like_it(photo, tmp_path):
    out = tmp_path / "out"
    assert run_cli("convolve", photo, "-o", out, "-d", "1").exit_code == 0
    before = snapshot(tmp_path)
    args = ("convolve", photo, "-o", out, "-d", "1", "--gain", "3")
    dry = run_cli(*args, "--dry-run")
    assert dry.exit_code == 2
    assert "refuse   " in dry.stdout and "holds another run's result" in dry.stdout
    assert "the run would not start" in dry.stderr and "--overwrite" in dry.stderr
    summary = json_lines(run_cli(*args, "--dry-run", "--json").stdout)[-1]
    assert (
        summary["refuse"] == 1 and summary["exit_code"] == 2 and "another run" in summary["refused"]
    )
    assert snapshot(tmp_path) == before
    real_refusal = run_cli(*args)
    assert real_refusal.exit_code == 2  # what the dry run said


def test_a_dry_run_names_files_the_search_passes_over(photo, tmp_path):
    os.mkfifo(photo.parent / "pipe.png")
    (photo.parent / "gone.png").symlink_to(tmp_path / "nowhere.png")
    before = snapshot(tmp_path)
    result = run_cli("convolve", photo.parent, "-o", tmp_path / "out", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    statuses = {Path(line["input"]).name: line["status"] for line in json_lines(result.stdout)[:-1]}
    assert statuses == {"photo.png": "compute", "pipe.png": "skip", "gone.png": "skip"}
    assert snapshot(tmp_path) == before


def test_a_dry_run_refuses_a_log_file_it_would_have_to_write(photo, tmp_path):
    result = run_cli(
        "convolve", photo, "-o", tmp_path / "out", "--dry-run", "--log", tmp_path / "l"
    )
    assert result.exit_code == 2 and "--dry-run writes nothing" in result.output
    assert not (tmp_path / "l").exists() and not (tmp_path / "out").exists()


def test_dry_runs_of_context_and_signal_list_their_outputs(photo, tmp_path):
    result = run_cli("context", photo, "--preset", "starlet", "--levels", "2", "-o",
                     tmp_path / "out", "--dry-run", "-q")  # fmt: skip
    assert result.exit_code == 0
    assert [line.split("/")[-1] for line in result.stdout.splitlines()[1:]] == [
        "photo_starlet_w1.png", "photo_starlet_w2.png", "photo_starlet_c2.png"
    ]  # fmt: skip
    np.savetxt(tmp_path / "s.csv", np.arange(10.0))
    signal = run_cli("signal", tmp_path / "s.csv", "-d", "1,2", "-o", tmp_path / "o2", "--dry-run")
    assert signal.exit_code == 0 and "s_second-difference_d2.csv" in signal.stdout
    assert not (tmp_path / "out").exists() and not (tmp_path / "o2").exists()


def test_plan_details_of_a_job_reach_the_dry_run(photo, tmp_path):
    from dataclasses import dataclass

    from dilcli.batch.console import plan_lines
    from dilcli.batch.inputs import find_inputs
    from dilcli.batch.jobs import ConvolveJob
    from dilcli.batch.plan import plan_tasks
    from dilcli.batch.runner import JsonLog, dry_run
    from dilcli.core.kernels import named_kernel

    @dataclass(frozen=True)
    class Tiled(ConvolveJob):
        def plan_details(self, input_path):
            return {"tiles": 4, "halo": 8}

    job = Tiled(named_kernel("laplacian"), (1,))
    assert ConvolveJob(named_kernel("laplacian"), (1,)).plan_details(photo) == {}
    found, _ = find_inputs([photo], recursive=False, extensions={".png"})
    tasks = plan_tasks(found, tmp_path / "out", job)
    results, sizes, refusal = dry_run(tasks, job, out_dir=tmp_path / "out")
    assert refusal is None and results[0].details == {"tiles": 4, "halo": 8}
    assert plan_lines(results, sizes)[-2:] == ["  tiles: 4", "  halo: 8"]
    log = tmp_path / "plan.jsonl"
    writer = JsonLog(log)
    writer.write(results[0], sizes[0])
    writer.close()
    assert json_lines(log.read_text())[0]["details"] == {"tiles": 4, "halo": 8}
    assert not (tmp_path / "out").exists()


def test_a_dry_run_names_the_problem_a_damaged_input_would_fail_with(photo, tmp_path):
    import tifffile

    whole = tmp_path / "whole.tif"
    tifffile.imwrite(whole, np.zeros((600, 600), np.uint8), tile=(64, 64), compression="zlib")
    cut = tmp_path / "bad" / "cut.tif"
    cut.parent.mkdir()
    cut.write_bytes(whole.read_bytes()[:400])  # the tile tables are cut off
    before = snapshot(tmp_path)
    args = ("convolve", cut, photo, "-o", tmp_path / "out", "--dry-run", "--max-memory", "1M")
    result = run_cli(*args)  # was a traceback: the plan opened the TIFF unguarded
    assert result.exit_code == 0
    problems = [line for line in result.stdout.splitlines() if "problem:" in line]
    assert len(problems) == 1 and "damaged TIFF file" in problems[0]
    assert "photo.png" in result.stdout
    details = json_lines(run_cli(*args, "--json").stdout)[0]["details"]
    assert details["problem"].startswith("damaged TIFF file")
    assert snapshot(tmp_path) == before


# --- --name --------------------------------------------------------------------------


def test_name_templates_name_the_outputs(photo, animation, tmp_path):
    out = tmp_path / "out"
    result = run_cli(
        "convolve", photo.parent, "-o", out, "-d", "1,2", "--name", "{kernel}-{d:02d}-{stem}.{ext}"
    )
    assert result.exit_code == 0
    assert sorted(p.name for p in out.glob("*.png")) == [
        "laplacian-01-anim.gif.png", "laplacian-01-photo.png.png",
        "laplacian-02-anim.gif.png", "laplacian-02-photo.png.png",
    ]  # fmt: skip
    again = run_cli(
        "convolve", photo.parent, "-o", out, "-d", "1,2", "--name", "{kernel}-{d:02d}-{stem}.{ext}"
    )
    assert "0 done, 2 skipped" in again.output
    frames = run_cli("convolve", animation, "-o", tmp_path / "f", "-d", "1", "--frames", "all",
                     "--name", "{stem}_frame{frame}_d{d}")  # fmt: skip
    assert frames.exit_code == 0
    assert sorted(p.name for p in (tmp_path / "f").glob("*.png")) == [
        f"anim_frame{n}_d1.png" for n in range(3)
    ]


@pytest.mark.parametrize(
    ("command", "extra", "prefix"),
    [("convolve", [], "laplacian"), ("context", ["--init", "random"], "context")],
)
def test_frame_templates_with_montages_name_each_frames_montage(
    animation, tmp_path, command, extra, prefix
):
    # --name '{stem}_{frame}_{d}' --montage --frames all was refused: the montages of
    # all frames were named {stem}_{kernel}_montage, the same name three times
    out = tmp_path / "out"
    result = run_cli(command, animation, "-o", out, "-d", "1,2", "--frames", "all",
                     "--name", "{stem}_{frame}_{d}", "--montage", *extra)  # fmt: skip
    assert result.exit_code == 0, result.output
    montages = sorted(out.glob("*_montage.png"))
    assert [p.name for p in montages] == [f"anim_f{n}_{prefix}_montage.png" for n in range(3)]
    pictures = [np.asarray(Image.open(p)) for p in montages]
    assert not np.array_equal(pictures[0], pictures[1])  # each shows its own frame
    assert sorted(p.name for p in out.glob("anim_?_?.png")) == [
        f"anim_{n}_{d}.png" for n in range(3) for d in (1, 2)
    ]


def test_name_templates_pass_through_the_collision_rules(tmp_path, rng):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "a.jpg"):
        Image.fromarray((rng.random((8, 8)) * 255).astype(np.uint8)).save(folder / name)
    out = tmp_path / "out"
    assert run_cli("convolve", folder, "-o", out, "-d", "1", "--name", "{stem}-x{d}").exit_code == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["a_jpg-x1.png", "a_png-x1.png"]
    # another template over the same names is another run's output: refused, as always
    before = snapshot(out)
    other = run_cli("convolve", folder, "-o", out, "-d", "2", "--name", "{stem}-x1")
    assert other.exit_code == 2 and "another run" in other.output
    assert snapshot(out) == before


@pytest.mark.parametrize(
    ("command", "template", "message"),
    [
        (["convolve"], "{stem}_{dilation}", "unknown field {dilation}; fields: {stem}, {ext}"),
        (["convolve"], "{stem}_{kernel}", "gives two outputs of one input the same name"),
        (["convolve"], "{kernel}_d{d}", "needs {stem}"),
        (["convolve"], "{stem}/{d}", "a file name, without folders"),
        (["convolve"], "{stem}_{d", "expected '}' before end of string"),
        (["convolve"], "{stem}_{}", "unknown field {}"),
        (["convolve", "--frames", "all"], "{stem}_{d}", None),
        (["context", "--preset", "context-basic"], "{stem}_{d}", "the same name"),
        (["context", "--preset", "starlet"], "{stem}_{scale}", None),
        (["signal", "--stack"], "{stem}_l{layer}", None),
        (["signal"], "{stem}_{scale}", "unknown field {scale}"),
    ],
)
def test_name_templates_are_checked_before_anything_runs(
    tmp_path, photo, command, template, message
):
    source = photo if command[0] != "signal" else tmp_path / "s.csv"
    np.savetxt(tmp_path / "s.csv", np.arange(10.0))
    args = [
        command[0],
        source,
        *command[1:],
        "-o",
        tmp_path / "out",
        "-d",
        "1,2",
        "--name",
        template,
    ]
    if command[0] == "context":
        args.remove("-d"), args.remove("1,2")
    result = run_cli(*args, "-q")
    if message is None:
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 2
    error = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(error) == 1 and "'--name'" in error[0] and message in error[0], result.output
    assert not (tmp_path / "out").exists()


# --- custom kernel names ---------------------------------------------------------------


def test_custom_kernels_are_named_by_their_weights_or_file(photo, tmp_path):
    out = tmp_path / "out"
    for spec in ("1,0;0,-1", "1 0; 0 -1", "0,1;-1,0"):
        assert run_cli("convolve", photo, "-o", out, "-d", "1", "-k", spec).exit_code == 0
    names = sorted(p.name for p in out.glob("*.png"))
    assert len(names) == 2  # the same weights written twice share a name; others do not
    assert all(re.fullmatch(r"photo_custom-[0-9a-f]{6}_d1\.png", name) for name in names)
    np.save(tmp_path / "my_kernel.npy", np.array([[1.0, 0.0], [0.0, -1.0]]))
    assert (
        run_cli("convolve", photo, "-o", out, "-d", "1", "-k", tmp_path / "my_kernel.npy").exit_code
        == 0
    )
    assert (out / "photo_my_kernel_d1.png").is_file()


def test_a_record_of_custom_names_from_before_reruns_without_crashing(photo, tmp_path):
    """dilcli 0.1 named every text kernel 'custom': its record still loads; work is redone."""
    out = tmp_path / "out"
    args = ("convolve", photo, "-o", out, "-d", "1", "-k", "1,0;0,-1")
    assert run_cli(*args).exit_code == 0
    (new,) = out.glob("photo_custom-*_d1.png")
    record = out / ".dilcli-record.jsonl"
    old_name = "photo_custom_d1.png"
    new.rename(out / old_name)
    record.write_text(record.read_text().replace(new.name, old_name))
    result = run_cli(*args)
    assert result.exit_code == 0 and "1 done" in result.output
    assert new.is_file() and (out / old_name).is_file()
    assert "1 skipped" in run_cli(*args).output


# --- honest messages -------------------------------------------------------------------


def test_a_multi_frame_file_reduced_to_its_first_frame_is_noted_once(animation, photo, tmp_path):
    out = tmp_path / "out"
    result = run_cli("convolve", photo.parent, "-o", out, "-d", "1,2")
    assert result.exit_code == 0
    notes = [line for line in result.output.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "anim.gif: only the first of its 3 frames was used" in notes[0]
    assert "warning" not in result.output
    verbose = run_cli("convolve", animation, "-o", tmp_path / "v", "-d", "1", "-v")
    assert verbose.output.count("only the first of its 3 frames") == 2  # -v line, summary
    lines = json_lines(run_cli("convolve", animation, "-o", tmp_path / "j", "--json").stdout)
    assert lines[0]["notes"] == [
        "only the first of its 3 frames was used (--frames all: every frame)"
    ]
    assert lines[-1]["notes"] == 1
    every = run_cli("convolve", animation, "-o", tmp_path / "all", "-d", "1", "--frames", "all")
    assert "note:" not in every.output and "1 done" in every.output
    assert len(list((tmp_path / "all").glob("*.png"))) == 3


def test_a_summary_of_skipped_work_gives_no_rate(photo, tmp_path):
    args = ("convolve", photo, "-o", tmp_path / "out", "-d", "1")
    assert re.search(r"\(\d+\.\d (files/s|s per file)\)", run_cli(*args).output)
    again = run_cli(*args).output
    assert "0 done, 1 skipped" in again and "files/s" not in again and "per file" not in again


@pytest.mark.parametrize(
    ("done", "seconds", "rate"), [(4, 2.0, "2.0 files/s"), (1, 40.4, "40.4 s per file")]
)
def test_the_summary_rate_reads_well_for_big_images_too(done, seconds, rate, capsys):
    from dilcli.batch.console import BatchConsole
    from dilcli.batch.tasks import BatchReport, InputFile, TaskResult

    results = [
        TaskResult(InputFile(Path(f"/{n}.tif"), Path(f"{n}.tif")), "done") for n in range(done)
    ]
    with BatchConsole(done, quiet=False, verbose=False) as console:
        console.summary(BatchReport(results, seconds))
    assert f"({rate})" in capsys.readouterr().err


def test_version_reports_engine_threads_and_extras():
    text = run_cli("--version").output
    assert re.search(r"^dilcli \d", text)
    assert re.search(
        r"^engine: (compiled \(C, OpenMP\)|numpy \(the compiled engine was not built\))$",
        text,
        re.M,
    )
    assert re.search(r"^threads: \d+$", text, re.M) and re.search(r"^dask: ", text, re.M)
    readme = (REPO / "README.md").read_text()
    assert "dilcli --version" in readme and "pip install -v ." in readme


def test_no_inputs_exit_1_with_a_hint_and_no_folder(tmp_path):
    (tmp_path / "tiles" / "a").mkdir(parents=True)
    Image.new("L", (4, 4)).save(tmp_path / "tiles" / "a" / "x.png")
    result = run_cli("convolve", tmp_path / "tiles", "-o", tmp_path / "out")
    assert result.exit_code == 1 and "add -r to look in sub-folders" in result.output
    assert ".png" in result.output and not (tmp_path / "out").exists()


def test_empty_items_in_lists_are_refused():
    result = run_cli("rf-table", "-d", "1,2,,4")
    assert result.exit_code == 2 and "empty item" in result.output


# --- the README's recipes run ----------------------------------------------------------


def recipe_commands():
    """The command lines of the README's recipes block, as argument lists."""
    import shlex

    text = (REPO / "README.md").read_text()
    block = re.search(r"<!-- recipes -->\n```bash\n(.*?)```", text, re.DOTALL)[1]
    commands = [shlex.split(line, comments=True) for line in block.splitlines()]
    return [command[1:] for command in commands if command]


def make_recipe_inputs(folder, rng):
    """Small stand-ins for the files the recipes name."""
    import tifffile
    from scipy.io import wavfile

    for sub in ("photos/2024", "tiles/a", "tiles/b"):
        (folder / sub).mkdir(parents=True)
    for name in ("photos/x.jpg", "photos/2024/y.png", "tiles/a/t1.png", "tiles/b/t2.png"):
        Image.fromarray((rng.random((24, 32, 3)) * 255).astype(np.uint8)).save(folder / name)
    np.save(folder / "features.npy", rng.random((20, 20, 4)).astype(np.float32))
    tifffile.imwrite(folder / "galaxy.tif", rng.random((48, 40)).astype(np.float32))
    wavfile.write(folder / "speech.wav", 8000, (rng.normal(size=4000) * 3000).astype(np.int16))


def test_every_recipe_in_the_readme_runs(tmp_path, rng):
    commands = recipe_commands()
    assert {command[0] for command in commands} == {
        "convolve",
        "context",
        "signal",
        "rf-table",
        "rf-map",
    }
    make_recipe_inputs(tmp_path, rng)
    for command in commands:
        result = run_cli(*command, cwd=tmp_path)
        assert result.exit_code == 0, (command, result.output)
    assert len(list((tmp_path / "edges").rglob("*_sobel_d8.png"))) == 2
    assert len(list((tmp_path / "planes").glob("galaxy_starlet_*.tif"))) == 7
    layers = sorted(p.name for p in (tmp_path / "wavenet").glob("speech_custom-*_stack_l*.wav"))
    assert len(layers) == 10 and any(name.endswith("_l10_d512.wav") for name in layers)
    assert (tmp_path / "wavenet.png").is_file()
    resumed = run_cli(*commands[-1], cwd=tmp_path)
    assert "0 done, 2 skipped" in resumed.output
    dry = run_cli(*commands[-2], cwd=tmp_path)
    assert dry.stdout.count("skip     ") == 2


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize(
    ("command", "option"),
    [("convolve", "--gain"), ("convolve", "--cval"), ("context", "--gain"), ("signal", "--cval")],
)
def test_gain_and_cval_refuse_what_is_not_a_number(tmp_path, command, option, value):
    # --gain nan wrote all-black PNGs and --cval nan NaN responses, both with exit 0
    source = tmp_path / "in.npy"
    np.save(source, np.ones((8, 8) if command != "signal" else (8,), np.float32))
    result = run_cli(command, source, "-o", tmp_path / "out", f"{option}={value}")
    assert result.exit_code == 2
    assert f"Invalid value for '{option}': '{value}' is not a finite number." in result.stderr
    assert not (tmp_path / "out").exists()
