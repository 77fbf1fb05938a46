"""Fuzzing the loader and convolve with mutated small files (hypothesis, derandomized).

Valid tiny files of every format are bit-flipped, truncated, spliced and have chunks
duplicated; ``load_image`` (strict and lenient, first and every frame) and the work
``dilcli convolve`` does per file may only fail with dilcli's own ``ImageError``, or a
one-line reason that is not an "unexpected" exception. The run is reproducible
(``derandomize``) and bounded: ``DILCLI_FUZZ_EXAMPLES`` (default 3000) per test.
``DILCLI_FUZZ_RANDOM=1`` explores new inputs instead (for long local runs).
"""

import io
import json
import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from dilcli import batch
from dilcli.batch import workers
from dilcli.batch.jobs import ConvolveJob
from dilcli.cli import cli
from dilcli.core.kernels import named_kernel
from dilcli.io import png
from dilcli.io.images import ImageError, count_frames, iter_frames, load_image
from dilcli.render.display import Rendering

# Reporting a failure, hypothesis imports libcst, which warns; keep the failure visible.
pytestmark = pytest.mark.filterwarnings("ignore:mypy_extensions.TypedDict:DeprecationWarning")

EXAMPLES = int(os.environ.get("DILCLI_FUZZ_EXAMPLES", "3000"))
# Small limits: a mutated header may claim millions of pixels; the fuzz is about
# decoding damaged data, not about allocating what the limit allows.
MAX_PIXELS = 20_000
MAX_FRAMES = 8
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not os.environ.get("DILCLI_FUZZ_RANDOM"),
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],  # no explain: it imports libcst
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _pillow(array, fmt, **options):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _animated(fmt):
    from PIL import Image

    frames = [Image.fromarray(np.full((6, 5, 3), 60 * i, np.uint8)) for i in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format=fmt, save_all=True, append_images=frames[1:], duration=40)
    return buffer.getvalue()


def _tiff(array, **options):
    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, **options)
    return buffer.getvalue()


def _seeds():
    rng = np.random.default_rng(3)
    gray = (rng.random((7, 6)) * 255).astype(np.uint8)
    rgb = (rng.random((6, 5, 3)) * 255).astype(np.uint8)
    deep = (rng.random((5, 4, 4)) * 65535).astype(np.uint16)
    buffer = io.BytesIO()
    np.save(buffer, rng.normal(size=(5, 4, 2)).astype(np.float32))
    return {
        "gray.png": _pillow(gray, "PNG"),
        "rgb.png": _pillow(rgb, "PNG", optimize=True),
        "rgba16.png": png.encode_png(deep, 9),
        "animated.png": _animated("PNG"),
        "rgb.jpg": _pillow(rgb, "JPEG", quality=80),
        "progressive.jpg": _pillow(rgb, "JPEG", progressive=True),
        "animated.gif": _animated("GIF"),
        "rgb.tif": _tiff(rgb, photometric="rgb"),
        "deep.tif": _tiff(deep[..., :3], photometric="rgb", compression="zlib"),
        "float.tif": _tiff(rng.normal(size=(5, 4)).astype(np.float32)),
        "rgb.bmp": _pillow(rgb, "BMP"),
        "rgb.webp": _pillow(rgb, "WEBP", lossless=True),
        "features.npy": buffer.getvalue(),
    }


SEEDS = _seeds()


def _png_chunks(data):
    """(start, end) of each chunk of a PNG, for duplicating whole chunks."""
    spans, position = [], 8
    while position + 12 <= len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        end = position + 12 + length
        if end > len(data):
            break
        spans.append((position, end))
        position = end
    return spans


def mutate(data, operations):
    """Apply (kind, a, b) operations; positions are taken modulo the current length."""
    data = bytearray(data)
    for kind, a, b in operations:
        size = max(len(data), 1)
        if kind == "flip":
            if data:
                data[a % size] ^= 1 << (b % 8)
        elif kind == "byte":
            if data:
                data[a % size] = b % 256
        elif kind == "truncate":
            del data[a % size :]
        elif kind == "delete":
            start = a % size
            del data[start : start + 1 + b % 64]
        elif kind == "duplicate":  # a slice, or with a PNG a whole chunk, written twice
            chunks = _png_chunks(bytes(data)) if data.startswith(b"\x89PNG") else []
            start, end = chunks[a % len(chunks)] if chunks else (a % size, a % size + 1 + b % 64)
            data[end:end] = data[start:end]
        elif kind == "insert":
            data[a % size : a % size] = bytes([b % 256]) * (1 + b % 7)
        elif kind == "fix_crc" and data.startswith(b"\x89PNG"):  # reach past the CRC check
            for start, end in _png_chunks(bytes(data)):
                data[end - 4 : end] = struct.pack(
                    ">I", zlib.crc32(bytes(data[start + 4 : end - 4]))
                )
    return bytes(data)


operation = st.tuples(
    st.sampled_from(
        ["flip", "flip", "flip", "byte", "truncate", "delete", "duplicate", "insert", "fix_crc"]
    ),
    st.integers(0, 2**16),
    st.integers(0, 255),
)
mutants = st.tuples(st.sampled_from(sorted(SEEDS)), st.lists(operation, min_size=1, max_size=4))


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory(prefix="dilcli-fuzz-") as folder:
        yield Path(folder)


def check_reason(text):
    assert text and "\n" not in text and "Traceback" not in text, text
    assert not text.startswith("unexpected"), text


def write_mutant(workdir, seed_name, operations):
    path = workdir / f"mutant{Path(seed_name).suffix}"
    path.write_bytes(mutate(SEEDS[seed_name], operations))
    return path


@FUZZ
@given(mutants)
def test_fuzz_load_image_raises_only_image_errors(workdir, mutant):
    seed_name, operations = mutant
    path = write_mutant(workdir, seed_name, operations)
    for allow_truncated in (False, True):
        try:
            image = load_image(path, max_pixels=MAX_PIXELS, allow_truncated=allow_truncated)
        except ImageError as error:
            check_reason(str(error))
            continue
        assert image.data.dtype == np.float32 and np.isfinite(image.data).all()
        assert image.data.ndim in (2, 3) and image.data.size <= MAX_PIXELS * 4
        for note in image.notes:
            check_reason(note)
    try:
        count = count_frames(path, max_frames=MAX_FRAMES)
        frames = list(iter_frames(path, max_pixels=MAX_PIXELS, max_frames=MAX_FRAMES))
        assert len(frames) == count
    except ImageError as error:
        check_reason(str(error))


JOB = ConvolveJob(
    named_kernel("laplacian"),
    (1, 3),
    rendering=Rendering(),
    max_pixels=MAX_PIXELS,
    allow_truncated=True,
    frames="all",
    max_frames=MAX_FRAMES,
)


@FUZZ
@given(mutants)
def test_fuzz_convolve_fails_only_with_a_reason(workdir, mutant):
    seed_name, operations = mutant
    path = write_mutant(workdir, seed_name, operations)
    for job in (JOB, ConvolveJob(named_kernel("sobel"), (2,), max_pixels=MAX_PIXELS)):
        inputs, _ = batch.find_inputs([path])
        (task,) = batch.plan_tasks(inputs, workdir / "out", job)
        result = workers.execute(job, task)
        assert result.status in ("done", "failed")
        if result.status == "failed":
            check_reason(result.reason)
        else:
            assert all(output.is_file() for output in task.outputs)
        for warning in result.warnings:
            check_reason(warning)


def test_fuzz_corpus_through_the_command_line(tmp_path):
    """A fixed-seed folder of mutants through `dilcli convolve`, strict and lenient."""
    rng = np.random.default_rng(2024)
    folder = tmp_path / "mutants"
    folder.mkdir()
    kinds = ["flip", "byte", "truncate", "delete", "duplicate", "insert", "fix_crc"]
    names = sorted(SEEDS)
    for number in range(80):
        seed_name = names[number % len(names)]
        operations = [
            (kinds[rng.integers(len(kinds))], int(rng.integers(2**16)), int(rng.integers(256)))
            for _ in range(1 + number % 3)
        ]
        (folder / f"m{number:02d}_{seed_name}").write_bytes(mutate(SEEDS[seed_name], operations))
    for options in ([], ["--allow-truncated", "--frames", "all"]):
        out, log = tmp_path / f"out{len(options)}", tmp_path / f"log{len(options)}.jsonl"
        args = ["convolve", folder, "-o", out, "-d", "1,2", "-j", "1", "--log", log]
        args += ["--max-pixels", str(MAX_PIXELS), "--max-frames", str(MAX_FRAMES), *options]
        result = CliRunner().invoke(cli, [str(a) for a in args])
        assert result.exit_code in (0, 1), result.output
        assert "Traceback" not in result.output and "unexpected" not in result.output
        entries = [json.loads(line) for line in log.read_text().splitlines()]
        statuses = [e for e in entries if "status" in e]
        assert len(statuses) == 80
        for entry in statuses:
            assert entry["status"] in ("done", "failed")
            if entry["status"] == "failed":
                check_reason(entry["reason"])
