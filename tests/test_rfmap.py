"""Receptive-field pictures: what the panels hold, and dilcli rf-map as a user runs it."""

import numpy as np
import pytest
from conftest import run_cli as run
from PIL import Image

from dilcli.core import receptive
from dilcli.core.receptive import make_stack
from dilcli.io.atomic import TEMP_PREFIX
from dilcli.render import rfmap


def count(cells, colour):
    return int(np.all(cells == colour, axis=-1).sum())


def open_png(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.load()
    return image


# --- panels -----------------------------------------------------------------------------


def test_panel_cells_show_the_holes_of_2_2_2():
    layers = make_stack([2, 2, 2])
    last = rfmap.panel_cells(layers, 2)
    assert last.shape == (13, 13, 3)
    assert count(last, rfmap.REACHED) == 49
    assert count(last, rfmap.HOLE) == 169 - 49
    first = rfmap.panel_cells(layers, 0)  # a 5x5 box in the middle of the 13x13 panel
    assert count(first, rfmap.REACHED) == 9
    assert count(first, rfmap.HOLE) == 25 - 9
    assert count(first, rfmap.OUTSIDE) == 169 - 25
    assert np.all(first[4:9, 4:9][::2, ::2] == rfmap.REACHED)


def test_panel_cells_of_1_2_5_have_no_holes():
    layers = make_stack([1, 2, 5])
    for index in range(3):
        cells = rfmap.panel_cells(layers, index)
        assert count(cells, rfmap.HOLE) == 0
    assert count(rfmap.panel_cells(layers, 2), rfmap.REACHED) == 17 * 17


def test_panel_cells_effective_keeps_holes_flat_and_peaks_at_the_centre():
    layers = make_stack([2, 2, 2])
    cells = rfmap.panel_cells(layers, 2, effective=True)
    assert count(cells, rfmap.HOLE) == 169 - 49
    erf = receptive.effective_receptive_field(layers)
    peak_colour = rfmap._colormap(np.ones(1))[0]
    assert np.array_equal(cells[6, 6], peak_colour)
    assert erf[6, 6] == erf.max()


def test_signal_reach_matches_the_footprint():
    for causal in (False, True):
        layers = make_stack([2, 2, 2], kernels=2 if causal else 3)
        reached, edges = rfmap.signal_reach(layers, causal=causal)
        footprint = receptive.footprint_1d(layers)
        assert sorted(reached[0]) == [i for i, hit in enumerate(footprint) if hit]
        assert edges
    (output,) = rfmap.signal_reach(make_stack([1, 2, 4], kernels=2), causal=True)[0][-1]
    assert output == 7  # causal: the output is the last position of the box


def test_pictures_refuse_fields_too_wide_to_draw():
    with pytest.raises(ValueError, match="too wide"):
        rfmap.coverage_picture(make_stack([1000, 1000]))


# --- dilcli rf-map ------------------------------------------------------------------------


def test_rf_map_writes_a_png_atomically(tmp_path):
    out = tmp_path / "map.png"
    result = run("rf-map", "-d", "2,2,2", "-o", out)
    assert result.exit_code == 0, result.output
    image = open_png(out)
    assert image.width > 3 * 13 and image.height > 13
    pixels = np.asarray(image.convert("RGB"))
    assert count(pixels, rfmap.REACHED) > 0 and count(pixels, rfmap.HOLE) > 0
    assert count(pixels, rfmap.OUTPUT) > 0
    assert "wrote" in result.stderr and "13x13" in result.stderr
    assert not list(tmp_path.glob(f"{TEMP_PREFIX}*"))


def test_rf_map_hole_free_stack_draws_more_reached_than_gridded(tmp_path):
    gridded, whole = tmp_path / "a.png", tmp_path / "b.png"
    assert run("rf-map", "-d", "2,2,2", "-o", gridded).exit_code == 0
    assert run("rf-map", "-d", "1,2,3", "-o", whole).exit_code == 0
    reached = [
        count(np.asarray(open_png(p).convert("RGB")), rfmap.REACHED) for p in (gridded, whole)
    ]
    assert reached[1] > 2 * reached[0]


@pytest.mark.parametrize(
    "args",
    [
        ("-d", "1,2,5", "--effective"),
        ("-d", "1,2,4,8", "--effective", "--weights", "gaussian"),
        ("-d", "1,2", "-s", "2,1"),
        ("-k", "2", "-d", "1,2,4,8", "--1d", "--causal"),
        ("-d", "2,2,2", "--1d", "--effective"),
        ("-d", "1,2", "--1d", "--effective", "--weights", "1,-2,1"),
    ],
)
def test_rf_map_variants(tmp_path, args):
    out = tmp_path / "map.png"
    result = run("rf-map", *args, "-o", out)
    assert result.exit_code == 0, result.output
    assert open_png(out).width > 100


@pytest.mark.parametrize(
    "args, message",
    [
        (("-d", "2,2", "-o", "{tmp}/x.jpg"), "PNG"),
        (("-d", "2,2", "-o", "{tmp}/missing/x.png"), "does not exist"),
        (("-d", "2,2", "--causal", "-o", "{tmp}/x.png"), "--1d"),
        (("-d", "2,2", "--weights", "box", "-o", "{tmp}/x.png"), "--effective"),
        (("-d", "2,2", "--effective", "--weights", "sobel", "-o", "{tmp}/x.png"), "square"),
        (("-d", "2,2", "-k", "5", "--effective", "--weights", "box", "-o", "{tmp}/x.png"), "-k"),
        (("-d", "1000,1000", "-o", "{tmp}/x.png"), "too wide"),
        (("-d", "0", "-o", "{tmp}/x.png"), "from 1 to"),
        (
            (
                "-o",
                "{tmp}/x.png",
            ),
            "--dilations",
        ),
    ],
)
def test_rf_map_usage_errors(tmp_path, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = run("rf-map", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.parametrize("at", [(0, 0), (-999_999_999, 5), (999_999_999, 999_999_999)])
def test_network_picture_keeps_its_summary_line_inside_the_picture(at):
    # the summary (receptive field, box, share reached) ran past the right edge
    from dilcli.core.network import parse_spec

    picture = np.asarray(rfmap.network_picture(parse_spec("conv3"), at=at))
    summary_band = picture[38:56]  # the summary line's rows, under the 14-px title
    right_margin = summary_band[:, -rfmap.MARGIN // 2 :]
    assert (right_margin == rfmap.BACKGROUND).all()
    assert (summary_band != rfmap.BACKGROUND).any()
