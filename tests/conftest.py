import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/reference.py

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "sample_images"


def run_cli(*args, cwd=None, **kwargs):
    """``dilcli *args`` as a user types it, through Click, in ``cwd`` if given.

    A Python exception reaching the user fails the test: Click's runner catches it (so
    the output never shows a traceback), and ``result.exception`` is where it lands.
    """
    from click.testing import CliRunner

    from dilcli.cli import cli

    previous = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        result = CliRunner().invoke(cli, [str(a) for a in args], **kwargs)
    finally:
        os.chdir(previous)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result


def zarr_store(path, data, chunks, *, zarr_format=3):
    """A Zarr store at ``path`` holding ``data`` in ``chunks``; returns ``path``."""
    import zarr

    zarr.create_array(
        store=str(path), shape=data.shape, chunks=chunks, dtype=data.dtype, zarr_format=zarr_format
    )[:] = data
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(7)


@pytest.fixture
def image_folder(tmp_path, rng):
    """A folder with a gray PNG, an RGB PNG, an RGBA PNG and a 16-bit PNG."""
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray((rng.random((20, 30)) * 255).astype(np.uint8)).save(folder / "gray.png")
    Image.fromarray((rng.random((24, 18, 3)) * 255).astype(np.uint8)).save(folder / "rgb.png")
    Image.fromarray((rng.random((16, 16, 4)) * 255).astype(np.uint8), "RGBA").save(
        folder / "rgba.png"
    )
    Image.fromarray((rng.random((12, 14)) * 65535).astype(np.uint16)).save(folder / "deep.png")
    return folder
