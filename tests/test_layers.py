"""One Layer for every stack: the layers that run are the layers whose receptive field
is measured; one runner for 1-D and 2-D; ``relu=`` with ``truncate=`` as its old name."""

import dataclasses
import itertools
import json
import pickle
import re

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from reference import boundary_index, direct_correlate

from dilcli.core import layers as layers_module
from dilcli.core import receptive, stacks
from dilcli.core.layers import Layer, padding_before
from dilcli.vocab import CONTEXT_DILATIONS

RNG = np.random.default_rng(12)
TABLE_1_FIELDS = [3, 5, 9, 17, 33, 65, 67, 67]  # Yu & Koltun (2015), Table 1


def test_one_layer_class_under_every_old_name():
    from dilcli.context import Layer as context_layer  # dilcli 0.1's module paths
    from dilcli.jobs import SignalLayer
    from dilcli.receptive import Layer as receptive_layer

    assert receptive.Layer is stacks.Layer is Layer is context_layer is receptive_layer
    assert SignalLayer is stacks.LayerOutput


def impulse_extent(response):
    """(rows, columns) of the bounding box of the non-zero values of ``response``."""
    where = np.nonzero(np.abs(response).sum(axis=tuple(range(2, response.ndim))) > 0)
    return tuple(int(w.max() - w.min() + 1) for w in where)


def test_the_stack_that_runs_has_the_receptive_field_printed():
    # Table 1's module, run on an impulse with positive weights: what each layer's output
    # reaches is its receptive field, which receptive.py reads from the same layers.
    layers = [
        Layer(np.ones_like(layer.weights), layer.dilation, relu=layer.relu)
        for layer in stacks.context_basic(1)
    ]
    x = np.zeros((151, 151, 1))
    x[75, 75] = 1.0
    outputs = stacks.forward(x, layers, boundary="constant")
    assert receptive.receptive_fields(layers) == TABLE_1_FIELDS
    assert [impulse_extent(y) for y in outputs] == [(n, n) for n in TABLE_1_FIELDS]
    assert [layer.dilation for layer in layers] == list(CONTEXT_DILATIONS)


def test_kernels_of_other_sizes_per_axis_are_measured_per_axis():
    layers = stacks.random_stack([1, 3], size=(3, 5), seed=1)
    positive = [Layer(np.abs(layer.weights) + 0.1, layer.dilation) for layer in layers]
    x = np.zeros((41, 41))
    x[20, 20] = 1.0
    outputs = stacks.forward(x, positive, boundary="constant")
    shapes = receptive.receptive_field_shapes(positive)
    assert shapes == [(3, 5), (9, 17)]
    assert [impulse_extent(y[..., None]) for y in outputs] == shapes
    with pytest.raises(ValueError, match="another size on each axis"):
        receptive.receptive_fields(positive)


def test_receptive_functions_accept_any_object_with_the_geometry():
    @dataclasses.dataclass
    class Conv:
        kernel: int
        dilation: int
        stride: int = 1

    assert receptive.receptive_fields([Conv(3, 1), Conv(3, 2, 2), Conv(3, 4)]) == [3, 7, 23]
    assert receptive.receptive_fields(stacks.kernel_stack(np.ones((3, 3)), [1, 2])) == [3, 7]
    assert receptive.receptive_fields(stacks.signal_stack([1.0, 1.0], [1, 2, 4])) == [2, 4, 8]


def test_a_layer_is_a_value():
    weights = RNG.normal(size=(2, 3, 3, 3))
    layer = Layer(weights, 2, bias=np.array([0.5, -1.0]), activation="tanh")
    assert pickle.loads(pickle.dumps(layer)) == layer
    assert pickle.loads(pickle.dumps(Layer(3, 2, 2))) == Layer(3, 2, 2)
    assert layer != Layer(weights + 1e-9, 2, bias=np.array([0.5, -1.0]), activation="tanh")
    assert dataclasses.replace(layer, dilation=3).dilation == 3
    assert dataclasses.replace(Layer(3, 2), stride=2) == Layer(3, 2, 2)
    assert hash(Layer(3, 2)) == hash(Layer(np.int64(3), 2))
    with pytest.raises(dataclasses.FrozenInstanceError):
        layer.dilation = 4
    assert repr(Layer(5, 2)) == "Layer(kernel=5, dilation=2, stride=1)"


@pytest.mark.parametrize(
    "args, options, message",
    [
        ((3,), {"bias": 1.0}, "a bias needs weights"),
        ((np.ones(3),), {"activation": "sigmoid"}, "activation must be none, relu or tanh"),
        ((np.ones(3),), {"activation": "tanh", "relu": True}, "contradicts"),
        ((np.ones((3, 3)), 1, 0), {}, "stride must be a positive integer"),
        ((), {}, "a layer needs a kernel"),
    ],
)
def test_layer_refuses_what_cannot_be_a_layer(args, options, message):
    with pytest.raises(ValueError, match=message):
        Layer(*args, **options)


def test_layer_keeps_dilcli_0_1_positional_form_with_a_warning():
    weights, bias = RNG.normal(size=(2, 2, 3, 3)), np.array([1.0, 2.0])
    with pytest.warns(DeprecationWarning, match="bias=..., relu=..."):
        old = Layer(weights, 2, bias, True)
    assert old == Layer(weights, 2, bias=bias, relu=True)


# --- relu=, and truncate= as its deprecated name ------------------------------------


def _relus(layers):
    return [layer.relu for layer in layers]


def _weights_arrays():
    return {"dilations": np.array([1, 2]), "weight_0": np.ones((2, 1, 3, 3))} | {
        "weight_1": np.ones((1, 2, 1, 1))
    }


MAKERS = {
    "context_basic": lambda **kw: stacks.context_basic(2, **kw),
    "context_large": lambda **kw: stacks.context_large(1, **kw),
    "kernel_stack": lambda **kw: stacks.kernel_stack(np.ones((3, 3)), [1, 2, 4], **kw),
    "random_stack": lambda **kw: stacks.random_stack([1, 2], **kw),
    "stack_from_arrays": lambda **kw: stacks.stack_from_arrays(_weights_arrays(), **kw),
    "Layer": lambda **kw: [Layer(np.ones((3, 3)), **kw)],
}


@pytest.mark.parametrize("name", list(MAKERS))
@pytest.mark.parametrize("relu", [True, False])
def test_relu_keyword_and_its_old_name_truncate(name, relu):
    make = MAKERS[name]
    wanted = _relus(make(relu=relu))
    assert wanted[0] is relu and wanted[-1] is (relu and name == "Layer")
    with pytest.warns(DeprecationWarning, match="truncate= is now relu="):
        assert _relus(make(truncate=relu)) == wanted


def test_read_weights_and_context_job_take_relu_and_truncate(tmp_path):
    from dilcli.batch.jobs import ContextJob
    from dilcli.io.weights import read_weights

    np.savez(tmp_path / "m.npz", **_weights_arrays())
    assert _relus(read_weights(tmp_path / "m.npz", relu=False)) == [False, False]
    with pytest.warns(DeprecationWarning):
        assert _relus(read_weights(tmp_path / "m.npz", truncate=False)) == [False, False]
    assert ContextJob("context-basic", CONTEXT_DILATIONS, relu=False).relu is False
    with pytest.warns(DeprecationWarning):
        assert ContextJob("context-basic", CONTEXT_DILATIONS, truncate=False).relu is False


def test_resume_signatures_keep_the_keys_of_earlier_versions():
    # Outputs written before the rename stay recognised: 'truncate' is still the key,
    # and a trained layer is described by the fields it had in dilcli 0.1.
    from dilcli.batch.jobs import ContextJob

    layer = Layer(np.ones((1, 1, 1, 1)), 1, relu=True)
    signature = ContextJob("weights", (1,), layers=(layer,), relu=True).signature()
    assert signature["truncate"] is True and "relu" not in signature
    assert set(signature["layers"][0]) == {"weights", "dilation", "bias", "truncate"}
    assert json.loads(json.dumps(signature)) == signature
    tanh = Layer(np.ones((1, 1, 1, 1)), 1, activation="tanh")
    other = ContextJob("weights", (1,), layers=(tanh,)).signature()
    assert other["layers"][0]["activation"] == "tanh"


# --- one runner, 1-D and 2-D -----------------------------------------------------------


def direct_stack_1d(x, taps, dilations, activation, mode, boundary, cval):
    y = x
    for d in dilations:
        y = direct_correlate(y, taps, d, mode=mode, boundary=boundary, cval=cval)
        y = {"none": y, "relu": np.maximum(y, 0), "tanh": np.tanh(y)}[activation]
    return y


@pytest.mark.parametrize("activation", ["none", "relu", "tanh"])
@pytest.mark.parametrize("shape", [(60,), (60, 3)])
@pytest.mark.parametrize("mode, boundary", [("same", "mirror"), ("causal", "constant")])
def test_the_runner_runs_1d_stacks_as_their_definition(activation, shape, mode, boundary):
    x, taps = RNG.normal(size=shape), RNG.normal(size=3)
    layers = stacks.signal_stack(taps, [1, 2, 5], activation=activation)
    got = stacks.forward(x, layers, mode=mode, boundary=boundary, cval=0.25)[-1]
    want = direct_stack_1d(x, taps, [1, 2, 5], activation, mode, boundary, 0.25)
    assert got.dtype == np.float64 and got.shape == shape
    assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", ["same", "valid", "full"])
def test_a_stride_keeps_every_stride_th_output_of_the_definition(mode):
    # y[i] = sum_t w[t] x[i*s + t*d - o], by loops over its definition.
    x, taps = RNG.normal(size=(31, 2)), np.array([1.0, -2.0, 0.5])
    (got,) = stacks.forward(x, [Layer(taps, 2, 3)], mode=mode, boundary="reflect")
    span = (len(taps) - 1) * 2 + 1
    before = padding_before(span, mode)
    size = {"same": 31, "valid": 31 - span + 1, "full": 31 + span - 1}[mode]
    want = np.zeros(((size + 2) // 3, 2))
    for i, t in itertools.product(range(len(want)), range(len(taps))):
        source = boundary_index(3 * i + 2 * t - before, 31, "reflect")
        want[i] += taps[t] * x[source]
    assert_allclose(got, want, rtol=1e-12)


def test_the_runner_refuses_mixed_and_sizeless_stacks():
    with pytest.raises(ValueError, match="all 1-D or all 2-D"):
        stacks.forward(np.ones((5, 5)), [Layer(np.ones((3, 3))), Layer(np.ones(3))])
    with pytest.raises(ValueError, match="no weights"):
        stacks.forward(np.ones(5), [Layer(3)])
    with pytest.raises(ValueError, match=r"\(N,\) or \(N, C\)"):
        stacks.forward(np.ones((4, 4, 4)), [Layer(np.ones(3))])
    with pytest.raises(ValueError, match="causal' is for 1-D"):
        stacks.forward(np.ones((4, 4)), [Layer(np.ones((3, 3)))], mode="causal")


def test_signal_layers_place_outputs_as_the_padding_rule_says():
    # start = aligned offset - padding before, from the one padding rule
    x = RNG.normal(size=40)
    for mode, start in (("same", 0), ("valid", 2), ("full", -2), ("causal", 0)):
        (output,) = stacks.signal_layers(x, [1.0, 2.0, 3.0], (2,), mode=mode, boundary="constant")
        assert output.start == start
        assert list(output.offsets) == ([-4, -2, 0] if mode == "causal" else [-2, 0, 2])


def test_an_activation_outside_a_stack_is_refused_by_the_library():
    from dilcli.batch.jobs import SignalJob
    from dilcli.core.kernels import named_kernel

    with pytest.raises(ValueError, match="add stack=True"):
        stacks.signal_layers(np.ones(9), [1.0, 1.0], (1,), activation="relu")
    with pytest.raises(ValueError, match="add stack=True"):
        SignalJob(named_kernel("difference", ndim=1), (1,), activation="tanh")
    with pytest.raises(ValueError, match="'reflect' would look ahead"):
        SignalJob(named_kernel("difference", ndim=1), (1,), mode="causal", boundary="reflect")


def test_padding_before_is_the_rule_conv_and_receptive_follow():
    from dilcli.core.conv import axis_geometry

    for k, d, mode in itertools.product((1, 2, 3, 4), (1, 2, 5), ("same", "full", "causal")):
        span = (k - 1) * d + 1
        assert axis_geometry(50, k, d, mode)[0] == padding_before(span, mode)
    assert receptive.output_positions([(3, 2), (2, 1)], causal=True) == [4, 5]
    assert receptive.output_positions([(3, 2), (2, 1)]) == [2, 2]
    assert layers_module.aligned_offset(5, "valid") == 2


def test_old_signal_activations_name_still_imports():
    assert stacks.SIGNAL_ACTIVATIONS is stacks.ACTIVATION_FUNCTIONS
    y = np.array([-1.0, 2.0])
    assert_array_equal(stacks.ACTIVATION_FUNCTIONS["relu"](y.copy()), [0.0, 2.0])


@pytest.mark.parametrize(
    "mode, boundary", [("same", "wrap"), ("valid", "reflect"), ("causal", "nearest")]
)
@pytest.mark.parametrize("flip", [False, True])
def test_1d_layers_mix_channels_as_their_definition(mode, boundary, flip):
    # y[:, o] = sum_i correlate(x[:, i], w[o, i]) + b[o], by loops over the definition
    x = RNG.normal(size=(40, 3))
    weights, bias = RNG.normal(size=(2, 3, 4)), RNG.normal(size=2)
    layers = [Layer(weights, 3, bias=bias, relu=True), Layer(RNG.normal(size=(1, 2, 2)), 2)]
    got = stacks.forward(x, layers, mode=mode, boundary=boundary, flip=flip)
    want = x
    for layer in layers:
        taps = layer.weights[..., ::-1] if flip else layer.weights
        planes = [
            sum(
                direct_correlate(want[:, i], taps[o, i], layer.dilation, mode, boundary)
                for i in range(taps.shape[1])
            )
            + (0.0 if layer.bias is None else layer.bias[o])
            for o in range(taps.shape[0])
        ]
        want = np.stack(planes, axis=-1)
        want = np.maximum(want, 0) if layer.relu else want
    assert [y.shape[1] for y in got] == [2, 1]
    assert receptive.receptive_fields(layers) == [10, 12]
    assert_allclose(got[-1], want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    ("args", "most"),
    [
        ((3, 2, 1, True), "at most 3 (kernel, dilation, stride) positional arguments, got 4"),
        ((3, 2, 1, True, 5), "at most 3 (kernel, dilation, stride) positional arguments, got 5"),
        ((np.ones((1, 1, 3, 3)), 2, None, True, 1), "at most 4 (weights, dilation, bias, relu)"),
    ],
)
def test_layer_refuses_positional_arguments_it_would_drop(args, most):
    # Layer(3, 2, 1, True) built Layer(kernel=3, dilation=2, stride=1): the True vanished
    with pytest.raises(TypeError, match=re.escape(most)):
        Layer(*args)


def test_layer_refuses_relu_and_its_old_name_disagreeing():
    # Layer(w, relu=True, truncate=False) silently dropped the ReLU: the old name won
    weights = np.ones((1, 1, 3, 3))
    with pytest.raises(ValueError, match="relu=True contradicts truncate=False, its old name"):
        Layer(weights, relu=True, truncate=False)
    with pytest.warns(DeprecationWarning):
        assert Layer(weights, relu=True, truncate=True).activation == "relu"
