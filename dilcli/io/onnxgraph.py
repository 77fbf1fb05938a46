"""Networks from ONNX models (``rf-table --onnx model.onnx``); needs ``pip install
'dilcli[onnx]'``.

The graph's geometry becomes a :class:`~dilcli.core.network.Network`: Conv,
ConvTranspose, MaxPool/AveragePool, Resize/Upsample (whole factors) as layers; Add,
Sum, Concat (and Mul, Sub, Div, Max, Min, Mean of two tensors) as merges of the branches
since the last tensor they share; element-wise operators (activations, normalisation,
scaling by a constant) pass through. The network ends at the graph's output, or at the
input of the first operator that sees the whole input or leaves the image
(GlobalAveragePool, Flatten, Gemm, ...). Anything else is refused, naming the node.
"""

from __future__ import annotations

import os

# fmt: off
#: Operators that keep every position where it is (one data input, others constant).
POINTWISE = frozenset((
    "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Gelu", "Sigmoid", "HardSigmoid",
    "HardSwish", "Tanh", "Softplus", "Softsign", "Mish", "Swish", "Silu", "Clip",
    "BatchNormalization", "InstanceNormalization", "LayerNormalization",
    "GroupNormalization", "LpNormalization", "Dropout", "Identity", "Cast", "Abs", "Neg",
    "Exp", "Log", "Sqrt", "Reciprocal", "Floor", "Ceil", "Round", "Sign", "Erf", "Pow",
    "Not", "Softmax", "LogSoftmax", "Add", "Sub", "Mul", "Div", "Max", "Min", "Mean", "Sum",
    "Where",
))
#: Operators that join tensors: the branches since their last shared tensor merge.
MERGES = {"Add": "add", "Sum": "add", "Sub": "add", "Mul": "add", "Div": "add",
          "Max": "add", "Min": "add", "Mean": "add", "Concat": "concat"}
#: Operators past which the image is gone: the network ends at their input.
ENDS = frozenset((
    "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "Flatten", "Gemm", "MatMul",
    "Reshape", "ReduceMean", "ReduceMax", "ReduceSum", "Squeeze", "Unsqueeze", "Transpose",
    "Shape", "ArgMax", "TopK",
))
# fmt: on
#: Largest ONNX file read (weights included): 2 GiB, protobuf's own limit.
MAX_ONNX_BYTES = 2**31 - 1


def read_onnx(path):
    """The :class:`~dilcli.core.network.Network` of the ONNX model at ``path``.

    ValueError naming the file (and the node) when it cannot be read or followed;
    ImportError when ``onnx`` is not installed.
    """
    try:
        import onnx
    except ImportError:
        raise ImportError("--onnx needs the onnx package: pip install 'dilcli[onnx]'") from None
    try:
        if os.path.getsize(path) > MAX_ONNX_BYTES:
            raise ValueError(f"an ONNX file may be at most {MAX_ONNX_BYTES:,} bytes")
        model = onnx.load(os.fspath(path), load_external_data=False)
        return _network(model.graph, os.path.basename(os.fspath(path)))
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    except OSError as error:
        raise ValueError(f"{path}: {error.strerror or error}") from None
    except Exception as error:  # protobuf's DecodeError and friends: a damaged file
        raise ValueError(f"{path}: not a readable ONNX model ({type(error).__name__})") from None


def _network(graph, filename):
    from onnx import numpy_helper

    from dilcli.core.network import Merge, Network

    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    inputs = [value.name for value in graph.input if value.name not in constants]
    if len(inputs) != 1:
        raise ValueError(f"the graph has {len(inputs)} data inputs: dilcli follows one image")
    # Each tensor as the list of layers from the input, as (identity, node) pairs: two
    # tensors share exactly the layers they share by identity (equal convs are not one).
    paths = {inputs[0]: []}
    end, why = None, ""
    for number, node in enumerate(graph.node):
        label = node.name or f"#{number}"
        op = node.op_type
        if op == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    constants[node.output[0]] = numpy_helper.to_array(attribute.t)
            continue
        data = [name for name in node.input if name in paths]
        if not data:
            continue  # computes on constants only
        if op in ENDS:
            if end is None:
                end, why = data[0], f"the input of {op} '{label}'"
            continue
        if end is not None and any(name == end for name in data):
            continue
        if op in MERGES and len(data) > 1:
            shared = _shared_prefix([paths[name] for name in data])
            branches = tuple(tuple(node for _, node in paths[name][shared:]) for name in data)
            merge = Merge(MERGES[op], branches)
            path = paths[data[0]][:shared] + [(id(merge), merge)]
        elif op in POINTWISE:
            if len(data) > 1:
                raise ValueError(f"node '{label}' ({op}) joins {len(data)} tensors")
            path = paths[data[0]]
        else:
            layer = _layer(node, label, constants)
            path = paths[data[0]] + [(id(layer), layer)]
        for output in node.output:
            paths[output] = path
    if end is None:
        outputs = [value.name for value in graph.output if value.name in paths]
        if not outputs:
            raise ValueError("no graph output depends on the input")
        end, why = outputs[0], f"the output '{outputs[0]}'"
    nodes = tuple(node for _, node in paths[end])
    if not nodes:
        raise ValueError(f"no layer between the input and {why}")
    return Network(nodes, name=filename, provenance=f"ONNX model {filename}, up to {why}")


def _shared_prefix(paths):
    shared = 0
    for layers in zip(*paths, strict=False):
        if len({identity for identity, _ in layers}) != 1:
            break
        shared += 1
    return shared


def _attributes(node):
    from onnx import helper

    return {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}


def _per_axis(values, what, label):
    """ONNX's per-spatial-axis list as ``(height, width)``; 1-D layers run along height."""
    values = [int(v) for v in values]
    if len(values) == 1:
        return values[0], 1
    if len(values) != 2:
        raise ValueError(f"node '{label}': {len(values)}-D {what}: dilcli follows 1-D and 2-D")
    return tuple(values)


def _layer(node, label, constants):
    from dilcli.core.network import make_op

    op = node.op_type
    attributes = _attributes(node)
    try:
        if op in ("Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool"):
            if "kernel_shape" in attributes:
                shape = list(attributes["kernel_shape"])
            elif len(node.input) > 1 and node.input[1] in constants:
                shape = list(constants[node.input[1]].shape[2:])
            else:
                raise ValueError("no kernel shape")
            kernel, spatial = _per_axis(shape, "kernels", label), len(shape)
            stride = _per_axis(attributes.get("strides", [1] * spatial), "strides", label)
            dilation = _per_axis(attributes.get("dilations", [1] * spatial), "dilations", label)
            padding = _padding(attributes, kernel, stride, dilation, spatial, op, label)
            kind = {"Conv": "conv", "ConvTranspose": "convT"}.get(op, "pool")
            mode = "" if kind != "pool" else ("max" if op == "MaxPool" else "avg")
            return make_op(
                kind, kernel, stride=stride, dilation=dilation, padding=padding, mode=mode,
                name=node.name,
            )  # fmt: skip
        if op in ("Resize", "Upsample"):
            return _upsampling(node, label, attributes, constants)
    except ValueError as error:
        raise ValueError(f"node '{label}' ({op}): {error}") from None
    raise ValueError(f"node '{label}' ({op}): dilcli cannot follow this operator's geometry")


def _padding(attributes, kernel, stride, dilation, spatial, op, label):
    auto = attributes.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    if auto == "VALID":
        return ((0, 0), (0, 0))
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        if stride != (1, 1) or op == "ConvTranspose":
            raise ValueError(f"{auto} with strides depends on the input size: export explicit pads")
        spans = [(k - 1) * d for k, d in zip(kernel, dilation, strict=True)]
        if auto == "SAME_UPPER":
            return tuple((s // 2, s - s // 2) for s in spans)
        return tuple((s - s // 2, s // 2) for s in spans)
    pads = [int(p) for p in attributes.get("pads", [0] * 2 * spatial)]
    if len(pads) != 2 * spatial:
        raise ValueError(f"{len(pads)} pads for {spatial} axes")
    if spatial == 1:
        return ((pads[0], pads[1]), (0, 0))
    return ((pads[0], pads[2]), (pads[1], pads[3]))


def _upsampling(node, label, attributes, constants):
    from dilcli.core.network import make_op

    index = 2 if node.op_type == "Resize" else 1
    if len(node.input) <= index or node.input[index] not in constants:
        raise ValueError("give constant scales (sizes depend on the input size)")
    scales = [float(s) for s in constants[node.input[index]].ravel()]
    if len(scales) not in (3, 4) or any(s != 1 for s in scales[:2]):
        raise ValueError(f"scales {scales}: dilcli follows N, C, H[, W] scaled only in space")
    factors = scales[2:] + [1.0] * (4 - len(scales))
    if any(f < 1 or not f.is_integer() for f in factors):
        raise ValueError(f"scales {scales}: dilcli follows whole upsampling factors")
    mode = attributes.get("mode", b"nearest")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    kind = "nearest" if mode == "nearest" else "bilinear"
    return make_op("up", tuple(int(f) for f in factors), mode=kind, name=node.name)
