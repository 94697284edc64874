"""Tests of glmix_viz.figures: interactive Plotly figures and figure files of bounded size."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from glmix_viz.figures import save_figure, slot_distribution_figure, soft_maps_figure
from glmix_viz.viz import slot_palette


def test_soft_maps_figure_tiles_and_hover_data() -> None:
    rng = np.random.default_rng(0)
    maps = rng.random((12, 3, 4))
    figure = soft_maps_figure(maps, cols=8, title="block 5")
    assert isinstance(figure, go.Figure) and len(figure.data) == 1
    heatmap = figure.data[0]
    z, customdata = np.asarray(heatmap.z, dtype=float), np.asarray(heatmap.customdata)
    assert z.shape == (2 * 4 - 1, 8 * 5 - 1)  # 2 rows, 8 columns of 3x4 tiles with 1-pixel gaps.
    top, left = 1 * 4, 1 * 5  # Slot 9 → row 1, column 1.
    for y in range(3):
        for x in range(4):
            assert tuple(customdata[top + y, left + x, :3]) == (9, x, y)
            assert customdata[top + y, left + x, 3] == pytest.approx(maps[9, y, x])  # the raw value
            assert z[top + y, left + x] == pytest.approx(maps[9, y, x])
    assert np.isnan(z[3]).all()  # Gap row between the two tile rows.
    assert np.isnan(z[top:, 4 * 5 :]).all()  # Tiles 12..15 are unused.
    assert heatmap.zmin == pytest.approx(maps.min()) and heatmap.zmax == pytest.approx(maps.max())
    assert "customdata[0]" in heatmap.hovertemplate and heatmap.hoverongaps is False


def test_soft_maps_figure_on_own_scales_says_so_and_hovers_raw_values() -> None:
    maps = np.stack([np.array([[0.0, 0.1]]), np.array([[10.0, 30.0]])])  # (2, 1, 2): very different ranges
    shared = soft_maps_figure(maps, cols=2).data[0]
    own = soft_maps_figure(maps, cols=2, scale="own").data[0]
    assert (shared.zmin, shared.zmax) == (0.0, 30.0) and "shared" in shared.colorbar.title.text
    assert (own.zmin, own.zmax) == (0.0, 1.0) and "own" in own.colorbar.title.text
    assert list(own.colorbar.ticktext) == ["map's min", "map's max"]
    z_own, z_shared = np.asarray(own.z, dtype=float), np.asarray(shared.z, dtype=float)
    np.testing.assert_allclose(z_own[0, [0, 1, 3, 4]], [0.0, 1.0, 0.0, 1.0])  # each map from its min to its max
    np.testing.assert_allclose(z_shared[0, [0, 1, 3, 4]], [0.0, 0.1, 10.0, 30.0])  # raw values, one scale
    np.testing.assert_allclose(np.asarray(own.customdata)[0, [1, 4], 3], [0.1, 30.0])  # hover shows raw values
    with pytest.raises(ValueError, match="scale must be one of"):
        soft_maps_figure(maps, scale="per_map")


def test_grouping_figure_draws_a_colour_bar_that_depends_on_the_scale() -> None:
    from glmix_viz.figures import grouping_figure

    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    dispatch = rng.random((4, 5, 6)).astype(np.float32)
    dispatch[1] *= 10  # one map far above the others: on a shared scale the rest are dark
    shared = grouping_figure(image, {"stages.0.blocks.0": dispatch}, panel_side=96)
    own = grouping_figure(image, {"stages.0.blocks.0": dispatch}, panel_side=96, scale="own")
    assert shared.shape == own.shape and not np.array_equal(shared, own)


def test_slot_distribution_figure_one_bar_trace_per_block() -> None:
    palette = slot_palette(4)
    probs = {"stage 2 block 0": np.array([0.1, 0.2, 0.3, 0.4]), "stage 3 block 1": np.array([0.7, 0.1, 0.1, 0.1])}
    figure = slot_distribution_figure(probs, palette)
    assert len(figure.data) == 2
    assert all(isinstance(trace, go.Bar) for trace in figure.data)
    np.testing.assert_allclose(figure.data[1].y, [0.7, 0.1, 0.1, 0.1])
    r, g, b = palette[2]
    assert figure.data[0].marker.color[2] == f"rgb({r},{g},{b})"
    from_array = slot_distribution_figure(np.ones((3, 4)) / 4, palette)
    assert len(from_array.data) == 3


def test_save_figure_keeps_a_noisy_picture_under_the_size_limit(tmp_path):
    from PIL import Image

    noise = np.random.default_rng(0).integers(0, 256, size=(400, 400, 3), dtype=np.uint8)  # ~480 KB as plain PNG
    path = save_figure(noise, tmp_path / "deep" / "noise.png", max_bytes=100_000)
    assert path.stat().st_size <= 100_000
    with Image.open(path) as picture:
        assert picture.format == "PNG" and picture.size[0] <= 400


def test_save_figure_writes_a_matplotlib_figure(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(2, 2))
    axis.plot([0, 1], [0, 1])
    path = save_figure(figure, tmp_path / "line.png")
    plt.close(figure)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_save_figure_refuses_a_gray_array(tmp_path):
    with pytest.raises(ValueError):
        save_figure(np.zeros((8, 8), np.uint8), tmp_path / "gray.png")


def test_error_panels_and_worst_images_figure():
    from glmix_viz.labels import voc_palette
    from glmix_viz.figures import error_panels, worst_images_figure
    from glmix_viz.viz import ERROR_COLORS

    gt = np.zeros((8, 10), dtype=np.uint8)
    gt[2:6, 2:6] = 1
    pred = np.zeros_like(gt)  # the object missed: red on the error map, nothing else
    image = np.full((8, 10, 3), 50, dtype=np.uint8)
    panels = error_panels(image, gt, pred, voc_palette(256), max_side=20)
    assert [panel.shape for panel in panels] == [(16, 20, 3)] * 4
    assert panels[1][6, 6].tolist() == voc_palette(256)[1].tolist() and panels[2][6, 6].tolist() == [0, 0, 0]
    errors = error_panels(image, gt, pred, voc_palette(256))[3]
    assert set(map(tuple, errors[2:6, 2:6].reshape(-1, 3).tolist())) == {
        tuple(int(np.floor(30 * 0.15 + int(c) * 0.85 + 0.5)) for c in ERROR_COLORS[1])}
    rows = [{"image": image, "gt": gt, "pred": pred, "title": "a"}, {"image": None, "gt": gt, "pred": gt, "title": "b"}]
    picture = worst_images_figure(rows, palette=voc_palette(256), class_names=["background", "one"], max_side=40)
    assert picture.dtype == np.uint8 and picture.shape[0] > 2 * 32 and picture.shape[1] >= 4 * 40
    with pytest.raises(ValueError, match="at least one"):
        worst_images_figure([], palette=voc_palette(256), class_names=["background"])
