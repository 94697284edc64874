"""Label conventions: the VOC palette (against published colours) and label PNGs read back as indices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from glmix_viz.errors import DataError
from glmix_viz.labels import IGNORE_INDEX, label_to_pil, load_label_png, palette_bytes, voc_palette

# Hand-listed colours of the published VOC colour map (not computed with the bit rule under test).
KNOWN_COLOURS = {
    0: (0, 0, 0),
    1: (128, 0, 0),  # aeroplane
    2: (0, 128, 0),  # bicycle
    3: (128, 128, 0),  # bird
    4: (0, 0, 128),  # boat
    8: (64, 0, 0),  # cat
    12: (64, 0, 128),  # dog
    15: (192, 128, 128),  # person
    20: (0, 64, 128),  # tvmonitor
    255: (224, 224, 192),  # ignore
}



def test_the_ignore_value_is_255() -> None:
    assert IGNORE_INDEX == 255


def test_palette_matches_published_colours_and_is_one_to_one():
    palette = voc_palette()
    assert palette.shape == (256, 3) and palette.dtype == np.uint8
    for label, colour in KNOWN_COLOURS.items():
        assert tuple(palette[label]) == colour, label
    assert len({tuple(colour) for colour in palette}) == 256
    flat = palette_bytes()
    assert len(flat) == 768 and flat[3:6] == [128, 0, 0] and flat[45:48] == [192, 128, 128]
    assert voc_palette(21).tolist() == palette[:21].tolist()


def test_label_png_round_trip_reads_indices_not_colours(tmp_path: Path):
    mask = np.array([0, 1, 15, 255], dtype=np.uint8).reshape(1, 4).repeat(3, axis=0)
    label_to_pil(mask).save(tmp_path / "m.png")
    with Image.open(tmp_path / "m.png") as image:
        assert image.mode == "P"
    assert np.array_equal(load_label_png(tmp_path / "m.png"), mask)
    # Someone converted the mask to RGB: colours are mapped back through the palette.
    Image.open(tmp_path / "m.png").convert("RGB").save(tmp_path / "rgb.png")
    assert np.array_equal(load_label_png(tmp_path / "rgb.png"), mask)
    bad = np.zeros((4, 4, 3), dtype=np.uint8)
    bad[0, 0] = (1, 2, 3)
    Image.fromarray(bad).save(tmp_path / "bad.png")
    with pytest.raises(DataError, match="bad.png"):
        load_label_png(tmp_path / "bad.png")
    with pytest.raises(DataError, match="missing.png"):
        load_label_png(tmp_path / "missing.png")
