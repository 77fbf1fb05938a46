import numpy as np
import pytest
from numpy.testing import assert_array_equal

from dilcli.core.kernels import (
    NAMED_KERNELS,
    NAMED_KERNELS_1D,
    kernel_from_array,
    named_kernel,
    parse_kernel_text,
    resolve_kernel,
)

DESIGN_NAMES = [
    "laplacian",
    "laplacian4",
    "sobel-x",
    "sobel-y",
    "sobel",
    "scharr",
    "prewitt",
    "gaussian",
    "box",
    "b3spline",
    "identity",
]


def test_every_kernel_named_in_design_exists():
    assert set(DESIGN_NAMES) <= set(NAMED_KERNELS)


def test_laplacian_is_the_seed_edge_kernel():
    assert_array_equal(
        named_kernel("laplacian").parts[0], [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]
    )


@pytest.mark.parametrize(
    "name", ["laplacian", "laplacian4", "sobel-x", "sobel-y", "scharr-x", "prewitt-y"]
)
def test_edge_kernels_sum_to_zero_and_are_signed(name):
    kernel = named_kernel(name)
    assert kernel.parts[0].sum() == 0
    assert kernel.is_signed


@pytest.mark.parametrize("name", ["gaussian", "box", "b3spline", "identity"])
def test_smoothing_kernels_sum_to_one(name):
    assert named_kernel(name).parts[0].sum() == pytest.approx(1.0)
    assert not named_kernel(name).is_signed


@pytest.mark.parametrize("name", ["sobel", "scharr", "prewitt"])
def test_gradient_pairs_are_transposes(name):
    kernel = named_kernel(name)
    assert kernel.is_gradient_pair and not kernel.is_signed
    assert_array_equal(kernel.parts[1], kernel.parts[0].T)


def test_b3spline_is_the_outer_product_of_1_4_6_4_1():
    assert_array_equal(
        named_kernel("b3spline").parts[0] * 256, np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1])
    )


def test_parse_kernel_text_rows_and_values():
    kernel = parse_kernel_text("1,2,1;0,0,0;-1,-2,-1")
    assert_array_equal(kernel.parts[0], [[1, 2, 1], [0, 0, 0], [-1, -2, -1]])
    assert parse_kernel_text("0.5,-1,0.25").parts[0].shape == (3,)
    assert parse_kernel_text("1 2\n3 4  # comment").parts[0].shape == (2, 2)
    assert parse_kernel_text("1,2,3", ndim=2).parts[0].shape == (1, 3)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,2;3", "different lengths"),
        ("1,x,3", "not a number"),
        ("", "no numbers"),
        ("1,nan", "finite"),
    ],
)
def test_parse_kernel_text_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_kernel_text(text)


def test_resolve_kernel_names_text_and_unknown():
    assert resolve_kernel("sobel").name == "sobel"
    assert resolve_kernel("difference", ndim=1).parts[0].ndim == 1
    assert resolve_kernel("1,-1").parts[0].shape == (1, 2)
    with pytest.raises(ValueError, match="unknown kernel 'edges'; named kernels: laplacian"):
        resolve_kernel("edges")


def test_kernel_from_array_checks_dimensions():
    with pytest.raises(ValueError, match="1-D or 2-D"):
        kernel_from_array(np.ones((2, 2, 2)))
    assert kernel_from_array(np.ones((1, 3)), ndim=1).parts[0].shape == (3,)


def test_1d_kernels_are_1d():
    assert all(k.parts[0].ndim == 1 for k in NAMED_KERNELS_1D.values())
