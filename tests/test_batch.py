import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from dilcli import batch
from dilcli.batch import workers
from dilcli.io.images import IMAGE_EXTENSIONS

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 8


def find(*specs, **kwargs):
    kwargs.setdefault("extensions", IMAGE_EXTENSIONS)
    inputs, skipped = batch.find_inputs([str(s) for s in specs], **kwargs)
    return inputs, {Path(r.input.path).name: (r.status, r.reason) for r in skipped}


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "in"
    (root / "sub" / "deeper").mkdir(parents=True)
    for name in ("a.png", "B.JPG", "sub/c.tif", "sub/deeper/d.webp", ".hidden.png", "notes.txt"):
        (root / name).write_bytes(PNG)
    (root / "no_extension").write_bytes(PNG)  # an image by content
    (root / "notes.txt").write_text("not an image")
    return root


def test_folder_inputs_by_extension_and_content_hidden_ignored(tree):
    inputs, skipped = find(tree)
    assert [i.relative.as_posix() for i in inputs] == ["B.JPG", "a.png", "no_extension"]
    assert skipped == {}


def test_recursive_mirrors_sub_folders(tree):
    inputs, _ = find(tree, recursive=True)
    assert [i.relative.as_posix() for i in inputs] == [
        "B.JPG",
        "a.png",
        "no_extension",
        "sub/c.tif",
        "sub/deeper/d.webp",
    ]


def test_special_files_and_bad_links_are_skipped_with_a_reason(tree):
    os.mkfifo(tree / "pipe.png")
    (tree / "dangling.png").symlink_to(tree / "missing.png")
    (tree / "loop1.png").symlink_to(tree / "loop2.png")
    (tree / "loop2.png").symlink_to(tree / "loop1.png")
    (tree / "dirlink").symlink_to(tree, target_is_directory=True)
    (tree / "good_link.png").symlink_to(tree / "a.png")
    inputs, skipped = find(tree, recursive=True)
    assert skipped["pipe.png"] == ("skipped", "special file (FIFO), not opened")
    assert skipped["dangling.png"][1].startswith("dangling link")
    assert "link" in skipped["loop1.png"][1]
    assert skipped["dirlink"][1] == "link to a folder, not followed"
    # a link to an input already listed is the same file: listed once
    assert sum(i.path.name in ("a.png", "good_link.png") for i in inputs) == 1


def test_globs_and_missing_files(tree):
    inputs, skipped = find(tree / "*.png", tree / "nothing*.png", tree / "gone.png")
    assert [i.path.name for i in inputs] == ["a.png"]
    assert skipped["nothing*.png"] == ("failed", "no file matches this pattern")
    assert skipped["gone.png"] == ("failed", "no such file or folder")


def test_output_folder_rules(tree, tmp_path):
    with pytest.raises(batch.BatchError, match="is the input folder"):
        batch.check_output_folder(tree, [tree])
    with pytest.raises(batch.BatchError, match="lies inside input folder"):
        batch.check_output_folder(tree / "out", [tree])
    batch.check_output_folder(tree / "out", [tree], allow_inside=True)
    batch.check_output_folder(tmp_path / "elsewhere", [tree])
    inputs, _ = find(tree, recursive=True, exclude=tree / "sub")
    assert not any("sub" in i.relative.parts for i in inputs)


@dataclass(frozen=True)
class EchoJob:
    """Copies the input to each output; fails on inputs named bad*."""

    suffixes: tuple = ("x", "y")
    version: int = 1

    def output_names(self, stem, suffix):
        return [f"{stem}_{s}.out" for s in self.suffixes]

    def signature(self):
        return {"suffixes": list(self.suffixes), "version": self.version}

    def run(self, input_path, output_paths):
        if input_path.name.startswith("bad"):
            raise ValueError("bad by name")
        for path in output_paths:
            version = b"" if self.version == 1 else f"v{self.version}".encode()
            path.write_bytes(input_path.read_bytes() + version)


def test_same_stem_inputs_get_distinct_outputs(tmp_path):
    (tmp_path / "a.png").write_bytes(PNG)
    (tmp_path / "a.jpg").write_bytes(PNG)
    inputs, _ = find(tmp_path / "a.png", tmp_path / "a.jpg")
    tasks = batch.plan_tasks(inputs, tmp_path / "out", EchoJob())
    names = [o.name for t in tasks for o in t.outputs]
    assert names == ["a_png_x.out", "a_png_y.out", "a_jpg_x.out", "a_jpg_y.out"]


@pytest.mark.parametrize("jobs", [1, 2])
def test_run_batch_failures_resume_and_record(tmp_path, jobs):
    source = tmp_path / "in"
    source.mkdir()
    for name in ("one", "two", "bad"):
        (source / f"{name}.png").write_bytes(PNG + name.encode())
    out = tmp_path / "out"
    inputs, _ = find(source)
    tasks = batch.plan_tasks(inputs, out, EchoJob())
    report = batch.run_batch(tasks, EchoJob(), out_dir=out, jobs=jobs)
    assert (report.count("done"), report.count("failed"), report.exit_code) == (2, 1, 1)
    assert report.failures[0].reason == "bad by name"
    assert (out / "two_y.out").read_bytes() == PNG + b"two"
    again = batch.run_batch(tasks, EchoJob(), out_dir=out, jobs=jobs)
    assert (again.count("skipped"), again.count("failed")) == (2, 1)
    # a deleted output is recomputed, even though the record lists its task
    (out / "one_x.out").unlink()
    third = batch.run_batch(tasks, EchoJob(), out_dir=out, jobs=jobs)
    assert [r.input.path.name for r in third.results if r.status == "done"] == ["one.png"]
    # a changed parameter changes every key: its outputs would replace this run's, so
    # the run refuses before doing anything, unless told to overwrite
    changed = batch.plan_tasks(inputs, out, EchoJob(version=2))
    with pytest.raises(batch.OutputConflict, match="one_x.out and 3 more outputs"):
        batch.run_batch(changed, EchoJob(version=2), out_dir=out, jobs=jobs)
    assert (out / "two_y.out").read_bytes() == PNG + b"two"
    redo = batch.run_batch(changed, EchoJob(version=2), out_dir=out, jobs=jobs, overwrite=True)
    assert redo.count("done") == 2
    # and now the first version's outputs are the other run's
    with pytest.raises(batch.OutputConflict):
        batch.run_batch(tasks, EchoJob(), out_dir=out, jobs=jobs)


def test_record_ignores_a_torn_last_line_and_keeps_the_next(tmp_path):
    line = '{"key": "abc", "input": "x", "outputs": {}}\n'
    (tmp_path / batch.RECORD_NAME).write_text(line + '{"key": "de')
    with batch.Record(tmp_path) as record:
        assert record.keys == {"abc"}
        item = batch.InputFile(tmp_path / "y.png", Path("y.png"))
        record.add(batch.Task(item, (), "fgh"))
    with batch.Record(tmp_path) as record:
        assert record.keys == {"abc", "fgh"}


def test_same_names_from_different_folders_get_distinct_outputs(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.png").write_bytes(PNG)
    inputs, _ = find(tmp_path / "a" / "x.png", tmp_path / "b" / "x.png", tmp_path / "a")
    tasks = batch.plan_tasks(inputs, tmp_path / "out", EchoJob())
    names = [o.name for t in tasks for o in t.outputs]
    assert names == ["x_x.out", "x_y.out", "x_2_x.out", "x_2_y.out"]


def test_an_output_that_would_replace_another_input_is_a_conflict(tmp_path):
    (tmp_path / "a.png").write_bytes(PNG)
    (tmp_path / "a_x.out").write_bytes(PNG)  # an input, and a's future output
    inputs, _ = find(tmp_path / "a.png", tmp_path / "a_x.out", sniff=True)
    tasks = batch.plan_tasks(inputs, tmp_path, EchoJob())
    assert "would overwrite the input" in tasks[0].conflict
    report = batch.run_batch(tasks, EchoJob(), out_dir=tmp_path)
    assert report.failures[0].input.path.name == "a.png"
    assert (tmp_path / "a_x.out").read_bytes() == PNG


def test_glob_matches_mirror_their_folders(tree):
    inputs, _ = find(tree / "**" / "*.tif", recursive=True)
    assert [i.relative.as_posix() for i in inputs] == ["sub/c.tif"]


def test_unexpected_errors_are_named_as_such():
    assert workers.describe_error(ValueError("bad  value\nhere")) == "bad value here"
    assert workers.describe_error(KeyError("k")) == "unexpected KeyError: 'k'"


def test_running_out_of_memory_is_one_reason_for_runs_and_dry_runs(tmp_path, monkeypatch):
    from dilcli.batch import runner, workers

    assert workers.describe_error(MemoryError()) == "not enough memory"

    class Hungry:
        def plan_details(self, path):
            raise MemoryError

    assert runner._plan_details(Hungry(), tmp_path / "x.png") == {"problem": "not enough memory"}
