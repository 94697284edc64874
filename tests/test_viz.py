"""Tests of glmix_viz.viz: palettes, overlays, boundaries, grouping, grids, panels."""

from __future__ import annotations

import numpy as np
import pytest

from glmix_viz.viz import (
    colorbar,
    colorize_labels,
    colormap_lut,
    draw_boundaries,
    grouping_overlay,
    heatmap_overlay,
    hstack_panels,
    label_legend,
    map_colorbar,
    masked_slot_view,
    overlay,
    scale_caption,
    scale_to_unit,
    slot_boundaries,
    slot_palette,
    soft_map_grid,
    value_ranges,
    vstack_panels,
)
from glmix_viz.slots.resize import slot_labels, upsample_labels


def constant_image(value: int | tuple[int, int, int], height: int = 4, width: int = 6) -> np.ndarray:
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[...] = value
    return image


# ----------------------------------------------------------------------------------------------------------------------
# Palettes and labels
# ----------------------------------------------------------------------------------------------------------------------


def test_slot_palette_is_distinct_deterministic_and_prefix_stable() -> None:
    palette = slot_palette(64)
    assert palette.shape == (64, 3) and palette.dtype == np.uint8
    np.testing.assert_array_equal(palette, slot_palette(64))
    np.testing.assert_array_equal(slot_palette(10), palette[:10])  # Slot s keeps its colour whatever S is.
    colors = palette.astype(float)
    distances = np.linalg.norm(colors[:, None] - colors[None], axis=-1)
    distances[np.eye(64, dtype=bool)] = np.inf
    assert distances.min() > 60.0
    assert (colors.max(axis=1) >= 100).all() and (colors.min(axis=1) <= 180).all()  # No near-black, no near-white.
    assert slot_palette(0).shape == (0, 3)
    assert slot_palette(200).shape == (200, 3)


def test_colorize_labels() -> None:
    palette = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)
    colored = colorize_labels(np.array([[0, 1], [1, 1]]), palette)
    np.testing.assert_array_equal(colored, [[[1, 2, 3], [4, 5, 6]], [[4, 5, 6], [4, 5, 6]]])
    with pytest.raises(ValueError, match="exceeds"):
        colorize_labels(np.array([[0, 2]]), palette)


# ----------------------------------------------------------------------------------------------------------------------
# Overlays
# ----------------------------------------------------------------------------------------------------------------------


def test_overlay_alpha_math() -> None:
    image, colors = constant_image(100), constant_image(200)
    np.testing.assert_array_equal(overlay(image, colors, alpha=0.25), constant_image(125))
    np.testing.assert_array_equal(overlay(image, colors, alpha=0.0), image)
    np.testing.assert_array_equal(overlay(image, colors, alpha=1.0), colors)
    # 0 * 0.5 + 255 * 0.5 = 127.5 rounds half up.
    np.testing.assert_array_equal(overlay(constant_image(0), constant_image(255)), constant_image(128))


def test_overlay_mask_bool_and_weights() -> None:
    image, colors = constant_image(100), constant_image(200)
    mask = np.zeros((4, 6), dtype=bool)
    mask[1, 2] = True
    blended = overlay(image, colors, alpha=1.0, mask=mask)
    np.testing.assert_array_equal(blended[1, 2], [200, 200, 200])
    assert (blended[~mask] == 100).all()
    weights = np.full((4, 6), 0.5, dtype=np.float32)
    np.testing.assert_array_equal(overlay(image, colors, alpha=0.5, mask=weights), constant_image(125))


def test_overlay_labels_with_palette_and_single_color() -> None:
    image = constant_image(0, 2, 2)
    palette = np.array([[100, 0, 0], [0, 100, 0]], dtype=np.uint8)
    blended = overlay(image, np.array([[0, 1], [1, 0]]), palette=palette, alpha=0.5)
    np.testing.assert_array_equal(blended[0, 0], [50, 0, 0])
    np.testing.assert_array_equal(blended[0, 1], [0, 50, 0])
    np.testing.assert_array_equal(overlay(image, (10, 20, 30), alpha=1.0)[1, 1], [10, 20, 30])
    with pytest.raises(ValueError, match="palette"):
        overlay(image, np.array([[0, 1], [1, 0]]))
    with pytest.raises(ValueError, match="does not match"):
        overlay(image, constant_image(0, 3, 3))


def test_heatmap_overlay_high_is_red_for_jet() -> None:
    image = constant_image(0, 8, 8)
    score = np.array([[0.0, 1.0], [2.0, 3.0]], dtype=np.float32)
    picture = heatmap_overlay(image, score, alpha=1.0, colormap="jet")
    lut = colormap_lut("jet")
    np.testing.assert_array_equal(picture[0, 0], lut[0])  # Corner pixel samples score[0, 0] exactly (the minimum).
    np.testing.assert_array_equal(picture[-1, -1], lut[255])  # ... and score[1, 1] (the maximum).
    assert picture[-1, -1, 0] > 100 and picture[-1, -1, 2] < 10  # Jet's top is red.
    assert picture[0, 0, 2] > 100 and picture[0, 0, 0] < 10  # Jet's bottom is blue.
    half = heatmap_overlay(constant_image(100, 8, 8), score, alpha=0.5, colormap="viridis")
    expected = np.floor((100 + colormap_lut("viridis")[255].astype(float)) / 2 + 0.5)
    np.testing.assert_array_equal(half[-1, -1], expected)


def test_heatmap_overlay_without_normalisation_clips() -> None:
    picture = heatmap_overlay(constant_image(0, 2, 2), np.full((2, 2), 7.0), alpha=1.0, normalize=False)
    np.testing.assert_array_equal(picture[0, 0], colormap_lut("jet")[255])


# ----------------------------------------------------------------------------------------------------------------------
# Boundaries, upsampling, grouping
# ----------------------------------------------------------------------------------------------------------------------


def test_slot_boundaries_two_regions() -> None:
    labels = np.zeros((4, 6), dtype=np.int64)
    labels[:, 3:] = 1
    expected = np.zeros((4, 6), dtype=bool)
    expected[:, 2:4] = True  # Both sides of the border between columns 2 and 3.
    np.testing.assert_array_equal(slot_boundaries(labels), expected)
    labels = np.zeros((5, 3), dtype=np.int64)
    labels[2:] = 7
    expected = np.zeros((5, 3), dtype=bool)
    expected[1:3] = True
    np.testing.assert_array_equal(slot_boundaries(labels), expected)
    assert not slot_boundaries(np.ones((3, 3), dtype=np.int64)).any()


def test_draw_boundaries_paints_only_boundary_pixels() -> None:
    image = constant_image(10, 3, 3)
    boundaries = np.eye(3, dtype=bool)
    painted = draw_boundaries(image, boundaries, color=(1, 2, 3))
    assert (painted[boundaries] == [1, 2, 3]).all()
    assert (painted[~boundaries] == 10).all()
    assert (image == 10).all()  # Input untouched.


def make_dispatch(winners: np.ndarray, num_slots: int) -> np.ndarray:
    """Dispatch weights ``(S, h, w)`` whose argmax over slots is ``winners``."""
    dispatch = np.full((num_slots, *winners.shape), 0.1 / num_slots, dtype=np.float32)
    rows, cols = np.indices(winners.shape)
    dispatch[winners, rows, cols] = 0.9
    return dispatch


def test_grouping_overlay_colours_each_pixel_by_its_argmax_slot() -> None:
    winners = np.array([[0, 5], [2, 5]])
    dispatch = make_dispatch(winners, num_slots=6)
    np.testing.assert_array_equal(slot_labels(dispatch), winners)
    image = constant_image(0, 8, 8)
    palette = slot_palette(6)
    picture = grouping_overlay(image, dispatch, alpha=1.0, boundaries=False)
    np.testing.assert_array_equal(picture, palette[np.kron(winners, np.ones((4, 4), dtype=int))])
    with_borders = grouping_overlay(image, dispatch, alpha=1.0, boundaries=True, boundary_color=(255, 255, 255))
    borders = slot_boundaries(upsample_labels(winners, (8, 8)))
    assert (with_borders[borders] == 255).all()
    np.testing.assert_array_equal(with_borders[~borders], picture[~borders])
    np.testing.assert_array_equal(with_borders[0, 0], palette[0])  # A corner far from any border.


# ----------------------------------------------------------------------------------------------------------------------
# Authors' figure pieces
# ----------------------------------------------------------------------------------------------------------------------


def test_soft_map_grid_layout_frames_and_normalisation() -> None:
    maps = np.zeros((10, 7, 5), dtype=np.float32)
    maps[3, 2, 1] = 4.0  # The global maximum.
    grid = soft_map_grid(maps, pad=2, frame_colors={5: (255, 0, 0)})
    # cols = ceil(sqrt(10)) = 4, rows = 3; cell = 5x the map (smallest multiple >= 32 px): 35 x 25; tile 39 x 29.
    assert grid.shape == (3 * 39, 4 * 29, 3)
    viridis = colormap_lut("viridis")
    top, left = 0 * 39 + 2, 3 * 29 + 2  # Slot 3: row 0, column 3.
    np.testing.assert_array_equal(grid[top + 2 * 5, left + 1 * 5], viridis[255])
    np.testing.assert_array_equal(grid[top, left], viridis[0])
    frame_top, frame_left = 1 * 39, 1 * 29  # Slot 5: row 1, column 1.
    np.testing.assert_array_equal(grid[frame_top, frame_left], [255, 0, 0])
    np.testing.assert_array_equal(grid[frame_top + 38, frame_left + 28], [255, 0, 0])
    np.testing.assert_array_equal(grid[0, 0], [255, 255, 255])  # Unframed border.
    assert (grid[2 * 39 :, 2 * 29 :] == 255).all()  # Tiles 10 and 11 are unused.
    assert soft_map_grid(maps, cols=8, cell=14, pad=1).shape == (2 * 16, 8 * 12, 3)  # 7x5 map → 14x10 cell.


def test_soft_map_grid_per_map_normalisation() -> None:
    maps = np.stack([np.array([[0.0, 1.0]]), np.array([[0.0, 0.01]])]).astype(np.float32)
    viridis = colormap_lut("viridis")
    per_map = soft_map_grid(maps, cols=2, cell=2, pad=0, scale="own")
    np.testing.assert_array_equal(per_map[0, 3], viridis[255])  # Map 1's maximum is bright on its own scale.
    global_grid = soft_map_grid(maps, cols=2, cell=2, pad=0, scale="shared")
    np.testing.assert_array_equal(global_grid[0, 3], viridis[3])  # round(0.01 * 255) = 3 on the shared scale.


def test_soft_map_grid_with_a_fixed_range_clips_and_keeps_values() -> None:
    maps = np.array([[[0.25, 2.0]], [[-1.0, 0.5]]], dtype=np.float32)
    viridis = colormap_lut("viridis")
    grid = soft_map_grid(maps, cols=2, cell=2, pad=0, value_range=(0.0, 1.0))
    np.testing.assert_array_equal(grid[0, 0], viridis[64])  # round(0.25 * 255) = 64: the value itself, not rescaled
    np.testing.assert_array_equal(grid[0, 1], viridis[255])  # 2.0 clipped to the top
    np.testing.assert_array_equal(grid[0, 2], viridis[0])  # -1.0 clipped to the bottom


# ----------------------------------------------------------------------------------------------------------------------
# Colour scales
# ----------------------------------------------------------------------------------------------------------------------


def test_value_ranges_shared_and_own() -> None:
    maps = [np.array([[0.1, 0.4]]), np.array([[0.2, np.nan, 0.9]]), np.array([[5.0]])]
    assert value_ranges(maps, "own") == [(0.1, 0.4), (0.2, 0.9), (5.0, 5.0)]
    assert value_ranges(maps, "shared") == [(0.1, 5.0)] * 3
    assert value_ranges(np.full((2, 3, 3), np.nan), "own") == [(0.0, 1.0)] * 2
    with pytest.raises(ValueError, match="scale must be one of"):
        value_ranges(maps, "global")


def test_scale_to_unit_is_linear_clipped_and_never_divides_by_zero() -> None:
    np.testing.assert_allclose(scale_to_unit(np.array([0.0, 0.5, 1.0, 2.0, -1.0]), (0.0, 2.0)),
                               [0.0, 0.25, 0.5, 1.0, 0.0])
    np.testing.assert_array_equal(scale_to_unit(np.array([3.0, 3.0]), (3.0, 3.0)), [0.0, 0.0])


def test_heatmap_overlay_on_a_shared_range_keeps_two_maps_comparable() -> None:
    image = constant_image(0, 2, 2)
    weak, strong = np.full((2, 2), 0.2), np.full((2, 2), 0.8)
    shared = value_ranges([weak, strong], "shared")[0]
    assert shared == (0.2, 0.8)
    jet = colormap_lut("jet")
    np.testing.assert_array_equal(heatmap_overlay(image, weak, alpha=1.0, value_range=shared)[0, 0], jet[0])
    np.testing.assert_array_equal(heatmap_overlay(image, strong, alpha=1.0, value_range=shared)[0, 0], jet[255])
    np.testing.assert_array_equal(heatmap_overlay(image, weak, alpha=1.0, value_range=(0.0, 1.0))[0, 0],
                                  jet[51])  # round(0.2 * 255) = 51


def test_colour_bars_say_which_scale_they_are() -> None:
    bar = colorbar((0.0, 1.0), colormap="viridis", width=100, title="shared colour scale (all maps)")
    assert bar.shape[1] == 108 and bar.dtype == np.uint8
    viridis = colormap_lut("viridis")
    strip_rows = [row for row in range(bar.shape[0]) if (bar[row, 4] == viridis[0]).all()]
    assert strip_rows, "the bar starts with the colour map's first colour"
    np.testing.assert_array_equal(bar[strip_rows[0], 4 + 99], viridis[255])
    maps = np.stack([np.zeros((2, 2)), np.ones((2, 2))])
    shared, own = map_colorbar(maps, "shared", width=100), map_colorbar(maps, "own", width=100)
    assert shared.shape[1] == own.shape[1] == 108 and not np.array_equal(shared, own)  # different words
    with pytest.raises(ValueError):
        colorbar(None)
    assert scale_caption("shared", (0.0125, 0.87)) == "shared colour scale for all maps: 0.0125 to 0.87"
    assert "own colour scale" in scale_caption("own")


def test_masked_slot_view_shows_image_where_map_is_high() -> None:
    image = constant_image(200, 2, 4)
    view = masked_slot_view(image, np.array([[0.2, 0.9]]))  # Re-normalised to [0, 1]; nearest upsampling.
    assert (view[:, 2:] == 200).all()
    assert (view[:, :2] == 13).all()  # Gray 200 compressed to 0..16: 200 * 16 / 255 = 12.5 → 13.


# ----------------------------------------------------------------------------------------------------------------------
# Panels and legends
# ----------------------------------------------------------------------------------------------------------------------


def test_hstack_panels_geometry_and_titles() -> None:
    first = constant_image((10, 20, 30), 10, 20)
    second = np.full((30, 5), 77, dtype=np.uint8)  # Gray panels become RGB.
    stacked = hstack_panels([first, second], pad=4)
    assert stacked.shape == (30 + 8, 20 + 5 + 12, 3)
    np.testing.assert_array_equal(stacked[4:14, 4:24], first)
    assert (stacked[4:34, 28:33] == 77).all()
    assert (stacked[14:, 4:24] == 255).all()  # The shorter panel is padded with background.
    titled = hstack_panels([first, second], titles=["input", ""], pad=4)
    title_height = titled.shape[0] - stacked.shape[0]
    assert title_height > 10
    assert (titled[4 : 4 + title_height, 4:24] < 128).any()  # Dark text in the title strip.
    np.testing.assert_array_equal(titled[4 + title_height : 14 + title_height, 4:24], first)


def test_vstack_panels_geometry() -> None:
    first, second = constant_image(1, 10, 20), constant_image(2, 6, 8)
    stacked = vstack_panels([first, second], pad=3)
    assert stacked.shape == (10 + 6 + 9, 20 + 6, 3)
    np.testing.assert_array_equal(stacked[16:22, 3:11], second)
    with pytest.raises(ValueError, match="titles"):
        vstack_panels([first, second], titles=["only one"])


def test_label_legend() -> None:
    palette = slot_palette(5)
    legend = label_legend(palette, ["a", "b", "c", "d", "e"], swatch=16, cols=2, column_width=100)
    assert legend.shape == (3 * 20 + 4, 200, 3)
    np.testing.assert_array_equal(legend[4 + 8, 4 + 8], palette[0])
    np.testing.assert_array_equal(legend[4 + 8, 100 + 4 + 8], palette[3])  # Column 2 starts at entry ceil(5/2)=3.


def test_error_overlay_paints_each_error_kind_in_its_colour_over_the_grey_image():
    from glmix_viz.viz import ERROR_COLORS, error_overlay

    codes = np.array([[0, 1, 2], [3, 4, 5]])
    image = np.full((2, 3, 3), 100, dtype=np.uint8)
    picture = error_overlay(codes, image, alpha=1.0)
    assert picture[0, 0].tolist() == [60, 60, 60]  # correct: the image in grey, darkened to 0.6
    for row, col in [(0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]:
        assert picture[row, col].tolist() == ERROR_COLORS[codes[row, col]].tolist()
    half = error_overlay(codes, None, alpha=0.5)
    assert half[0, 1].tolist() == [int(np.floor((110 + int(c)) / 2 + 0.5)) for c in ERROR_COLORS[1]]
    with pytest.raises(ValueError, match="codes 0..5"):
        error_overlay(np.array([[6]]))


def test_mask_picture_flat_is_the_palette_and_overlay_keeps_background_pixels() -> None:
    from glmix_viz.data.voc import voc_palette
    from glmix_viz.viz import mask_comparison, mask_picture

    palette = voc_palette(256)
    labels = np.array([[0, 1], [255, 3]], np.uint8)
    image = np.full((2, 2, 3), 50, np.uint8)
    np.testing.assert_array_equal(mask_picture(labels, palette), palette[labels])  # 255 drawn (224, 224, 192)
    shown = mask_picture(labels, palette, image=image, style="overlay")
    np.testing.assert_array_equal(shown[0, 0], image[0, 0])  # background: the image itself
    np.testing.assert_array_equal(shown[1, 0], image[1, 0])  # 255: the image itself
    assert not np.array_equal(shown[0, 1], image[0, 1])
    with pytest.raises(ValueError):
        mask_picture(labels, palette, style="overlay")  # no image
    one = mask_comparison(image, labels, {"a": labels, "b": labels}, palette, per_row=1)
    two = mask_comparison(image, labels, {"a": labels, "b": labels}, palette, per_row=2)
    assert two.shape[0] < one.shape[0] and two.shape[1] > one.shape[1]  # one row of masks instead of two
