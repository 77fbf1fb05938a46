"""Signals: the filtering pipeline against the direct-loop reference, and file round trips."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from reference import direct_correlate
from scipy.io import wavfile

from dilcli.batch.jobs import SignalJob
from dilcli.core.conv import BOUNDARIES, MODES
from dilcli.core.kernels import kernel_from_array, named_kernel
from dilcli.core.receptive import Layer, causal_receptive_fields
from dilcli.core.stacks import signal_layers
from dilcli.io.signals import SignalError, read_signal, wav_divisor, write_signal

CASES = [
    (mode, boundary)
    for mode in MODES
    for boundary in BOUNDARIES
    if mode != "causal" or boundary in ("constant", "nearest")
]


def run_job(tmp_path, source, kernel, dilations, suffix, **options):
    """Run a SignalJob on ``source``; return the output paths."""
    job = SignalJob(kernel, tuple(dilations), **options)
    outputs = [tmp_path / name for name in job.output_names("x", suffix)]
    job.run(source, outputs)
    return outputs


# --- the pipeline against the reference -----------------------------------------------


@pytest.mark.parametrize(("mode", "boundary"), CASES)
@pytest.mark.parametrize("shape", [(23,), (23, 3)])
@pytest.mark.parametrize("weights", [[1.0, -2.0, 0.5], [0.25, -1.0]])
def test_signal_layers_match_reference(mode, boundary, shape, weights, rng):
    x = rng.normal(size=shape)
    layers = signal_layers(x, weights, (1, 2, 5), mode=mode, boundary=boundary, cval=0.5)
    for layer in layers:
        expected = direct_correlate(x, weights, layer.dilation, mode, boundary, cval=0.5)
        assert layer.response.shape == expected.shape
        assert_allclose(layer.response, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("mode", "boundary"), CASES)
def test_signal_job_npy_outputs_match_reference(mode, boundary, tmp_path, rng):
    x = rng.normal(size=(19, 2))
    np.save(tmp_path / "in.npy", x)
    kernel = kernel_from_array([1.0, 2.0, -1.0])
    outputs = run_job(
        tmp_path, tmp_path / "in.npy", kernel, (1, 3), ".npy", mode=mode, boundary=boundary
    )
    for path, dilation in zip(outputs, (1, 3), strict=True):
        expected = direct_correlate(x, [1.0, 2.0, -1.0], dilation, mode, boundary)
        assert_allclose(np.load(path), expected, rtol=1e-12)


@pytest.mark.parametrize("mode", ["same", "causal", "valid", "full"])
def test_signal_layers_stack_matches_reference_applied_in_turn(mode, rng):
    x = rng.normal(size=(40, 2))
    weights = [0.5, -1.0, 0.75]
    layers = signal_layers(x, weights, (1, 2, 3), mode=mode, stack=True, activation="relu")
    boundary = "constant" if mode == "causal" else "reflect"
    current = x
    for layer in layers:
        current = np.maximum(direct_correlate(current, weights, layer.dilation, mode, boundary), 0)
        assert_allclose(layer.response, current, rtol=1e-12, atol=1e-12)


def test_signal_layers_convolve_flips_the_kernel(rng):
    x = rng.normal(size=30)
    (layer,) = signal_layers(x, [1.0, 2.0, 4.0], (2,), flip=True)
    assert_allclose(layer.response, direct_correlate(x, [4.0, 2.0, 1.0], 2), rtol=1e-12)


def test_signal_layers_valid_and_full_line_up_with_same(rng):
    x = rng.normal(size=50)
    weights = [1.0, -3.0, 2.0, 0.5]  # even length: the extra sample goes right
    for dilation in (1, 3):
        same = signal_layers(x, weights, (dilation,), boundary="constant")[0].response
        for mode in ("valid", "full"):
            (layer,) = signal_layers(x, weights, (dilation,), mode=mode, boundary="constant")
            inside = np.arange(len(layer.response)) + layer.start
            keep = (inside >= 0) & (inside < len(x))
            assert_allclose(layer.response[keep], same[inside[keep]], atol=1e-12)


# --- causality ---------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    length=st.integers(1, 60),
    cut=st.integers(0, 59),
    boundary=st.sampled_from(["constant", "nearest"]),
    activation=st.sampled_from(["none", "relu", "tanh"]),
    taps=st.integers(1, 4),
    stack=st.booleans(),
)
def test_causal_outputs_never_see_the_future(seed, length, cut, boundary, activation, taps, stack):
    rng = np.random.default_rng(seed)
    cut = min(cut, length - 1)
    x = rng.normal(size=(length, 2))
    changed = x.copy()
    changed[cut:] = rng.normal(size=changed[cut:].shape) * 100
    weights = rng.normal(size=taps)
    options = dict(mode="causal", boundary=boundary, stack=stack, cval=0.3)
    if stack:
        options["activation"] = activation
    before = signal_layers(x, weights, (1, 2, 4), **options)
    after = signal_layers(changed, weights, (1, 2, 4), **options)
    for old, new in zip(before, after, strict=True):
        assert_array_equal(old.response[:cut], new.response[:cut])


def test_causal_stack_of_kernel_2_up_to_512_reaches_1024_past_samples():
    dilations = [2**i for i in range(10)]
    assert causal_receptive_fields([Layer(2, d) for d in dilations])[-1] == 1024
    # The same, measured: an impulse reaches exactly the next 1024 outputs.
    x = np.zeros(1500)
    x[100] = 1.0
    last = signal_layers(x, [1.0, 1.0], dilations, mode="causal", stack=True)[-1].response
    reached = np.flatnonzero(last)
    assert reached[0] == 100 and reached[-1] == 100 + 1023 and len(reached) == 1024


# --- text tables -------------------------------------------------------------------------


def test_csv_header_and_time_column_round_trip(tmp_path):
    text = "# recorded 2024\ntime,left,right\n0.000,1.5,2\n0.010,-1,3.25\n0.020,4,0\n"
    (tmp_path / "in.csv").write_text(text)
    signal = read_signal(tmp_path / "in.csv")
    assert signal.header == ("time", "left", "right")
    assert signal.time == ("0.000", "0.010", "0.020")
    assert signal.channel_names == ["left", "right"]
    assert_array_equal(signal.data, [[1.5, 2], [-1, 3.25], [4, 0]])
    (out,) = run_job(tmp_path, tmp_path / "in.csv", named_kernel("identity", 1), (1,), ".csv")
    assert (
        out.read_text()
        == "# recorded 2024\ntime,left,right\n0.000,1.5,2\n0.010,-1,3.25\n0.020,4,0\n"
    )
    again = read_signal(out)
    assert again.header == signal.header and again.time == signal.time
    assert_array_equal(again.data, signal.data)


def test_time_column_by_name_or_number_and_none(tmp_path):
    (tmp_path / "in.csv").write_text("a,stamp,b\n1,x1,2\n3,x2,4\n")
    by_name = read_signal(tmp_path / "in.csv", time_column="stamp")
    by_number = read_signal(tmp_path / "in.csv", time_column="2")
    assert by_name.time == by_number.time == ("x1", "x2")
    assert_array_equal(by_name.data, [[1, 2], [3, 4]])
    (tmp_path / "plain.csv").write_text("time,v\n0,1\n1,2\n")
    assert read_signal(tmp_path / "plain.csv", time_column="none").data.shape == (2, 2)
    with pytest.raises(SignalError, match="no time column 'when'; columns: time, v"):
        read_signal(tmp_path / "plain.csv", time_column="when")


def test_timestamps_without_header_are_data_not_header(tmp_path):
    (tmp_path / "in.csv").write_text("2024-01-01T00:00,1\n2024-01-01T00:01,2\n")
    signal = read_signal(tmp_path / "in.csv", time_column="1")
    assert signal.header is None
    assert signal.time == ("2024-01-01T00:00", "2024-01-01T00:01")
    assert_array_equal(signal.data, [[1], [2]])


def test_time_column_follows_valid_and_full_outputs(tmp_path):
    (tmp_path / "in.csv").write_text("t,v\n" + "".join(f"{i / 10:.1f},{i}\n" for i in range(8)))
    kernel = named_kernel("box", 1)  # 3 taps, span 5 at dilation 2
    (valid,) = run_job(tmp_path, tmp_path / "in.csv", kernel, (2,), ".csv", mode="valid")
    assert read_signal(valid).time == ("0.2", "0.3", "0.4", "0.5")
    (full,) = run_job(tmp_path, tmp_path / "in.csv", kernel, (2,), ".csv", mode="full")
    assert read_signal(full).time == tuple(f"{i / 10:.1f}" for i in range(-2, 10))


@pytest.mark.parametrize(
    ("name", "text", "delimiter"),
    [
        ("in.tsv", "a\tb\n1\t2\n3\t4\n", "\t"),
        ("in.txt", "1 2\n3   4\n", None),
        ("in.csv", "a;b\n1;2\n3;4\n", ";"),
    ],
)
def test_delimiters_are_detected_and_kept(tmp_path, name, text, delimiter):
    (tmp_path / name).write_text(text)
    signal = read_signal(tmp_path / name)
    assert signal.delimiter == delimiter
    assert_array_equal(signal.data, [[1, 2], [3, 4]])
    out = tmp_path / f"out{(tmp_path / name).suffix}"
    write_signal(out, signal, signal.data)
    again = read_signal(out)
    assert again.delimiter == delimiter and again.header == signal.header
    assert_array_equal(again.data, signal.data)


def test_single_column_without_header(tmp_path):
    (tmp_path / "in.txt").write_text("0.5\n-1.25\n\n3\n")
    signal = read_signal(tmp_path / "in.txt")
    assert signal.header is None and signal.data.shape == (3, 1)
    assert signal.channel_names == ["signal"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b\n1,2\n3\n", "ragged table: line 3 has 1 values, expected 2"),
        ("a,b\n1,2\n3,four\n", "line 3, column 2: 'four' is not a number"),
        ("a,b\n1,2\n3,\n", "line 3, column 2: an empty cell is not a number"),
        ("", "empty file"),
        ("\n# only a comment\n", "empty file"),
        ("a,b\n", "only a header row"),
        ("time\n0\n1\n", "only the time column"),
    ],
)
def test_bad_tables_give_one_clear_reason(tmp_path, text, message):
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(SignalError, match=message):
        read_signal(tmp_path / "bad.csv")


def test_not_utf8_text_is_refused(tmp_path):
    (tmp_path / "bad.csv").write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(SignalError, match="not UTF-8"):
        read_signal(tmp_path / "bad.csv")


# --- .npy ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(12,), (12, 3)])
@pytest.mark.parametrize(
    ("dtype", "out_dtype"),
    [(np.float32, np.float32), (np.float64, np.float64), (np.int16, np.float32)],
)
def test_npy_keeps_shape_and_float_precision(tmp_path, shape, dtype, out_dtype, rng):
    x = (rng.normal(size=shape) * 100).astype(dtype)
    np.save(tmp_path / "in.npy", x)
    (out,) = run_job(tmp_path, tmp_path / "in.npy", named_kernel("identity", 1), (1,), ".npy")
    result = np.load(out)
    assert result.shape == shape and result.dtype == out_dtype
    assert_array_equal(result, x.astype(out_dtype))


@pytest.mark.parametrize("array", [np.zeros((2, 2, 2)), np.zeros(0), np.array(["a"])])
def test_npy_of_wrong_shape_or_kind_is_refused(tmp_path, array):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(SignalError, match=r"expected a non-empty real \(N,\) or \(N, C\) array"):
        read_signal(tmp_path / "bad.npy")


# --- WAV -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.int32, np.uint8])
@pytest.mark.parametrize("channels", [1, 2])
def test_wav_round_trip_keeps_rate_channels_and_sample_type(tmp_path, rng, dtype, channels):
    shape = (300,) if channels == 1 else (300, channels)
    if np.dtype(dtype).kind == "f":
        samples = (rng.uniform(-0.9, 0.9, size=shape)).astype(dtype)
    else:
        info = np.iinfo(dtype)
        samples = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    wavfile.write(tmp_path / "in.wav", 22050, samples)
    (out,) = run_job(tmp_path, tmp_path / "in.wav", named_kernel("identity", 1), (1,), ".wav")
    rate, written = wavfile.read(out)
    assert rate == 22050 and written.dtype == dtype and written.shape == shape
    assert_array_equal(written, samples)


def test_wav_samples_are_read_at_full_scale_one(tmp_path):
    wavfile.write(tmp_path / "in.wav", 8000, np.array([-32768, 0, 16384], dtype=np.int16))
    assert_array_equal(read_signal(tmp_path / "in.wav").data, [-1.0, 0.0, 0.5])


def test_wav_bound_scaling_never_clips_and_keeps_one_factor(tmp_path):
    # A full-scale square wave through a difference kernel peaks at twice full scale.
    square = np.where(np.arange(64) % 16 < 8, 32767, -32767).astype(np.int16)
    wavfile.write(tmp_path / "in.wav", 8000, np.stack([square, square // 4], axis=1))
    kernel = named_kernel("difference", 1)
    outputs = run_job(tmp_path, tmp_path / "in.wav", kernel, (1, 4), ".wav")
    x = square.astype(np.float64) / 32768
    for path, dilation in zip(outputs, (1, 4), strict=True):
        _, written = wavfile.read(path)
        expected = direct_correlate(x, [-1.0, 1.0], dilation) / 2  # sum |w| = 2
        assert_array_equal(written[:, 0], np.rint(expected * 32768).astype(np.int16))
        assert np.abs(written.astype(int)).max() <= 32767


def test_wav_scaling_rules():
    y = np.array([0.5, -3.0, 2.0])
    assert wav_divisor(y, "bound", 4.0) == 4.0
    assert wav_divisor(y, "bound", 0.5) == 1.0
    assert wav_divisor(y, "peak", 99) == 3.0
    assert wav_divisor(y / 10, "peak", 99) == 1.0
    assert wav_divisor(y, "none", 99) == 1.0


def test_wav_none_scaling_clips_integers(tmp_path):
    wavfile.write(
        tmp_path / "in.wav", 8000, np.array([30000, -30000, 30000, -30000], dtype=np.int16)
    )
    (out,) = run_job(
        tmp_path, tmp_path / "in.wav", named_kernel("difference", 1), (1,), ".wav", wav_scale="none"
    )
    _, written = wavfile.read(out)
    assert written.max() == 32767 and written.min() == -32768


def test_stacked_tanh_wav_is_not_attenuated(tmp_path):
    wavfile.write(tmp_path / "in.wav", 8000, np.full(32, 8192, dtype=np.int16))
    kernel = kernel_from_array([1.0, 1.0])
    outputs = run_job(
        tmp_path,
        tmp_path / "in.wav",
        kernel,
        (1, 2, 4),
        ".wav",
        mode="causal",
        stack=True,
        activation="tanh",
    )
    _, last = wavfile.read(outputs[-1])
    # tanh keeps |y| below 1, so the bound is 1: samples are tanh values at full scale.
    assert last[-1] == np.rint(np.tanh(2 * np.tanh(2 * np.tanh(0.5))) * 32768)


def test_broken_wav_is_refused(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(SignalError, match="not a readable WAV file"):
        read_signal(tmp_path / "bad.wav")


# --- the picture ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["same", "full", "causal"])
def test_plot_draws_every_row(tmp_path, rng, mode):
    from dilcli.render.signalplot import ROW_HEIGHT, signal_plot_pixels

    np.save(tmp_path / "in.npy", rng.normal(size=(5000, 2)))
    signal = read_signal(tmp_path / "in.npy")
    kernel = named_kernel("second-difference", 1)
    layers = signal_layers(signal.data, kernel.parts[0], (1, 8, 64), mode=mode)
    pixels = signal_plot_pixels(signal, layers, kernel, mode, name="in.npy")
    assert pixels.dtype == np.uint8 and pixels.shape[2] == 3
    assert pixels.shape[0] > 4 * ROW_HEIGHT
    # Red taps, and both channel colours, are drawn.
    red = (pixels[..., 0] > 180) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)
    assert red.sum() > 50
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50
