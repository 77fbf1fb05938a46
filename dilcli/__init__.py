"""dilcli: dilated (atrous) convolution for images, feature maps and signals.

The library API is loaded on first use, so the command line starts fast::

    >>> import numpy as np, dilcli
    >>> dilcli.dilated_correlate(np.eye(3, dtype=np.float32), [[1, 0], [0, 1]], mode="valid")
    array([[2., 0.],
           [0., 2.]], dtype=float32)
"""

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

# Where the modules of dilcli 0.1 live now: their old import paths keep working.
_MOVED_MODULES = {
    "dilcli.kernels": ("dilcli.core.kernels",),
    "dilcli.conv": ("dilcli.core.conv",),
    "dilcli._engine": ("dilcli.core.engine", "dilcli.core.parallel"),
    "dilcli.context": ("dilcli.core.stacks",),
    "dilcli.receptive": ("dilcli.core.receptive",),
    "dilcli.atomic": ("dilcli.io.atomic",),
    "dilcli.arrays": ("dilcli.io.arrays",),
    "dilcli.imageio": (
        "dilcli.io.images", "dilcli.render.display", "dilcli.io.png", "dilcli.io.kernelspecs",
    ),
    "dilcli.signalio": ("dilcli.io.signals",),
    "dilcli.rfmap": ("dilcli.render.rfmap",),
    "dilcli.signalplot": ("dilcli.render.signalplot",),
    "dilcli.tables": ("dilcli.render.tables",),
    "dilcli.rfreport": ("dilcli.render.rfreport",),
    "dilcli.jobs": ("dilcli.batch.jobs", "dilcli.render.display", "dilcli.core.stacks"),
    "dilcli.workers": ("dilcli.batch.workers",),
    "dilcli.console": ("dilcli.batch.console",),
}  # fmt: skip


class _MovedModules:
    """Imports a module's old path (``dilcli.conv``) as a stand-in that answers every
    name from the module's new home (``dilcli.core.conv``), or homes, if it was split.
    """

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name not in _MOVED_MODULES:
            return None
        from importlib.machinery import ModuleSpec

        return ModuleSpec(name, cls)

    @staticmethod
    def create_module(spec):
        import importlib
        import types

        homes = [importlib.import_module(home) for home in _MOVED_MODULES[spec.name]]
        module = types.ModuleType(spec.name, f"Moved: see {', '.join(_MOVED_MODULES[spec.name])}.")

        def find(name):
            for home in homes:
                if hasattr(home, name):
                    return getattr(home, name)
            raise AttributeError(f"module {spec.name!r} has no attribute {name!r}")

        module.__getattr__ = find
        # `from dilcli.conv import *` and dir() see the homes' public names, as before
        names = {
            name
            for home in homes
            for name in getattr(home, "__all__", vars(home))
            if not name.startswith("_") and not isinstance(getattr(home, name), types.ModuleType)
        }
        module.__all__ = sorted(names)
        module.__dir__ = lambda: module.__all__
        return module

    @staticmethod
    def exec_module(module):
        pass


def _install_moved_modules():
    import sys

    if not any(finder is _MovedModules for finder in sys.meta_path):
        sys.meta_path.append(_MovedModules)


_install_moved_modules()


def __getattr__(name):
    if name == "__version__":  # one source: the version in pyproject.toml, as installed
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("dilcli")
        except PackageNotFoundError:  # run from a source tree that is not installed
            return "0+unknown"
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'dilcli' has no attribute {name!r}")
