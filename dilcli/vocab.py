"""dilcli's vocabulary, written once: the names users type and the defaults they get.

Modes, boundaries, output formats, mappings, presets, the paper's Table 1 and the
default limits live here, and only here: the core checks its arguments against these
tuples, the command line builds its choices and help from them. Plain Python, no numpy,
so ``dilcli --help`` and the table commands start fast.
"""

from __future__ import annotations

# --- how a kernel meets the input (docs/design.md, sections 2-4) ---------------------

#: Output sizes: the input's; only where the kernel fits; every overlap.
MODES = ("same", "valid", "full")
#: Signals also have ``causal``: the input's length, y[i] seeing only x[<= i].
SIGNAL_MODES = (*MODES, "causal")
#: How the input is extended past its edges, with scipy.ndimage's names and meanings.
BOUNDARIES = ("reflect", "mirror", "nearest", "wrap", "constant")
#: The compiled engine's numbers for them (the enum in ``core/_cengine.c``).
BOUNDARY_CODES = {"constant": 0, "nearest": 1, "wrap": 2, "reflect": 3, "mirror": 4}
DEFAULT_BOUNDARY = "reflect"
#: Causal filtering must not look ahead: only these extend the past without the future.
CAUSAL_BOUNDARIES = ("constant", "nearest")
DEFAULT_CAUSAL_BOUNDARY = "constant"

# --- what outputs look like (docs/design.md, sections 13-14) -----------------------

#: ``--format``: its file extension (zarr: a folder, the store).
OUTPUT_FORMATS = {"png": "png", "tiff": "tif", "npy": "npy", "zarr": "zarr"}
#: ``--map``: how a float response becomes pixels (docs/design.md, section 14). The
#: ``tone`` family passes ``|y|`` through ``1 - exp(-|y| / s)``, ``s`` from the kernel
#: or stack (dilcli.render.tone); ``signed-tone`` and ``diverging-tone`` keep the sign.
MAPPINGS = (
    "tone",
    "clip",
    "abs",
    "signed",
    "stretch",
    "diverging",
    "signed-tone",
    "diverging-tone",
)
TONE_MAPPINGS = ("tone", "signed-tone", "diverging-tone")
#: Without ``--map``: ``clip`` for weighted means of the input (blurs, the identity,
#: context-basic: never negative, worst-case gain 1), ``tone`` for every other response.
DEFAULT_MAPPING = "tone"
LINEAR_DEFAULT_MAPPING = "clip"
DIVERGING_COLORMAP = "colorbrewer:RdBu_r"
STRETCH_PERCENTILE = 99.9
#: ``--wav-scale``: what a WAV output is divided by.
WAV_SCALES = ("bound", "peak", "none")
#: After each layer of a signal stack; each maps 0 to 0 and never grows |y|.
ACTIVATIONS = ("none", "relu", "tanh")

# --- stacks and presets (docs/design.md, sections 9-11) ------------------------------

#: Yu & Koltun (2015), Table 1: seven 3x3 layers at these dilations, then a 1x1.
CONTEXT_DILATIONS = (1, 1, 2, 4, 8, 16, 1, 1)
CONTEXT_KERNEL_SIZES = (3, 3, 3, 3, 3, 3, 3, 1)
#: Output channels of the large module's layers, in multiples of C (Table 1).
CONTEXT_LARGE_CHANNELS = (2, 2, 4, 8, 16, 32, 32, 1)
#: The large module's identity initialisation adds N(0, (LARGE_NOISE * C / c)^2).
LARGE_NOISE = 1e-3
#: C when none is given: the 21 classes of Pascal VOC, as in the paper.
DEFAULT_CONTEXT_CHANNELS = 21
#: The seed notebook's stack: 3x3 at 1, 2, 4, 8, random kernels randn(k, k) * 0.1.
SEED_DILATIONS = (1, 2, 4, 8)
RANDOM_KERNEL_SCALE = 0.1
DEFAULT_SEED = 42
#: WaveNet's block: kernel 2 at 1, 2, ..., 512.
WAVENET_DILATIONS = tuple(2**i for i in range(10))
MAX_WAVENET_REPEAT = 10_000
#: The paper's context modules, by name.
CONTEXT_MODULES = ("context-basic", "context-large")
#: ``dilcli context --preset``.
CONTEXT_PRESETS = (*CONTEXT_MODULES, "starlet")
#: ``dilcli rf-table --preset``.
RF_PRESETS = (*CONTEXT_MODULES, "seed", "wavenet")
#: ``rf-table --preset`` / ``rf-map --preset`` networks (:data:`dilcli.core.network.PRESETS`
#: and its aliases); the stack presets above are networks too.
NETWORK_PRESETS = (
    "alexnet",
    "vgg16",
    "resnet50",
    "deeplab-v2-aspp-l",
    "deeplab-v3-os16",
    "deeplab-v3-os8",
    "deeplab-v3",
    "tcn",
    "hdc",
    "drn-c-26",
)
DEFAULT_STARLET_LEVELS = 5
MAX_STARLET_LEVELS = 30

# --- limits: a small input never costs gigabytes -----------------------------------

#: Images larger than this are refused from their header (``--max-pixels``).
DEFAULT_MAX_PIXELS = 250_000_000
#: ``--frames all`` refuses files of more frames (``--max-frames``).
DEFAULT_MAX_FRAMES = 1000
#: Signals of more values (samples x channels) are refused before parsing.
DEFAULT_MAX_SAMPLES = 250_000_000
#: Dilations, kernel sizes, strides and channel counts: int32, as in PyTorch and cuDNN,
#: which keeps every position the engines compute well inside int64.
MAX_INT_OPTION = 2**31 - 1
MAX_DILATION = MAX_INT_OPTION
#: Dilations (layers) of one file command: each writes a file per input.
MAX_FILE_DILATIONS = 1024

# --- table formats -------------------------------------------------------------------

#: ``--format`` of the receptive-field commands.
TABLE_FORMATS = ("table", "json", "csv", "markdown")


def shape_text(shape):
    """A size per axis as people write it: ``"3x5"``, ``"1024"``.

    >>> shape_text((3, 5)), shape_text((1024,))
    ('3x5', '1024')
    """
    return "x".join(str(n) for n in shape)


def size_text(n, ndim=2):
    """A square size as people write it: ``"3x3"`` in 2-D, ``"3"`` in 1-D.

    >>> size_text(67), size_text(1024, ndim=1)
    ('67x67', '1024')
    """
    return shape_text((n,) * ndim)


def choices_text(names):
    """``"a, b or c"``, for messages listing what is allowed.

    >>> choices_text(("same", "valid", "full"))
    'same, valid or full'
    """
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
