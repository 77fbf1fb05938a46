"""rf-table --onnx: ONNX graphs become the networks their spec would give (skipped
without the optional onnx package)."""

import json

import numpy as np
import pytest
from conftest import run_cli as run

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from dilcli.core import network as N  # noqa: E402
from dilcli.io.onnxgraph import read_onnx  # noqa: E402


def conv(name, source, target, k=3, *, c=4, stride=1, dilation=1, pads=None, **extra):
    """A Conv node and its weight initializer."""
    weight = numpy_helper.from_array(np.ones((c, c, k, k), dtype=np.float32), f"{name}_w")
    pads = [dilation * (k - 1) // 2] * 4 if pads is None else pads
    node = helper.make_node(
        "Conv",
        [source, weight.name],
        [target],
        name=name,
        strides=[stride, stride],
        dilations=[dilation, dilation],
        pads=pads,
        **extra,
    )
    return node, weight


def model(nodes, initializers, output="out", *, c=4, path):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 64, 64])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
        initializer=initializers,
    )
    onnx.save(helper.make_model(graph), path)
    return path


def test_residual_aspp_resize_and_head(tmp_path):
    c1, w1 = conv("stem", "x", "a", 3)
    relu = helper.make_node("Relu", ["a"], ["b"], name="relu")
    c2, w2 = conv("res1", "b", "c", 3, dilation=2)
    c3, w3 = conv("res2", "c", "d", 3, dilation=2)
    add = helper.make_node("Add", ["b", "d"], ["e"], name="add")
    pool = helper.make_node(
        "MaxPool", ["e"], ["f"], name="pool", kernel_shape=[2, 2], strides=[2, 2]
    )
    branches, weights = [], []
    for rate in (6, 12):
        node, weight = conv(f"aspp{rate}", "f", f"g{rate}", 3, dilation=rate)
        branches.append(node)
        weights.append(weight)
    concat = helper.make_node("Concat", ["g6", "g12"], ["h"], name="cat", axis=1)
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], dtype=np.float32), "scales")
    resize = helper.make_node("Resize", ["h", "", "scales"], ["i"], name="up", mode="linear")
    gap = helper.make_node("GlobalAveragePool", ["i"], ["j"], name="gap")
    flat = helper.make_node("Flatten", ["j"], ["out"], name="flat")
    path = model(
        [c1, relu, c2, c3, add, pool, *branches, concat, resize, gap, flat],
        [w1, w2, w3, *weights, scales],
        path=tmp_path / "m.onnx",
    )
    net = read_onnx(path)
    spec = "conv3,[conv3/d2,conv3/d2]+,pool2/s2,[conv3/d6|conv3/d12],up2/bilinear"
    expected = N.parse_spec(spec)
    assert net.field == expected.field
    assert [row["rf"] for row in net.rows()] == [row["rf"] for row in expected.rows()]
    assert "the input of GlobalAveragePool 'gap'" in net.provenance
    # Through the CLI, the same figures: 1 + 2 + 4 + 4 = 11, pool 12 (jump 2), then
    # 3x3 at rate 12 and jump 2: 12 + 2 * 12 * 2 = 60; bilinear x2 adds (4 - 1) / 2.
    result = run("rf-table", "--onnx", path, "--format", "json")
    data = json.loads(result.stdout)
    assert data["rf"]["height"] == expected.field[0].size
    assert data["jump"]["height"] == 1
    assert data["provenance"].startswith("ONNX model m.onnx")


def test_1d_causal_convolutions(tmp_path):
    nodes, weights = [], []
    source = "x"
    for i, d in enumerate((1, 2, 4)):
        weight = numpy_helper.from_array(np.ones((1, 1, 2), dtype=np.float32), f"w{i}")
        nodes.append(
            helper.make_node("Conv", [source, weight.name], [f"y{i}"], dilations=[d], pads=[d, 0])
        )
        weights.append(weight)
        source = f"y{i}"
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 100])],
        [helper.make_tensor_value_info("y2", TensorProto.FLOAT, None)],
        initializer=weights,
    )
    path = tmp_path / "tcn.onnx"
    onnx.save(helper.make_model(graph), path)
    axis = read_onnx(path).field[0]
    # Kernel 2 at 1, 2, 4, causal: 1 + 1 + 2 + 4 = 8 samples, ending at the present.
    assert axis.size == 8 and axis.centre + (axis.size - 1) / 2 == 0


@pytest.mark.parametrize(
    ("node", "message"),
    [
        (helper.make_node("Slice", ["x", "s", "e"], ["out"], name="cut"), r"'cut' \(Slice\)"),
        (
            helper.make_node("Conv", ["x", "w"], ["out"], name="same", auto_pad="SAME_UPPER",
                             strides=[2, 2], kernel_shape=[3, 3]),
            "depends on the input size",
        ),
    ],
)  # fmt: skip
def test_unfollowable_nodes_are_named(tmp_path, node, message):
    weight = numpy_helper.from_array(np.ones((4, 4, 3, 3), dtype=np.float32), "w")
    path = model([node], [weight], path=tmp_path / "bad.onnx")
    with pytest.raises(ValueError, match=message):
        read_onnx(path)
    result = run("rf-table", "--onnx", path)
    assert result.exit_code == 2 and "Invalid value for '--onnx'" in result.stderr


def test_damaged_file_is_one_line(tmp_path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\x08\x07garbage" * 10)
    result = run("rf-table", "--onnx", path)
    assert result.exit_code == 2 and "junk.onnx" in result.stderr
