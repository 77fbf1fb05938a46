"""The limits of images of any size (issue 13): --max-pixels binds only what is decoded
whole, a small file whose header claims a huge image costs neither gigabytes of memory
nor the disk, a file reduced to its first frame says so in both paths, and a float
TIFF has the same bytes whole or streamed."""

import errno
import io
import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from conftest import run_cli

tifffile = pytest.importorskip("tifffile")

SMALL = "1M"  # forces bands on the images below
FORMATS = "TIFF, .npy and Zarr stream in bands"


def outputs(folder):
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def error_lines(output):
    return [line for line in output.splitlines() if line.startswith("error: ")]


@pytest.fixture
def inputs(tmp_path, rng):
    """A tiled 8-bit TIFF, a 16-bit TIFF in strips and a float .npy, each over 1 MiB
    whole (so --max-memory 1M streams them) and over --max-pixels 1000."""
    folder = tmp_path / "in"
    folder.mkdir()
    gray = (rng.random((301, 263)) * 255).astype(np.uint8)
    tifffile.imwrite(folder / "gray.tif", gray, tile=(64, 64), compression="zlib")
    deep = (rng.random((317, 289)) * 65535).astype(np.uint16)
    tifffile.imwrite(folder / "deep.tif", deep, rowsperstrip=9)
    np.save(folder / "feats.npy", rng.standard_normal((211, 197, 2)).astype(np.float32))
    return folder


# --- 1. --max-pixels names the formats that stream, and no longer stops them ------------


def test_inputs_read_in_parts_ignore_the_pixel_limit(tmp_path, inputs):
    runs = {}
    for memory in ([], ["--max-memory", SMALL]):  # whole (it fits), then in bands
        for pixels in ("1000", "0"):  # a limit far below the images, and none (as before)
            out = tmp_path / f"out{len(runs)}"
            args = ["convolve", inputs, "-d", "1,3", "-o", out, "-j", "1", "--max-pixels", pixels]
            result = run_cli(*args, *memory)
            assert result.exit_code == 0, result.output
            runs[len(memory), pixels] = outputs(out)
    assert len(runs[0, "1000"]) == 6
    assert runs[0, "1000"] == runs[0, "0"] == runs[2, "1000"] == runs[2, "0"]


def _gif(path, frames=1):
    from PIL import Image

    images = [Image.new("L", (40, 30), n * 60) for n in range(frames)]
    images[0].save(path, save_all=True, append_images=images[1:])
    return path


@pytest.mark.parametrize(
    ("name", "options", "why", "streams"),
    [
        ("big.png", [], "PNG is decoded whole", ""),
        ("big.gif", [], "GIF is decoded whole", ""),
        ("fortran.npy", [], "a Fortran-ordered .npy is decoded whole", ""),
        ("pages.tif", ["--frames", "all"], "--frames all decodes every frame whole",
         " without it"),
        ("pages.tif", ["--montage", "--max-memory", SMALL], "--montage needs the whole image",
         " without it"),
        ("pages.tif", ["--montage", "--map", "stretch", "--max-memory", SMALL],
         "--montage and --map stretch need the whole image", " without them"),
    ],
)  # fmt: skip
def test_images_read_whole_keep_the_limit_and_name_the_formats_that_stream(
    tmp_path, rng, name, options, why, streams
):
    from PIL import Image

    path = tmp_path / name
    if name == "big.png":
        Image.fromarray((rng.random((300, 290)) * 255).astype(np.uint8)).save(path)
    elif name == "big.gif":
        _gif(path)
    elif name == "fortran.npy":
        np.save(path, np.asfortranarray(rng.random((300, 290), dtype=np.float32)))
    else:
        pages = (rng.random((2, 300, 290)) * 65535).astype(np.uint16)
        tifffile.imwrite(path, pages, photometric="minisblack")
    pixels = "100" if name == "big.gif" else "1000"
    result = run_cli("convolve", path, "-o", tmp_path / "o", "--max-pixels", pixels, *options)
    assert result.exit_code == 1
    (line,) = error_lines(result.output)
    size = "40x30 = 1,200" if name == "big.gif" else "290x300 = 87,000"
    assert line == (
        f"error: {path}: image is {size} pixels, over the limit of {int(pixels):,} ({why}: "
        f"raise --max-pixels, 0 for no limit; {FORMATS}{streams})"
    )
    assert not (tmp_path / "o").exists()


def test_whole_image_options_past_max_memory_without_a_pixel_limit(tmp_path, inputs):
    # --max-pixels 0 leaves --max-memory as the only bound of the whole read they need.
    result = run_cli(
        "convolve", inputs / "deep.tif", "-o", tmp_path / "o", "--montage", "--max-pixels", "0",
        "--max-memory", SMALL,
    )  # fmt: skip
    assert result.exit_code == 1
    assert "--montage needs the whole image in memory, 1.4 MiB, over --max-memory (1.0 MiB)" in (
        result.output
    )


def _strip_tiff(path, width, height, *, rows, offsets, counts, payload=b"", tile=None, codec=1):
    """A classic 8-bit gray TIFF written by hand: what its header and tables claim is
    what the test says (strips of ``rows`` rows, or ``tile`` x ``tile`` tiles)."""
    count = len(offsets)
    entries = {256: (4, 1, width), 257: (4, 1, height), 258: (3, 1, 8), 259: (3, 1, codec)}
    entries.update({262: (3, 1, 1), 277: (3, 1, 1), 284: (3, 1, 1)})
    if tile:
        entries.update({322: (4, 1, tile), 323: (4, 1, tile)})
    else:
        entries[278] = (4, 1, rows)
    data = 8 + 2 + 12 * (len(entries) + 2) + 4
    table = data + len(payload)
    single = count == 1
    entries[324 if tile else 273] = (4, count, offsets[0] if single else table)
    entries[325 if tile else 279] = (4, count, counts[0] if single else table + 4 * count)
    body = b"II*\x00" + struct.pack("<IH", 8, len(entries))
    for tag, (kind, number, value) in sorted(entries.items()):
        packed = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        body += struct.pack("<HHI", tag, kind, number) + packed
    body += struct.pack("<I", 0)
    assert len(body) == data
    body += payload
    if not single:
        body += np.asarray(offsets, "<u4").tobytes() + np.asarray(counts, "<u4").tobytes()
    path.write_bytes(body)
    return path


def test_a_band_of_one_row_over_max_memory_is_refused_from_the_header(tmp_path):
    # 100 million pixels a row, two rows, 16 bytes of data: no pixel limit stops it now.
    path = _strip_tiff(tmp_path / "wide.tif", 10**8, 2, rows=1, offsets=[200, 200], counts=[8, 8])
    result = run_cli("convolve", path, "-o", tmp_path / "o", "--max-memory", "512M")
    assert result.exit_code == 1
    (line,) = error_lines(result.output)
    assert "a band of one row of this 100,000,000-pixel-wide image needs" in line
    assert line.endswith("over --max-memory (512 MiB): raise it")


# --- 2. trust under huge headers --------------------------------------------------------

# Runs a command (or reads one band) under a hard address-space limit in a fresh process;
# prints the outcome and the peak resident memory (VmHWM: this process's own, since exec).
PROBE = """
import json, resource, sys
limit = int(sys.argv[1]) * 2**20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
args = json.loads(sys.argv[2])
if args[0] == "read":
    from dilcli.io.images import ImageError
    from dilcli.io.regions import open_reader
    try:
        with open_reader(args[1], max_pixels=0) as reader:
            band = reader.read(0, int(args[2]))
        outcome = f"read {band.shape}"
    except ImageError as error:
        outcome = f"error: {error}"
else:
    from dilcli.cli import cli
    try:
        cli(args)
    except SystemExit as stop:
        outcome = f"exit {stop.code}"
with open("/proc/self/status") as status:
    peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(json.dumps({"outcome": outcome, "peak_mb": peak / 1024}))
"""
ADDRESS_SPACE_MB = 2048  # numpy, Pillow, tifffile and a thread pool fit in far less
PEAK_MB = 300


def probe(args, cwd):
    environment = {**os.environ, "MALLOC_ARENA_MAX": "2"}  # arenas reserve address space
    process = subprocess.run(
        [sys.executable, "-c", PROBE, str(ADDRESS_SPACE_MB), json.dumps([str(a) for a in args])],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=environment,
    )
    assert process.stdout, process.stderr
    return json.loads(process.stdout.strip().splitlines()[-1]), process.stderr


HUGE, TILE = 200_000, 256  # 40 gigapixels, in 611,524 tiles


def _tiles(**kwargs):
    return _strip_tiff(kwargs.pop("path"), HUGE, HUGE, rows=0, tile=TILE, **kwargs)


def _hostile_files(folder):
    tiles = (-(-HUGE // TILE)) ** 2
    data = 8 + 2 + 12 * 11 + 4  # where _strip_tiff puts the payload of a tiled file
    one_tile = zlib.compress(np.full((TILE, TILE), 100, np.uint8).tobytes())
    bomb = zlib.compress(bytes(2**28), 9)  # 256 MB of zeros in 260 KB, in every tile
    strip = {"rows": HUGE, "offsets": [200], "counts": [16], "payload": bytes(100)}
    return {
        "strip.tif": _strip_tiff(folder / "strip.tif", HUGE, HUGE, **strip),
        "deflated.tif": _strip_tiff(folder / "deflated.tif", HUGE, HUGE, codec=8, **strip),
        "past.tif": _tiles(path=folder / "past.tif", offsets=[10**9] * tiles, counts=[100] * tiles),
        "counts.tif": _tiles(
            path=folder / "counts.tif",
            offsets=[data] * tiles,
            counts=[2**32 - 1] * tiles,
            payload=bytes(100),
        ),
        "bomb.tif": _strip_tiff(
            folder / "bomb.tif",
            1024,
            1024,
            rows=0,
            tile=TILE,
            codec=8,
            offsets=[data] * 16,
            counts=[len(bomb)] * 16,
            payload=bomb,
        ),  # fmt: skip
        "one.tif": _tiles(
            path=folder / "one.tif",
            offsets=[data] * tiles,
            counts=[len(one_tile)] * tiles,
            payload=one_tile,
            codec=8,
        ),
    }


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="peak memory from /proc")
def test_small_files_claiming_huge_images_cost_little_memory(tmp_path):
    files = _hostile_files(tmp_path)
    assert max(path.stat().st_size for path in files.values()) < 5 * 2**20
    convolve = ["convolve", "-o", tmp_path / "out", "-d", "1,2", "-j", "1", "-q"]
    assert files["strip.tif"].stat().st_size < 1000  # a few hundred bytes claim 40 GP
    expected = {
        "strip.tif": "damaged TIFF file: strip 0 holds 16 bytes, its 200,000 rows need",
        # one strip of 40 GB compressed cannot be read in parts: decoded whole, refused
        "deflated.tif": "image is 200000x200000 = 40,000,000,000 pixels, over the limit of "
        "250,000,000 (this TIFF's layout is decoded whole",
        "past.tif": "damaged TIFF file",  # the first band's tiles are not in the file
        "counts.tif": "damaged TIFF file: tile 0 claims 4,294,967,295 bytes for 65,536 bytes",
    }
    for name, reason in expected.items():
        measured, stderr = probe([*convolve, files[name]], tmp_path)
        assert measured["outcome"] == "exit 1", (name, measured, stderr)
        (line,) = stderr.splitlines()
        assert line.startswith(f"error: {files[name]}: {reason}"), line
        assert measured["peak_mb"] < PEAK_MB, (name, measured)
    # Every tile of the bomb inflates to 256 MB, and is decoded to its 64 KiB.
    measured, stderr = probe([*convolve, files["bomb.tif"]], tmp_path)
    assert measured["outcome"] == "exit 0" and measured["peak_mb"] < PEAK_MB, (measured, stderr)
    # All tiles at one offset: a valid 40-gigapixel image; a band costs a band.
    measured, stderr = probe(["read", files["one.tif"], 16], tmp_path)
    assert measured["outcome"] == f"read (16, {HUGE})", (measured, stderr)
    assert measured["peak_mb"] < PEAK_MB, measured


def test_outputs_of_known_size_that_cannot_fit_are_refused_before_writing(
    tmp_path, inputs, monkeypatch
):
    import shutil

    free = 300_000
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=free))
    args = ["convolve", inputs / "deep.tif", "-d", "1,2", "-j", "1", "--max-memory", SMALL]
    for fmt, name in (("npy", "deep_laplacian_d1.npy"), ("tiff", "deep_laplacian_d1.tif")):
        out = tmp_path / fmt
        result = run_cli(*args, "--format", fmt, "-o", out)
        assert result.exit_code == 1
        (line,) = error_lines(result.output)
        size = 2 * (317 * 289 * 4 + (128 if fmt == "npy" else 4096))  # data, header: exact
        assert line == (
            f"error: {inputs / 'deep.tif'}: not enough disk space: {name} and 1 more "
            f"output(s) would take {size / 2**20:,.1f} MiB, {out} has 0.3 MiB free"
        )
        assert not out.exists()  # nothing written, not even a temporary
    # Compressed outputs might fit: they go ahead.
    result = run_cli(*args, "-o", tmp_path / "png")
    assert result.exit_code == 0, result.output
    assert len(outputs(tmp_path / "png")) == 2


class _FullDisk(io.FileIO):
    """A file on a disk that fills after ``room`` bytes: a write beyond fails as a full
    disk does (ENOSPC), after writing what fits."""

    room = 0

    def write(self, data):
        data = memoryview(data).cast("B")
        fits = max(0, self.room - self.tell())
        if len(data) > fits:
            super().write(data[:fits])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


@pytest.mark.parametrize("fmt", [["--format", "npy"], [], ["--format", "tiff", "--bits", "8"],
                                 ["--format", "tiff"]])  # fmt: skip
def test_a_disk_that_fills_mid_run_fails_that_input_only(tmp_path, inputs, monkeypatch, fmt):
    from dilcli.io import atomic

    real = os.fdopen
    _FullDisk.room = 40_000  # the small input's outputs fit, the streamed ones do not

    def fdopen(fd, mode="r", *args, **kwargs):
        if mode != "wb":
            return real(fd, mode, *args, **kwargs)
        return io.BufferedWriter(_FullDisk(fd, "wb"))

    np.save(inputs / "small.npy", np.ones((20, 30), np.float32))
    monkeypatch.setattr(atomic.os, "fdopen", fdopen)
    out = tmp_path / "out"
    result = run_cli(
        "convolve", inputs / "deep.tif", inputs / "small.npy", "-d", "1", "-o", out, "-j", "1",
        "--max-memory", SMALL, "--log", tmp_path / "log.jsonl", *fmt,
    )  # fmt: skip
    monkeypatch.setattr(atomic.os, "fdopen", real)
    assert result.exit_code == 1
    (line,) = error_lines(result.output)
    ext = {"npy": "npy", "tiff": "tif"}.get(fmt[1] if fmt else "png", "png")
    assert (
        line
        == f"error: {inputs / 'deep.tif'}: No space left on device: {out}/deep_laplacian_d1.{ext}"
    )
    written = sorted(p.name for p in out.iterdir() if not p.name.startswith(".dilcli-record"))
    assert written == [f"small_laplacian_d1.{ext}"]  # the batch went on; no partial file
    assert "1 done, 0 skipped, 1 failed" in result.output


def test_a_full_disk_names_the_output_in_the_whole_image_path_too(tmp_path, monkeypatch):
    from dilcli.io import atomic

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    np.save(tmp_path / "a.npy", np.ones((20, 30), np.float32))
    monkeypatch.setattr(atomic.os, "fsync", full)  # where a full disk may show first
    for fmt in ("npy", "png"):
        out = tmp_path / fmt
        result = run_cli("convolve", tmp_path / "a.npy", "-o", out, "--format", fmt, "-j", "1")
        assert result.exit_code == 1
        (line,) = error_lines(result.output)
        name = f"a_laplacian_d1.{fmt}"
        assert line == f"error: {tmp_path / 'a.npy'}: No space left on device: {out / name}"
        assert not out.exists()  # no temporary left: the folder, written nothing, is gone


# --- 3. the first-frame note -------------------------------------------------------------


def test_first_frame_note_in_both_paths_without_counting_again(tmp_path, rng, monkeypatch):
    from dilcli.io import images

    folder = tmp_path / "in"
    folder.mkdir()
    pages = (rng.random((3, 300, 290)) * 65535).astype(np.uint16)
    gray = {"photometric": "minisblack"}
    tifffile.imwrite(folder / "pages16.tif", pages, **gray)  # tifffile's decoder; streamed
    tifffile.imwrite(folder / "pages8.tif", (pages >> 8).astype(np.uint8), **gray)  # Pillow's
    _gif(folder / "anim.gif", frames=4)
    tifffile.imwrite(folder / "one.tif", pages[0])

    def no_second_opening(*args, **kwargs):
        raise AssertionError("the frames are counted while the file is decoded")

    monkeypatch.setattr(images, "count_frames", no_second_opening)
    expected = {"pages16.tif": 3, "pages8.tif": 3, "anim.gif": 4}
    for memory in ([], ["--max-memory", SMALL]):
        out = tmp_path / f"out{len(memory)}"
        result = run_cli("convolve", folder, "-d", "1", "-o", out, "-j", "1", *memory)
        assert result.exit_code == 0, result.output
        warnings = [line for line in result.output.splitlines() if "frames was used" in line]
        assert sorted(warnings) == sorted(
            f"note: {folder / name}: only the first of its {count} frames was used "
            "(--frames all: every frame)"
            for name, count in expected.items()
        )
    streamed = run_cli(
        "convolve", folder / "pages16.tif", "-o", tmp_path / "v", "--max-memory", SMALL, "-v"
    )
    assert "streamed in" in streamed.output  # the note above came from the streamed path


# --- 4. float TIFFs: the same bytes whole or streamed -----------------------------------


def test_float_tiff_has_the_same_bytes_whole_or_streamed(tmp_path, rng):
    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "deep.tif", (rng.random((317, 289)) * 65535).astype(np.uint16))
    rgb = (rng.random((211, 197, 3)) * 255).astype(np.uint8)
    tifffile.imwrite(folder / "rgb.tif", rgb, photometric="rgb", tile=(32, 32))
    args = ["convolve", folder, "-d", "1,4", "--format", "tiff", "-j", "1"]
    assert run_cli(*args, "-o", tmp_path / "whole").exit_code == 0
    assert run_cli(*args, "-o", tmp_path / "bands", "--max-memory", SMALL).exit_code == 0
    whole, bands = outputs(tmp_path / "whole"), outputs(tmp_path / "bands")
    assert len(whole) == 4 and whole == bands
    for name in whole:  # the layout tifffile.imwrite writes for the whole array
        values = tifffile.imread(tmp_path / "whole" / name)
        again = io.BytesIO()
        photometric = "rgb" if values.ndim == 3 else "minisblack"
        tifffile.imwrite(again, values, photometric=photometric)
        assert again.getvalue() == whole[name] and values.dtype == np.float32
