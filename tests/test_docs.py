"""The README stays true: its --help excerpts match the code, its quick start works.

Its '$ dilcli' transcripts are checked by test_readme_transcripts.py. Regenerate both
after changing options or output: ``python tests/test_docs.py --update``.
"""

import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
BLOCK = re.compile(
    r"(<!-- help: (?P<command>[\w-]+) -->\n```text\n)(?P<body>.*?)(```\n)", re.DOTALL
)


def help_text(command):
    from dilcli.cli import cli

    result = CliRunner().invoke(cli, [command, "--help"], terminal_width=100, prog_name="dilcli")
    assert result.exit_code == 0
    return result.output


def test_readme_help_excerpts_match_the_code():
    blocks = list(BLOCK.finditer(README.read_text()))
    assert blocks, "README has no --help excerpts"
    for block in blocks:
        assert block["body"] == help_text(block["command"]), (
            f"README's 'dilcli {block['command']} --help' is out of date: "
            "run python tests/test_docs.py --update"
        )


def test_every_command_is_documented_in_the_readme():
    import click

    from dilcli.cli import cli

    documented = {b["command"] for b in BLOCK.finditer(README.read_text())}
    assert documented == set(cli.list_commands(click.Context(cli)))


def test_readme_quick_start_runs_on_the_sample_images(tmp_path):
    from dilcli.cli import cli

    text = README.read_text()
    command = re.search(r"pip install \. && dilcli (convolve .*)", text).group(1).split()
    out = command.index("-o") + 1
    command[out] = str(tmp_path / "out")
    command[command.index("sample_images")] = str(REPO / "sample_images")
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 0, result.output
    images = [p.stem for p in (REPO / "sample_images").iterdir() if p.suffix in (".png", ".jpg")]
    for stem in images:
        for d in (1, 2, 4, 8):
            assert (tmp_path / "out" / f"{stem}_laplacian_d{d}.png").is_file()


@pytest.mark.parametrize(
    "image",
    [
        "docs/astronaut-laplacian-montage.png",
        "docs/rf-map-gridding.png",
        "docs/rf-map-residual.png",
        "docs/rf-map-aspp.png",
    ],
)
def test_readme_pictures_exist(image):
    assert (REPO / image).is_file() and image in README.read_text()


def update():
    text = README.read_text()
    text = BLOCK.sub(lambda m: m.group(1) + help_text(m["command"]) + m.group(4), text)
    README.write_text(text)
    from test_readme_transcripts import update as update_transcripts

    update_transcripts()


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "tests"))
    if "--update" in sys.argv:
        update()
