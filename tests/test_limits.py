"""Hostile inputs of every kind: one-line errors, limits checked before allocating.

Each hostile file is built small in ``tmp_path`` and goes through the public function
and through the command line as a user would run it: the exit code, one line naming
the file and the reason, never a traceback. Resource cases run ``dilcli`` in a fresh
process and read its peak memory (VmHWM) there; a generous timeout bounds the time.
Numbers are checked against independent references (numpy.load, numpy.pad +
numpy.correlate, tests/reference.py).
"""

import io
import json
import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli as run
from PIL import Image
from reference import direct_correlate
from scipy.io import wavfile

from dilcli.core import conv, kernels, stacks
from dilcli.core.kernels import Kernel
from dilcli.io import arrays
from dilcli.io.images import ImageError, load_image
from dilcli.io.kernelspecs import load_kernel_file
from dilcli.io.signals import DEFAULT_MAX_SAMPLES, SignalError, read_signal

PEAK_MB = 500
TIMEOUT = 120  # seconds: a hang fails, a slow machine does not

# Runs the command line in a fresh process and reports its exit code and peak memory.
# Linux carries ru_maxrss across fork and exec, so a child of a big pytest process would
# report the parent's size; VmHWM is the peak of this process's own memory since exec.
PROBE = """
import json, sys
from dilcli.cli import cli
code = 0
try:
    cli(sys.argv[1:])
except SystemExit as stop:
    code = stop.code
with open("/proc/self/status") as status:
    peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(json.dumps({"code": code, "peak_mb": peak_kb / 1024}))
"""

pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/self/status"), reason="peak memory is read from /proc"
)


def measure(*args, cwd):
    """``dilcli *args`` in a fresh process: (exit code, peak MB, stderr)."""
    process = subprocess.run(
        [sys.executable, "-c", PROBE, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=cwd,
    )
    report = json.loads(process.stdout.strip().splitlines()[-1])
    return report["code"], report["peak_mb"], process.stderr


def one_error_line(text, name, reason):
    """The batch's ``error: <file>: <reason>`` as the only line (with -q)."""
    assert text.count("\n") == 1 and text.endswith("\n"), text
    assert text.startswith("error: ") and f"{name}: " in text, text
    assert reason in text, text
    assert "Traceback" not in text


def usage_error_line(text, name, reason):
    """A usage error (exit 2): Click's 'Error:' line names the file and the reason."""
    lines = [line for line in text.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, text
    assert name in lines[0] and reason in lines[0], text
    assert "Traceback" not in text


def npy_header(shape, descr="<f8"):
    """An .npy header with no data behind it."""
    buffer = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.fixture
def signal(tmp_path):
    path = tmp_path / "sig.npy"
    np.save(path, np.sin(np.arange(400) / 10))
    return path


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "img.png"
    Image.fromarray((np.arange(40 * 50) % 251).astype(np.uint8).reshape(40, 50)).save(path)
    return path


# --- the one reader: exactly numpy.load on valid files -----------------------------------


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12.0).reshape(3, 4),
        np.asfortranarray(np.arange(24, dtype=">i4").reshape(2, 3, 4)),
        np.array(3.5, dtype=np.float16),
        np.zeros((0, 3), np.uint8),
        np.array([np.nan, -np.inf, -0.0, 1e-310]),
        np.arange(2000, dtype=np.int64).reshape(40, 50)[:, ::2],
    ],
    ids=["float64", "fortran-bigendian", "0d-float16", "empty", "special", "strided"],
)
def test_read_npy_equals_numpy_load(tmp_path, array):
    path = tmp_path / "a.npy"
    np.save(path, array)
    expected, got = np.load(path), arrays.read_npy(path)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert got.tobytes() == expected.tobytes()  # every bit, NaN and -0.0 included
    assert got.flags.f_contiguous == expected.flags.f_contiguous


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_read_npz_equals_numpy_load(tmp_path, save):
    rng = np.random.default_rng(3)
    contents = {
        "dilations": np.array([1, 2, 4]),
        "weight_0": rng.normal(size=(4, 3, 3, 3)).astype(np.float32),
        "big": rng.normal(size=(300, 700)),  # larger than one 1 MiB block
        "fortran": np.asfortranarray(rng.integers(0, 9, size=(5, 7), dtype=np.uint16)),
    }
    path = tmp_path / "a.npz"
    save(path, **contents)
    got = arrays.read_npz(path)
    with np.load(path) as expected:
        assert sorted(got) == sorted(expected.files)
        for name in expected.files:
            assert got[name].dtype == expected[name].dtype
            assert got[name].shape == expected[name].shape
            assert got[name].tobytes() == expected[name].tobytes()


def test_one_module_reads_npy_and_npz():
    """No reader of .npy/.npz bypasses io/arrays.py (numpy.load unpickles on request,
    allocates before checking, and calls a short file 'holding objects')."""
    package = Path(arrays.__file__).parent.parent
    readers = set()
    for path in package.rglob("*.py"):
        source = path.read_text()
        if path.name != "arrays.py":
            assert "np.load(" not in source and "numpy.load(" not in source, path
        if "read_npy(" in source or "read_npz(" in source:
            readers.add(path.relative_to(package).as_posix())
    assert readers - {"io/arrays.py"} == {
        "io/images.py",
        "io/signals.py",
        "io/kernelspecs.py",
        "io/weights.py",
    }


# --- truncated and pickled .npy, everywhere an .npy is read --------------------------------


def test_truncated_npy_says_truncated_everywhere(tmp_path, signal, image):
    data = npy_bytes(np.ones((6, 5), np.float32))
    short = tmp_path / "short.npy"
    short.write_bytes(data[:-8])
    reason = "truncated .npy: the header promises 120 bytes of float32 (6, 5), the file holds 112"

    with pytest.raises(arrays.ArrayError, match="truncated") as caught:
        arrays.read_npy(short)
    assert str(caught.value) == reason
    with pytest.raises(ImageError, match=re.escape(reason)):
        load_image(short)
    with pytest.raises(ValueError, match="truncated"):
        load_kernel_file(short)
    with pytest.raises(SignalError, match="truncated"):
        read_signal(short)

    result = run("signal", signal, "-k", short, "-d", "1", "-o", tmp_path / "a")
    assert result.exit_code == 2
    usage_error_line(result.output, "short.npy", reason)
    result = run("signal", short, "-d", "1", "-o", tmp_path / "b", "-q")
    assert result.exit_code == 1
    one_error_line(result.output, "short.npy", reason)
    result = run("convolve", short, "-d", "1", "-o", tmp_path / "c", "-q")
    assert result.exit_code == 1
    one_error_line(result.output, "short.npy", "truncated .npy")


class _Trap:
    """Unpickling this makes a folder: proof that something was unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_object_arrays_are_never_unpickled(tmp_path, signal, image):
    marker = tmp_path / "unpickled"
    path = tmp_path / "objects.npy"
    np.save(path, np.array([_Trap(str(marker)), 1], dtype=object), allow_pickle=True)
    archive = tmp_path / "objects.npz"
    np.savez(archive, dilations=np.array([_Trap(str(marker))], dtype=object))

    with pytest.raises(arrays.ArrayError, match="never unpickled"):
        arrays.read_npy(path)
    with pytest.raises(arrays.ArrayError, match="never unpickled"):
        arrays.read_npz(archive)
    with pytest.raises(SignalError, match="expected a non-empty real"):
        read_signal(path)
    result = run("signal", signal, "-k", path, "-d", "1", "-o", tmp_path / "a")
    assert result.exit_code == 2
    usage_error_line(result.output, "objects.npy", "Python objects (dtype object)")
    result = run("context", image, "--weights", archive, "-o", tmp_path / "b")
    assert result.exit_code == 2
    usage_error_line(result.output, "objects.npz", "member 'dilations' holds Python objects")
    assert not marker.exists()


# --- kernels ---------------------------------------------------------------------------------


def test_kernel_header_claiming_2_20_squared_taps_is_refused_before_allocating(
    tmp_path, signal, image
):
    bomb = tmp_path / "bomb.npy"
    bomb.write_bytes(npy_header((2**20, 2**20)))  # 128 bytes claiming 8 TiB
    reason = "the kernel has 1,099,511,627,776 taps (1048576x1048576), over the limit of 65,536"

    with pytest.raises(ValueError, match=r"bomb.npy: the kernel has 1,099,511,627,776 taps"):
        load_kernel_file(bomb)
    for command, target in (("convolve", image), ("signal", signal)):
        result = run(command, target, "-k", bomb, "-d", "1", "-o", tmp_path / command)
        assert result.exit_code == 2
        usage_error_line(result.output, "bomb.npy", reason)
        code, peak, stderr = measure(command, target, "-k", bomb, "-o", "out", cwd=tmp_path)
        assert code == 2 and reason in stderr
        assert peak < PEAK_MB


def test_text_kernels_have_limits_too(tmp_path, signal):
    many = tmp_path / "many.csv"
    many.write_text("0," * (kernels.MAX_KERNEL_TAPS + 1) + "1\n")  # 131 KB
    with pytest.raises(ValueError, match="more than 65,536 values, over the limit of 65,536"):
        load_kernel_file(many, ndim=1)
    huge = tmp_path / "huge.txt"
    huge.write_text("# padding\n" * (kernels.MAX_KERNEL_TEXT_BYTES // 10 + 1) + "1 2 1\n")
    with pytest.raises(ValueError, match="over the limit of 4,194,304 bytes for a text kernel"):
        load_kernel_file(huge, ndim=1)
    with pytest.raises(ValueError, match="over the limit of 65,536 taps"):
        kernels.parse_kernel_text(",".join(["1"] * 70_000), ndim=1)
    result = run("signal", signal, "-k", many, "-d", "1", "-o", tmp_path / "out")
    assert result.exit_code == 2
    usage_error_line(result.output, "many.csv", "over the limit of 65,536")


def test_a_million_tap_kernel_is_refused_by_the_taps_limit(tmp_path, signal):
    path = tmp_path / "million.npy"
    np.save(path, np.ones(10**6))
    result = run("signal", signal, "-k", path, "-d", "1", "-o", tmp_path / "out")
    assert result.exit_code == 2
    usage_error_line(result.output, "million.npy", "1,000,000 taps (1000000), over the limit")


def _reflect_reference(x, weights, dilation):
    """Same-mode correlation with scipy.ndimage's reflect, from numpy.pad ('symmetric'
    is ndimage's 'reflect', for pads wider than the signal too) and numpy.correlate."""
    span = (len(weights) - 1) * dilation + 1
    before = (span - 1) // 2
    padded = np.pad(x, (before, span - 1 - before), mode="symmetric")
    dilated = np.zeros(span)
    dilated[::dilation] = weights
    return np.correlate(padded, dilated, mode="valid")


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
def test_memory_does_not_grow_with_taps_times_samples(tmp_path, compiled):
    """A 65,536-tap kernel over 4,000 samples: every output window leaves the signal,
    so every tap is gathered. The engines once held all taps' gathered copies at once
    (taps x samples x 8 bytes: 2 GB here); now memory stays flat and the numbers
    match numpy.pad + numpy.correlate."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=4000)
    weights = rng.normal(size=kernels.MAX_KERNEL_TAPS)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "k.npy", weights)
    snippet = f"""
import json, numpy as np
from dilcli.core import engine
from dilcli.core import conv
engine.use_compiled = {compiled}
y = conv.dilated_correlate(np.load("x.npy"), np.load("k.npy"), 1, boundary="reflect")
np.save("y.npy", y)
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps(peak / 1024))
"""
    process = subprocess.run(
        [sys.executable, "-c", snippet], capture_output=True, text=True, timeout=TIMEOUT,
        cwd=tmp_path,
    )  # fmt: skip
    assert process.returncode == 0, process.stderr
    assert json.loads(process.stdout) < 200  # MB; was over 2,000
    np.testing.assert_allclose(
        np.load(tmp_path / "y.npy"), _reflect_reference(x, weights, 1), rtol=1e-9, atol=1e-9
    )


def test_wide_kernel_on_a_short_signal_through_the_cli(tmp_path):
    rng = np.random.default_rng(12)
    x = rng.normal(size=(400, 2))
    weights = rng.normal(size=kernels.MAX_KERNEL_TAPS)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "wide.npy", weights)
    code, peak, stderr = measure(
        "signal", "x.npy", "-k", "wide.npy", "-d", "3", "-o", "out", "-q", cwd=tmp_path
    )
    assert code == 0, stderr
    assert peak < PEAK_MB
    got = np.load(tmp_path / "out" / "x_wide_d3.npy")
    for channel in range(2):
        expected = _reflect_reference(x[:, channel], weights, 3)
        np.testing.assert_allclose(got[:, channel], expected, rtol=1e-9, atol=1e-9)


# --- weights archives ------------------------------------------------------------------------


def _zip_member(name, payload, crc, size):
    """A zip local header and data for a deflated member, and its directory entry."""
    name = name.encode()
    fields = struct.pack("<HHHHHIIIHH", 20, 0, 8, 0, 0x21, crc, len(payload), size, len(name), 0)
    local = b"PK\x03\x04" + fields + name + payload
    entry = b"PK\x01\x02" + struct.pack("<H", 20) + fields + struct.pack("<HHHII", 0, 0, 0, 0, 0)
    return local, entry + name


def _zip(members):
    """A zip archive of ``(name, payload, crc, size)``: central directory included."""
    body, directory = b"", b""
    for member in members:
        local, entry = _zip_member(*member)
        directory += entry[:42] + struct.pack("<I", len(body)) + entry[46:]
        body += local
    end = struct.pack("<HHHHIIH", 0, 0, len(members), len(members), len(directory), len(body), 0)
    return body + directory + b"PK\x05\x06" + end


def _deflated(data):
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(), zlib.crc32(data), len(data)


def _zero_bomb(header, mebibytes):
    """Raw deflate of ``header`` then ``mebibytes`` MiB of zeros, built from one flushed
    MiB repeated (deflate blocks after a full flush stand alone): no GiB is ever made."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = compressor.compress(header) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    tail = compressor.flush(zlib.Z_FINISH)
    crc = zlib.crc32(header)
    zeros = bytes(1 << 20)
    for _ in range(mebibytes):
        crc = zlib.crc32(zeros, crc)
    return head + block * mebibytes + tail, crc, len(header) + (mebibytes << 20)


def test_npz_member_deflating_to_4_gib_is_refused_at_once(tmp_path, image):
    mebibytes = 4095  # just under 4 GiB: no zip64 needed
    header = npy_header((1, 1, 32, 2**24 - 8))  # side 32: within the kernel-side limit
    dilations = _deflated(npy_bytes(np.array([1])))
    bomb = _zero_bomb(header, mebibytes)
    path = tmp_path / "bomb.npz"
    path.write_bytes(_zip([("dilations.npy", *dilations), ("weight_0.npy", *bomb)]))
    assert path.stat().st_size < 5 * 2**20

    with pytest.raises(arrays.ArrayError, match="member 'weight_0.npy' declares 4,293,918,848"):
        arrays.read_npz(path, max_total_bytes=stacks.MAX_WEIGHTS_BYTES)
    result = run("context", image, "--weights", path, "-o", tmp_path / "out")
    assert result.exit_code == 2
    usage_error_line(result.output, "bomb.npz", "over the limit of 268,435,456")
    code, peak, stderr = measure("context", image, "--weights", path, "-o", "out", cwd=tmp_path)
    assert code == 2 and "bomb.npz" in stderr and "declares" in stderr
    assert peak < PEAK_MB


def test_npz_member_shorter_than_its_header_is_truncated(tmp_path, image):
    dilations = _deflated(npy_bytes(np.array([1])))
    short = _deflated(npy_bytes(np.ones((1, 1, 3, 3)))[:-16])
    path = tmp_path / "short.npz"
    path.write_bytes(_zip([("dilations.npy", *dilations), ("weight_0.npy", *short)]))
    with pytest.raises(arrays.ArrayError, match="truncated member 'weight_0'"):
        arrays.read_npz(path)
    result = run("context", image, "--weights", path, "-o", tmp_path / "out")
    assert result.exit_code == 2
    usage_error_line(result.output, "short.npz", "truncated member 'weight_0': the header")


def test_a_2048_square_weights_kernel_is_refused_by_its_side(tmp_path, image):
    path = tmp_path / "k2048.npz"
    np.savez_compressed(path, dilations=np.array([1]), weight_0=np.zeros((1, 1, 2048, 2048)))
    assert path.stat().st_size < 100_000
    reason = "'weight_0' has 2048x2048 kernels, over the limit of 64 taps a side"
    with pytest.raises(ValueError, match=reason):
        stacks.stack_from_arrays(
            {"dilations": np.array([1]), "weight_0": np.zeros((1, 1, 2048, 2048))}
        )
    code, peak, stderr = measure("context", image, "--weights", path, "-o", "out", cwd=tmp_path)
    assert code == 2 and "k2048.npz" in stderr and reason in stderr
    assert peak < PEAK_MB


def test_weights_dilation_over_the_limit_is_refused(tmp_path, image):
    path = tmp_path / "far.npz"
    np.savez(path, dilations=np.array([2**40]), weight_0=np.ones((1, 1, 3, 3)))
    result = run("context", image, "--weights", path, "-o", tmp_path / "out")
    assert result.exit_code == 2
    usage_error_line(result.output, "far.npz", "a dilation must be at most 2**31 - 1")


# --- signals ---------------------------------------------------------------------------------


def _big_csv(path, rows):
    block = "".join(f"{i / 1000:.3f},{np.sin(i):.6f},{np.cos(i):.6f}\n" for i in range(10_000))
    path.write_text("time,a,b\n" + block * (rows // 10_000))


def test_a_large_csv_is_read_in_a_small_multiple_of_its_data(tmp_path):
    path = tmp_path / "big.csv"
    _big_csv(path, 1_000_000)  # 26 MB of text, 16 MB of float64 values
    snippet = """
import json, sys
from dilcli.io.signals import read_signal
signal = read_signal(sys.argv[1])
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps([list(signal.data.shape), signal.time[10_001], peak / 1024]))
"""
    process = subprocess.run(
        [sys.executable, "-c", snippet, str(path)], capture_output=True, text=True,
        timeout=TIMEOUT,
    )  # fmt: skip
    assert process.returncode == 0, process.stderr
    shape, cell, peak = json.loads(process.stdout)
    assert shape == [1_000_000, 2] and cell == "0.001"
    assert peak < 200  # MB (about 700 before: Python lists of every cell)


def test_a_large_csv_through_the_cli(tmp_path):
    _big_csv(tmp_path / "big.csv", 600_000)
    code, peak, stderr = measure(
        "signal", "big.csv", "-k", "1,-1", "-d", "1", "-o", "out", "-q", cwd=tmp_path
    )
    assert code == 0, stderr
    assert peak < PEAK_MB
    (written,) = (tmp_path / "out").glob("big_custom-*_d1.csv")
    out = read_signal(written)
    source = read_signal(tmp_path / "big.csv")
    assert out.time == source.time
    np.testing.assert_allclose(out.data[:-1], source.data[:-1] - source.data[1:], atol=1e-12)


def test_signal_sample_limit_is_checked_before_reading(tmp_path):
    bomb = tmp_path / "bomb.npy"
    bomb.write_bytes(npy_header((10**12,)))
    with pytest.raises(SignalError, match="1,000,000,000,000 values, over the limit of 250,0"):
        read_signal(bomb)
    assert DEFAULT_MAX_SAMPLES == 250_000_000
    table = tmp_path / "t.csv"
    table.write_text("".join(f"{i},{i}\n" for i in range(600)))
    with pytest.raises(SignalError, match="600 rows x 2 columns = 1,200 values, over the limit"):
        read_signal(table, max_samples=1000)
    assert read_signal(table, max_samples=1200).data.shape == (600, 2)
    wav = tmp_path / "w.wav"
    wavfile.write(wav, 8000, np.zeros((300, 2), np.int16))
    with pytest.raises(SignalError, match="300 samples x 2 channels = 600 values, over the limit"):
        read_signal(wav, max_samples=599)

    code, peak, stderr = measure("signal", bomb, "-d", "1", "-o", "out", "-q", cwd=tmp_path)
    assert code == 1
    one_error_line(stderr, "bomb.npy", "over the limit of 250,000,000")
    assert peak < PEAK_MB


def test_an_overlong_text_line_is_refused(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text("1," * (2**20) + "1\n")
    with pytest.raises(SignalError, match="line 1 is longer than 1,048,576 characters"):
        read_signal(path)
    result = run("signal", path, "-d", "1", "-o", tmp_path / "out", "-q")
    assert result.exit_code == 1
    one_error_line(result.output, "wide.csv", "line 1 is longer than")


@pytest.mark.parametrize("suffix", [".csv", ".npy", ".wav"])
def test_nan_and_inf_in_signals_become_zero_with_a_note(tmp_path, suffix):
    values = np.array([[1.0, np.nan], [np.inf, 2.0], [-np.inf, 3.0], [4.0, 5.0]])
    path = tmp_path / f"s{suffix}"
    if suffix == ".csv":
        path.write_text("".join(f"{a},{b}\n" for a, b in values))
    elif suffix == ".npy":
        np.save(path, values)
    else:
        wavfile.write(path, 8000, values.astype(np.float32))
    signal = read_signal(path)
    assert signal.notes == ("3 NaN or infinite value(s) replaced by 0",)
    np.testing.assert_array_equal(signal.data, np.nan_to_num(values, posinf=0, neginf=0))
    result = run("signal", path, "-k", "identity", "-d", "1", "-o", tmp_path / "out", "-q")
    assert result.exit_code == 0
    written = read_signal(tmp_path / "out" / f"s_identity_d1{suffix}")
    np.testing.assert_array_equal(written.data, np.nan_to_num(values, posinf=0, neginf=0))


def _wav(path, raw, *, channels=1, rate=8000, bits=24, fmt_size=16, data_size=None):
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, bits)
    size = len(raw) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", fmt_size) + fmt
    body += b"data" + struct.pack("<I", size) + raw
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def test_24_bit_wav_is_read_and_written_as_24_bit(tmp_path):
    samples = np.array([[0, 1], [-1, 2**23 - 1], [-(2**23), 12345], [777, -4242]] * 50)
    raw = b"".join(int(v).to_bytes(3, "little", signed=True) for v in samples.ravel())
    path = tmp_path / "deep.wav"
    _wav(path, raw, channels=2)
    signal = read_signal(path)
    assert signal.sample_bits == 24 and signal.rate == 8000
    np.testing.assert_array_equal(signal.data, samples / 2**23)  # independent decode
    result = run("signal", path, "-k", "identity", "-d", "1", "-o", tmp_path / "out", "-q")
    assert result.exit_code == 0
    written = (tmp_path / "out" / "deep_identity_d1.wav").read_bytes()
    tag, channels, rate, _, block, bits = struct.unpack("<HHIIHH", written[20:36])
    assert (tag, channels, rate, block, bits) == (1, 2, 8000, 6, 24)
    assert written[44:] == raw  # every sample back, bit for bit


def test_wav_with_rate_zero_or_huge_claims_gives_one_clear_line(tmp_path):
    raw = np.arange(100, dtype="<i2").tobytes()
    _wav(tmp_path / "rate0.wav", raw, bits=16, rate=0)
    _wav(tmp_path / "fmt.wav", raw, bits=16, fmt_size=0x7FFFFFF0)
    _wav(tmp_path / "data.wav", raw, bits=16, data_size=0xFFFFFFF0)
    with pytest.raises(SignalError, match="its sample rate is 0"):
        read_signal(tmp_path / "rate0.wav")
    with pytest.raises(SignalError, match="claims 2,147,483,632 bytes, past the end of the file"):
        read_signal(tmp_path / "fmt.wav")  # scipy: "cannot access local variable 'data'"
    long_claim = read_signal(tmp_path / "data.wav")
    assert long_claim.notes == (
        "truncated WAV: the data chunk claims 4,294,967,280 bytes, the file holds 200; "
        "read as far as it goes",
    )
    np.testing.assert_array_equal(long_claim.data, np.arange(100) / 32768)
    for name, reason in (("rate0.wav", "sample rate is 0"), ("fmt.wav", "past the end")):
        result = run("signal", tmp_path / name, "-d", "1", "-o", tmp_path / "out", "-q")
        assert result.exit_code == 1
        one_error_line(result.output, name, reason)
        assert "local variable" not in result.output


# --- dilations -------------------------------------------------------------------------------


@pytest.mark.parametrize("boundary", ["reflect", "wrap", "mirror"])
def test_the_largest_dilation_gives_exact_numbers(boundary):
    """At d = 2**31 - 1 a 3-tap kernel reads x at i - d, i, i + d: the boundaries are
    periodic, so the reference at d mod period (tests/reference.py) is the same sum."""
    x = np.random.default_rng(4).normal(size=(40, 2))
    period = {"reflect": 80, "wrap": 40, "mirror": 78}[boundary]
    d = conv.MAX_DILATION
    assert d == 2**31 - 1
    got = conv.dilated_correlate(x, [1.0, -2.0, 0.5], d, boundary=boundary)
    expected = direct_correlate(x, [1.0, -2.0, 0.5], d % period, boundary=boundary)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dilation", [2**31, 2**63 - 1, 2**63, 2**64, np.uint64(2**63)])
def test_dilations_beyond_the_limit_are_a_value_error(dilation):
    kernel = Kernel("k", (np.array([1.0, -1.0]),))
    for call in (
        lambda: conv.dilated_correlate(np.ones(10), [1.0, -1.0], dilation),
        lambda: conv.apply_kernel(np.ones(10), kernel, dilation),
        lambda: conv.dilated_correlate(np.ones((5, 5)), np.ones((3, 3)), (1, dilation)),
    ):
        with pytest.raises(ValueError, match=r"dilation must be at most 2\*\*31 - 1"):
            call()


def test_full_mode_cannot_grow_a_small_input_to_gigabytes():
    with pytest.raises(ValueError, match="over the limit of 1,073,741,824"):
        conv.dilated_correlate(np.ones(10), [1.0, 1.0], 2**30, mode="full")
    assert conv.dilated_correlate(np.ones(10), [1.0, 1.0], 1000, mode="full").shape == (1010,)


# --- a damaged TIFF tag (the fuzz test's float.tif, bit flip at byte 350) -------------------


def test_tiff_size_tag_without_a_value_is_an_image_error(tmp_path):
    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.ones((5, 4), np.float32))
    data = bytearray(buffer.getvalue())
    (ifd,) = struct.unpack("<I", data[4:8])
    (count,) = struct.unpack("<H", data[ifd : ifd + 2])
    for entry in range(ifd + 2, ifd + 2 + 12 * count, 12):
        if struct.unpack("<H", data[entry : entry + 2])[0] == 256:  # ImageWidth
            data[entry + 4 : entry + 8] = struct.pack("<I", 0)  # a count of 0: a tuple
    path = tmp_path / "bad.tif"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageError, match=r"damaged TIFF file: its ImageWidth tag is \(\)"):
        load_image(path)
    result = run("convolve", path, "-d", "1", "-o", tmp_path / "out", "-q")
    assert result.exit_code == 1
    one_error_line(result.output, "bad.tif", "its ImageWidth tag is ()")
