"""The README's sample outputs are what the commands print.

Every ```text block of README.md and docs/design.md that starts with ``$ dilcli ...`` is
a transcript: the command is run through Click (plain output, as in a pipe) and what it
prints, stdout then stderr (tables first, then notes, as a terminal shows them), must
match the rest of the block (``--version``: the names of its machine-dependent lines,
not their values). Commands about files run in a temporary folder that
:data:`SETUPS` prepares as the README's text describes; there, file sizes (``681
bytes``) depend on the encoder and are compared as ``N bytes``.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

REPO = Path(__file__).resolve().parent.parent
DOCUMENTS = (REPO / "README.md", REPO / "docs" / "design.md")
TRANSCRIPT = re.compile(r"```text\n\$ dilcli (?P<command>[^\n]*)\n(?P<output>.*?)```\n", re.DOTALL)


def transcripts():
    found = []
    for document in DOCUMENTS:
        for match in TRANSCRIPT.finditer(document.read_text()):
            found.append(
                pytest.param(match["command"], match["output"], id=f"{document.name}: {match[1]}")
            )
    return found


def test_the_readme_has_the_receptive_field_transcripts():
    commands = [p.values[0] for p in transcripts()]
    assert "rf-table -d 2,2,2" in commands
    assert any("--spec" in c and "]+" in c for c in commands)  # a residual branch
    assert any("deeplab-v2-aspp-l" in c for c in commands)


def _dry_run_folder(folder):
    """in/a.png done at d = 1, 2; in/b.png done, then its d = 2 output lost."""
    from PIL import Image

    (folder / "in").mkdir()
    rng = np.random.default_rng(14)
    for name in ("a", "b"):
        pixels = (rng.random((16, 16)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / "in" / f"{name}.png")
    assert run_cli("convolve", "in", "-o", "out", "-d", "1,2", "-q", cwd=folder).exit_code == 0
    (folder / "out" / "b_laplacian_d2.png").unlink()


SETUPS = {"convolve in -o out -d 1,2 --dry-run": _dry_run_folder}
SIZES = re.compile(r"\(\d+ bytes")
# What differs between machines: the engine built, the cores, the extras installed.
MACHINE = re.compile(r"^(engine|threads|dask): .*$", re.MULTILINE)


def printed_by(command, folder):
    """What ``dilcli command`` prints (stdout, then stderr) in ``folder``, set up first."""
    setup = SETUPS.get(command)
    if setup is not None:
        setup(folder)
    result = run_cli(*shlex.split(command), terminal_width=100, cwd=folder)
    assert result.exit_code == 0, result.output
    return result.stdout + result.stderr


@pytest.mark.parametrize(("command", "output"), transcripts())
def test_transcript_matches_the_command(command, output, tmp_path):
    printed = printed_by(command, tmp_path)
    setup = SETUPS.get(command)
    if setup is not None:
        printed, output = SIZES.sub("(N bytes", printed), SIZES.sub("(N bytes", output)
    if command == "--version":
        printed, output = MACHINE.sub(r"\1: ...", printed), MACHINE.sub(r"\1: ...", output)
    assert printed == output, f"README transcript of 'dilcli {command}' is out of date"


def update():
    """Rewrite every transcript with what its command prints now
    (``python tests/test_docs.py --update``)."""
    import tempfile

    for document in DOCUMENTS:

        def rerun(match):
            with tempfile.TemporaryDirectory() as folder:
                printed = printed_by(match["command"], Path(folder))
            return f"```text\n$ dilcli {match['command']}\n{printed}```\n"

        document.write_text(TRANSCRIPT.sub(rerun, document.read_text()))
