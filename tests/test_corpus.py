"""The corpus of broken and unusual files (tests/make_corpus.py), replayed.

Every file goes through ``load_image`` (strict, and with ``allow_truncated``) and through
``dilcli convolve``, each with the exact outcome it is owed; the header bombs are refused
in a fresh process within 300 MB and 10 s; the last test prints the counts.
"""

import collections
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli as run
from make_corpus import CORPUS, _pixels, make_corpus
from numpy.testing import assert_allclose, assert_array_equal

from dilcli.io.images import ImageError, count_frames, iter_frames, load_image

CASES = {case.name: case for case in CORPUS}
BOMBS = [case.name for case in CORPUS if case.kind == "bomb" and case.load != "ok"]
PEAK_MEMORY_MB = 300
BOMB_SECONDS = 10
BASELINE = "one.png"  # a 1x1 image: what the same command costs on a harmless file


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    make_corpus(folder)
    return folder


def load_outcome(path, **options):
    """("ok", LoadedImage) or ("error", message); anything else propagates (a bug)."""
    try:
        return "ok", load_image(path, **options)
    except ImageError as error:
        return "error", str(error)


def check_message(message):
    assert message.strip() and "\n" not in message
    assert "Traceback" not in message and 'File "' not in message


@pytest.mark.parametrize("allow_truncated", [False, True], ids=["strict", "lenient"])
@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.name)
def test_load_image_gives_each_file_its_outcome(corpus, case, allow_truncated):
    expected = case.outcome(allow_truncated)
    status, result = load_outcome(corpus / case.name, allow_truncated=allow_truncated)
    if expected != "ok":
        assert status == "error", f"{case.name} loaded; expected an error with {expected!r}"
        assert expected in result
        check_message(result)
        return
    assert status == "ok", f"{case.name}: {result}"
    assert (result.data.shape, result.bits) == (case.shape, case.bits)
    assert result.data.dtype == np.float32 and np.isfinite(result.data).all()
    if case.note:
        assert any(case.note in note for note in result.notes), result.notes
    else:
        assert result.notes == ()
    for note in result.notes:
        check_message(note)


def planned_stem(name):
    """The stem of a corpus file's outputs: files sharing a stem get their extension."""
    stem, suffix = Path(name).stem, Path(name).suffix
    shared = sum(Path(other).stem == stem for other in CASES) > 1
    return f"{stem}_{suffix.lstrip('.')}" if shared else stem


def convolve_corpus(corpus, out, *options):
    """Convolve the whole corpus; (CLI result, {file name: JSON log entry})."""
    log = out.parent / f"{out.name}.jsonl"
    result = run("convolve", corpus, "-o", out, "-d", "1,8", "-j", "1", "--log", log, *options)
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    return result, {Path(e["input"]).name: e for e in entries if "status" in e}


@pytest.mark.parametrize("allow_truncated", [False, True], ids=["strict", "lenient"])
def test_convolve_gives_each_file_its_outcome(corpus, tmp_path, allow_truncated):
    options = ["--allow-truncated"] if allow_truncated else []
    result, entries = convolve_corpus(corpus, tmp_path / "out", *options)
    assert sorted(entries) == sorted(CASES)
    failed = 0
    for name, case in CASES.items():
        entry, expected = entries[name], case.command_outcome(allow_truncated)
        if expected != "ok":
            failed += 1
            assert entry["status"] == "failed", (name, entry)
            assert expected in entry["reason"], (name, entry["reason"])
            assert f"error: {corpus / name}: {entry['reason']}\n" in result.output
            continue
        assert entry["status"] == "done", (name, entry)
        stem = planned_stem(name)
        assert [Path(o).name for o in entry["outputs"]] == [
            f"{stem}_laplacian_d{d}.png" for d in (1, 8)
        ]
        for output in entry["outputs"]:
            written = load_image(output)
            assert written.data.shape[:2] == case.shape[:2]  # --mode same
            assert written.bits == (16 if case.bits == 16 else 8)  # depth follows the input
        if case.note:
            warnings = entry.get("warnings", [])
            assert any(case.note in w for w in warnings), (name, warnings)
            assert f"warning: {corpus / name}: {warnings[0]}\n" in result.output
        else:
            assert "warnings" not in entry
    assert result.exit_code == 1
    assert f"{len(CASES) - failed} done, 0 skipped, {failed} failed" in result.output


def test_every_frame_on_request_and_the_frame_limit(corpus, tmp_path):
    names = ["animated.gif", "animated.png", "pages16.tif", "gray.png", "bomb_frames.png"]
    out = tmp_path / "out"
    result = run(
        "convolve", *(corpus / n for n in names), "-o", out, "-d", "2", "-j", "1", "--frames", "all"
    )
    assert result.exit_code == 1
    frame_limit = "has 2,147,483,648 frames, over the limit of 1,000 (raise it with --max-frames"
    assert f"bomb_frames.png: {frame_limit}" in result.output
    written = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert written == sorted(
        [f"animated_gif_f{n}_laplacian_d2.png" for n in range(3)]
        + [f"animated_png_f{n}_laplacian_d2.png" for n in range(2)]
        + [f"pages16_f{n}_laplacian_d2.png" for n in range(3)]
        + ["gray_f0_laplacian_d2.png"]
    )
    assert load_image(out / "pages16_f2_laplacian_d2.png").bits == 16
    limited = run(
        "convolve",
        corpus / "pages16.tif",
        "-o",
        tmp_path / "o2",
        "--frames",
        "all",
        "--max-frames",
        "2",
    )
    assert "has 3 frames, over the limit of 2" in limited.output and limited.exit_code == 1


def test_frames_decode_in_order_with_their_own_values(corpus):
    gif = [frame.data for frame in iter_frames(corpus / "animated.gif")]
    assert [round(float(f.mean()) * 255) for f in gif] == [0, 40, 80]
    pages = [frame.data for frame in iter_frames(corpus / "pages16.tif")]
    assert_allclose([p.mean() for p in pages], np.array([1000, 2000, 3000]) / 65535, rtol=1e-6)
    assert load_image(corpus / "animated.png", frame=1).data.mean() == pytest.approx(100 / 255)
    assert count_frames(corpus / "animated.png") == 2 and count_frames(corpus / "one.png") == 1
    with pytest.raises(ImageError, match="has no frame 5"):
        load_image(corpus / "animated.gif", frame=5)
    with pytest.raises(ImageError, match="over the limit of 1,000"):
        count_frames(corpus / "bomb_frames.png")


def test_an_image_smaller_than_the_dilated_kernel(corpus, tmp_path):
    same = run(
        "convolve", corpus / "tiny.webp", "-o", tmp_path / "a", "-d", "8", "--boundary", "wrap"
    )
    assert same.exit_code == 0 and (tmp_path / "a" / "tiny_laplacian_d8.png").is_file()
    valid = run(
        "convolve", corpus / "tiny.webp", "-o", tmp_path / "b", "-d", "8", "--mode", "valid"
    )
    assert valid.exit_code == 1
    assert "'valid' output would be empty: the dilated kernel spans 17 samples" in valid.output


def test_the_pixel_limit_option(corpus, tmp_path):
    result = run("convolve", corpus / "gray.png", "-o", tmp_path / "o", "--max-pixels", "100")
    assert result.exit_code == 1 and "16x24 = 384 pixels, over the limit of 100" in result.output
    assert (
        run("convolve", corpus / "gray.png", "-o", tmp_path / "o", "--max-pixels", "0").exit_code
        == 0
    )


# --- faithful decoding: exact values ----------------------------------------------------


def levels(data, top=65535):
    """Back to integer levels: equal to the file's samples iff no bit was lost."""
    return np.rint(data.astype(np.float64) * top).astype(np.int64)


def test_16_bit_and_float_tiffs_keep_every_bit(corpus):
    rgb = load_image(corpus / "rgb16.tif").data
    assert_array_equal(levels(rgb), _pixels((9, 7, 3), np.uint16))
    rotated = load_image(corpus / "rotated16.tif").data  # orientation 6: 90 degrees clockwise
    assert_array_equal(levels(rotated), np.rot90(_pixels((4, 10), np.uint16), -1))
    values = np.random.default_rng(8).normal(size=(6, 5)).astype(np.float32)
    assert_array_equal(load_image(corpus / "float.tif").data, values)
    with_nan = load_image(corpus / "float_nan.tif").data
    replaced = np.zeros_like(values, bool)
    replaced[1, 2] = replaced[3, 3] = replaced[4, 0] = True
    assert_array_equal(with_nan[replaced], 0)
    assert_array_equal(with_nan[~replaced], values[~replaced])


def _png16(pixels, filters=(0, 1, 2, 3, 4)):
    """A 16-bit PNG whose rows cycle through all five filter types (libpng-style)."""
    height, width, channels = pixels.shape
    raw = np.ascontiguousarray(pixels, ">u2").view(np.uint8).reshape(height, -1).astype(int)
    bpp, rows, previous = 2 * channels, [], np.zeros(raw.shape[1], int)
    for y in range(height):
        kind, line, out = filters[y % len(filters)], raw[y], []
        for i, value in enumerate(line):
            a = line[i - bpp] if i >= bpp else 0
            b, c = previous[i], previous[i - bpp] if i >= bpp else 0
            p = a + b - c
            paeth = (
                a
                if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c)
                else b
                if abs(p - b) <= abs(p - c)
                else c
            )
            out.append((value - (0, a, b, (a + b) // 2, paeth)[kind]) % 256)
        rows.append(bytes([kind] + out))
        previous = line
    color = {2: 4, 3: 2, 4: 6}[channels]
    header = struct.pack(">IIBBBBB", width, height, 16, color, 0, 0, 0)

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    body = (
        chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b"")
    )
    return b"\x89PNG\r\n\x1a\n" + body


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_16_bit_colour_and_gray_alpha_pngs_keep_every_bit(tmp_path, channels):
    pixels = _pixels((7, 6, channels), np.uint16)
    path = tmp_path / "deep.png"
    path.write_bytes(_png16(pixels))
    image = load_image(path)
    assert image.bits == 16
    colour = pixels[..., :-1] if channels in (2, 4) else pixels
    assert_array_equal(levels(image.data), colour[..., 0] if channels == 2 else colour)
    if channels in (2, 4):
        assert_array_equal(levels(image.alpha), pixels[..., -1])


def test_orientation_cmyk_one_bit_and_palettes(corpus):
    rotated = load_image(corpus / "exif_rotated.jpg").data
    assert rotated[:10].mean() > 0.9 and rotated[10:].mean() < 0.1  # the white half on top
    for name in ("cmyk.jpg", "cmyk.tif"):
        red = load_image(corpus / name).data
        assert red[..., 0].mean() > 0.9 and red[..., 1:].mean() < 0.1, name
    assert_array_equal(load_image(corpus / "one_bit.png").data, np.eye(7))
    assert load_image(corpus / "palette.png").alpha is None
    assert load_image(corpus / "palette_alpha.png").alpha.shape == (8, 9)
    assert load_image(corpus / "gray_alpha.png").alpha.shape == (5, 6)


# --- header bombs: refused fast, in little memory, in a fresh process ---------------------

BOMB_PROBE = """
import json, resource, sys, time
started = time.perf_counter()
from dilcli.cli import cli
try:
    cli(["convolve", sys.argv[1], "-o", sys.argv[2], "-d", "1", "-j", "1", "-q"])
except SystemExit as stop:
    code = stop.code
seconds = time.perf_counter() - started
# Linux carries ru_maxrss across fork and exec, so a child of a big pytest process would
# report the parent's size; VmHWM is the peak of this process's own memory since exec.
try:
    with open("/proc/self/status") as status:
        peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
except OSError:
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_kb /= 1024 if sys.platform == "darwin" else 1  # bytes there
print(json.dumps({"code": code, "peak_mb": peak_kb / 1024, "seconds": seconds}))
"""


def measure_bombs(corpus, out):
    """Run ``dilcli convolve`` on each bomb in its own process, two at a time."""
    results, pending = {}, [*BOMBS, BASELINE]
    while pending:
        batch, pending = pending[:2], pending[2:]
        processes = {
            name: subprocess.Popen(
                [sys.executable, "-c", BOMB_PROBE, str(corpus / name), str(out / name)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name in batch
        }
        for name, process in processes.items():
            stdout, stderr = process.communicate(timeout=60)
            results[name] = {**json.loads(stdout.strip().splitlines()[-1]), "stderr": stderr}
    return results


@pytest.fixture(scope="module")
def bomb_measurements(corpus, tmp_path_factory):
    return measure_bombs(corpus, tmp_path_factory.mktemp("bomb-out"))


@pytest.mark.parametrize("name", BOMBS)
def test_header_bombs_are_refused_fast_in_little_memory(bomb_measurements, name):
    measured = bomb_measurements[name]
    assert measured["code"] == 1
    line = measured["stderr"]  # -q: the error line alone
    assert line.startswith("error: ") and line.endswith("\n") and line.count("\n") == 1, line
    assert f"{name}: " in line and CASES[name].command_outcome() in line
    assert measured["peak_mb"] < PEAK_MEMORY_MB, measured
    assert measured["seconds"] < BOMB_SECONDS, measured


# --- the counts ---------------------------------------------------------------------------


def test_zz_corpus_counts(corpus, tmp_path, bomb_measurements, capsys):
    """Replay everything once more and print what happened (shown without -s too)."""
    tried, outcomes, unexpected = 0, collections.Counter(), []
    for allow_truncated in (False, True):
        for case in CORPUS:
            tried += 1
            try:
                load_image(corpus / case.name, allow_truncated=allow_truncated)
                outcomes["ok"] += 1
            except ImageError:
                outcomes[f"ImageError ({case.kind})"] += 1
            except Exception as error:  # counted, then failed below
                unexpected.append(f"{case.name}: {type(error).__name__}: {error}")
    _, strict = convolve_corpus(corpus, tmp_path / "strict")
    _, lenient = convolve_corpus(corpus, tmp_path / "lenient", "--allow-truncated")
    cli_counts = collections.Counter(e["status"] for e in [*strict.values(), *lenient.values()])
    cli_unexpected = [
        e for e in [*strict.values(), *lenient.values()] if "unexpected" in (e["reason"] or "")
    ]
    bombs = [bomb_measurements[name] for name in BOMBS]
    peak, slowest = max(m["peak_mb"] for m in bombs), max(m["seconds"] for m in bombs)
    baseline = bomb_measurements[BASELINE]
    lines = [
        f"corpus: {len(CORPUS)} files, {tried} loads (strict and --allow-truncated): "
        + ", ".join(f"{count} {kind}" for kind, count in sorted(outcomes.items())),
        f"corpus: dilcli convolve, 2 runs: {cli_counts['done']} done, "
        f"{cli_counts['failed']} failed; "
        f"unexpected exceptions: {len(unexpected) + len(cli_unexpected)}",
        f"corpus: {len(BOMBS)} header bombs refused, peak memory {peak:.0f} MB "
        f"(limit {PEAK_MEMORY_MB}), slowest {slowest:.2f} s (limit {BOMB_SECONDS}); "
        f"a 1x1 image: {baseline['peak_mb']:.0f} MB, {baseline['seconds']:.2f} s",
    ]
    with capsys.disabled():  # shown without -s, in CI's log
        print("\n" + "\n".join(lines))
    assert not unexpected and not cli_unexpected
    assert outcomes["ok"] == sum(case.outcome(a) == "ok" for case in CORPUS for a in (False, True))


def test_make_corpus_runs_as_a_script(tmp_path):
    script = Path(__file__).with_name("make_corpus.py")
    done = subprocess.run(
        [sys.executable, script, tmp_path / "c"], capture_output=True, text=True, check=True
    )
    assert done.stdout.startswith(f"wrote {len(CORPUS)} files to ")
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == sorted(CASES)
    assert (tmp_path / "c" / "bomb.png").stat().st_size < 200


@pytest.mark.parametrize("orientation", range(1, 9))
def test_tiff_orientation_matches_pillows_exif_transpose(tmp_path, orientation):
    """16-bit TIFFs (tifffile) and 8-bit PNGs (Pillow) with one orientation tag agree."""
    import tifffile
    from PIL import Image

    pixels = _pixels((3, 5))
    tifffile.imwrite(
        tmp_path / "o.tif",
        pixels.astype(np.uint16) * 257,
        extratags=[(274, "H", 1, orientation, True)],
    )
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(tmp_path / "o.png", exif=exif)
    deep, shallow = load_image(tmp_path / "o.tif"), load_image(tmp_path / "o.png")
    assert (deep.bits, shallow.bits) == (16, 8)
    assert_array_equal(levels(deep.data), levels(shallow.data, 255) * 257)


def test_context_reads_images_the_same_way(corpus, tmp_path):
    starlet = ["--preset", "starlet", "--levels", "2"]
    strict = run("context", corpus / "truncated.png", "-o", tmp_path / "a", *starlet)
    assert strict.exit_code == 1 and "truncated inside the IDAT chunk" in strict.output
    lenient = run(
        "context", corpus / "truncated.png", "-o", tmp_path / "b", *starlet, "--allow-truncated"
    )
    assert lenient.exit_code == 0, lenient.output
    assert "warning: " in lenient.output and "decoded what could be read" in lenient.output
    options = ["-d", "1,2", "--frames", "all", "--final-only"]
    frames = run("context", corpus / "animated.gif", "-o", tmp_path / "c", *options)
    assert frames.exit_code == 0, frames.output
    assert sorted(p.name for p in (tmp_path / "c").glob("*.png")) == [
        f"animated_f{n}_context_l2_d2.png" for n in range(3)
    ]
