"""dilcli: dilated (atrous) convolution for images, feature maps and signals.

The library API is loaded on first use, so the command line starts fast::

    >>> import numpy as np, dilcli
    >>> dilcli.dilated_correlate(np.eye(3, dtype=np.float32), [[1, 0], [0, 1]], mode="valid")
    array([[2., 0.],
           [0., 2.]], dtype=float32)
"""

__version__ = "0.1.0"

_API = {
    "dilated_correlate": "dilcli.core.conv",
    "apply_kernel": "dilcli.core.conv",
    "Kernel": "dilcli.core.kernels",
    "named_kernel": "dilcli.core.kernels",
    "NAMED_KERNELS": "dilcli.core.kernels",
    "parse_kernel_text": "dilcli.core.kernels",
    "load_image": "dilcli.io.images",
}

__all__ = ["__version__", *_API]


def __getattr__(name):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'dilcli' has no attribute {name!r}")
