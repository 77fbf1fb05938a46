"""Builds the optional compiled engine; everything else is in pyproject.toml.

The extension is optional: without a C compiler (or OpenMP) the install still
succeeds and dilcli uses its numpy engine, which gives the same results.
"""

import sys

from setuptools import Extension, setup

openmp = [] if sys.platform in ("darwin", "win32") else ["-fopenmp"]

setup(
    ext_modules=[
        Extension(
            "dilcli.core._cengine",
            ["dilcli/core/_cengine.c"],
            extra_compile_args=["-O3", *openmp],
            extra_link_args=openmp,
            optional=True,
        )
    ]
)
