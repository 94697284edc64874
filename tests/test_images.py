"""Tests of glmix_viz.images: decoding every format and mode, errors, preprocessing."""

from __future__ import annotations

import io
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from glmix_viz.errors import ImageLoadError
from glmix_viz.images import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    _apply_orientation,
    batch_to_tensor,
    check_min_size,
    denormalize,
    load_image,
    load_image_with_info,
    resolve_size,
    to_tensor,
)


def make_picture(height: int = 40, width: int = 48) -> np.ndarray:
    """A smooth RGB test picture (gradients survive lossy codecs): R follows x, G follows y, B is constant."""
    ys, xs = np.mgrid[0:height, 0:width]
    red = (xs * 255 // (width - 1)).astype(np.uint8)
    green = (ys * 255 // (height - 1)).astype(np.uint8)
    blue = np.full((height, width), 90, dtype=np.uint8)
    return np.stack([red, green, blue], axis=-1)


def assert_one_line_error(excinfo: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(excinfo.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


# ----------------------------------------------------------------------------------------------------------------------
# Formats and modes
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file_format", "suffix", "tolerance"),
    [("PNG", "png", 0), ("BMP", "bmp", 0), ("TIFF", "tif", 0), ("JPEG", "jpg", 6.0), ("WEBP", "webp", 6.0)],
)
def test_rgb_round_trip_every_format(tmp_path: Path, file_format: str, suffix: str, tolerance: float) -> None:
    picture = make_picture()
    path = tmp_path / f"picture.{suffix}"
    Image.fromarray(picture).save(path, format=file_format, **({"quality": 95} if tolerance else {}))
    loaded, info = load_image_with_info(path)
    assert loaded.shape == picture.shape and loaded.dtype == np.uint8
    mean_error = np.abs(loaded.astype(int) - picture.astype(int)).mean()
    assert mean_error <= tolerance
    assert info["format"] == file_format
    assert info["original_size"] == (48, 40) and info["size"] == (48, 40) and not info["downscaled"]


def test_grayscale_is_replicated(tmp_path: Path) -> None:
    gray = make_picture()[:, :, 0]
    Image.fromarray(gray, mode="L").save(tmp_path / "gray.png")
    loaded = load_image(tmp_path / "gray.png")
    assert loaded.shape == (40, 48, 3)
    for channel in range(3):
        np.testing.assert_array_equal(loaded[:, :, channel], gray)


def test_rgba_is_composited_over_white(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 200  # Red 200 everywhere.
    rgba[0, :, 3] = 255  # Opaque row.
    rgba[1, :, 3] = 0  # Transparent row.
    rgba[2:, :, 3] = 128  # Half transparent rows.
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "alpha.png")
    loaded = load_image(tmp_path / "alpha.png")
    np.testing.assert_array_equal(loaded[0, 0], [200, 0, 0])
    np.testing.assert_array_equal(loaded[1, 0], [255, 255, 255])
    # 200 * 128/255 + 255 * 127/255 = 227.4; 0 * a + 255 * 127/255 = 127.
    np.testing.assert_array_equal(loaded[2, 0], [227, 127, 127])


def test_la_is_composited_over_white(tmp_path: Path) -> None:
    gray_alpha = np.zeros((2, 2, 2), dtype=np.uint8)
    gray_alpha[..., 0] = 50
    gray_alpha[0, :, 1] = 255
    Image.fromarray(gray_alpha, mode="LA").save(tmp_path / "la.png")
    loaded = load_image(tmp_path / "la.png")
    np.testing.assert_array_equal(loaded[0, 0], [50, 50, 50])
    np.testing.assert_array_equal(loaded[1, 0], [255, 255, 255])


def test_palette_with_transparency(tmp_path: Path) -> None:
    indices = np.array([[0, 1], [2, 1]], dtype=np.uint8)
    palette_image = Image.fromarray(indices, mode="P")
    palette_image.putpalette([10, 20, 30, 0, 0, 0, 250, 0, 0] + [0] * (253 * 3))
    palette_image.save(tmp_path / "palette.png", transparency=1)
    loaded = load_image(tmp_path / "palette.png")
    np.testing.assert_array_equal(loaded[0, 0], [10, 20, 30])
    np.testing.assert_array_equal(loaded[0, 1], [255, 255, 255])  # Index 1 is transparent → white.
    np.testing.assert_array_equal(loaded[1, 0], [250, 0, 0])


def test_cmyk_jpeg(tmp_path: Path) -> None:
    picture = make_picture()
    Image.fromarray(picture).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    loaded, info = load_image_with_info(tmp_path / "cmyk.jpg")
    assert info["mode"] == "CMYK"
    assert loaded.shape == picture.shape
    assert np.abs(loaded.astype(int) - picture.astype(int)).mean() < 8.0


def test_sixteen_bit_grayscale_png_is_scaled_by_bit_depth(tmp_path: Path) -> None:
    values = np.array([[0, 32768], [65535, 257]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    loaded = load_image(tmp_path / "deep.png")
    assert loaded[0, 0, 0] == 0
    assert abs(int(loaded[0, 1, 0]) - 128) <= 1
    assert loaded[1, 0, 0] == 255
    assert loaded[1, 1, 0] == 1  # 257 * 255 / 65535 = 1: scaled, not clipped to 255.
    assert (loaded == loaded[:, :, :1]).all()


def test_sixteen_bit_big_endian_tiff(tmp_path: Path) -> None:
    values = np.array([[0, 32768], [65535, 257]], dtype=">u2")
    Image.frombytes("I;16B", (2, 2), values.tobytes()).save(tmp_path / "deep.tif")
    loaded = load_image(tmp_path / "deep.tif")
    np.testing.assert_array_equal(loaded[:, :, 0], [[0, 128], [255, 1]])


def test_thirty_two_bit_integer_outside_sixteen_bits_is_min_max_scaled(tmp_path: Path) -> None:
    Image.fromarray(np.array([[-100, 0], [100, 100]], dtype=np.int32)).save(tmp_path / "int.tif")
    loaded = load_image(tmp_path / "int.tif")
    np.testing.assert_array_equal(loaded[:, :, 0], [[0, 128], [255, 255]])


def test_sixteen_bit_rgb_png_via_cv2(tmp_path: Path) -> None:
    bgr = np.zeros((3, 5, 3), dtype=np.uint16)
    bgr[..., 2] = 65535  # Red.
    bgr[..., 1] = 32768  # Green.
    bgr[..., 0] = 511  # Blue: 511 * 255 / 65535 = 1.99 → 2, where keeping only the high byte would give 1.
    bgr[0, 0] = (0, 0, 0)
    assert cv2.imwrite(str(tmp_path / "deep_rgb.png"), bgr)
    loaded = load_image(tmp_path / "deep_rgb.png")
    assert loaded.shape == (3, 5, 3)
    np.testing.assert_array_equal(loaded[1, 1], [255, 128, 2])
    np.testing.assert_array_equal(loaded[0, 0], [0, 0, 0])


def test_sixteen_bit_rgba_png_alpha_is_composited(tmp_path: Path) -> None:
    bgra = np.zeros((2, 2, 4), dtype=np.uint16)
    bgra[..., 2] = 65535
    bgra[0, :, 3] = 65535
    assert cv2.imwrite(str(tmp_path / "deep_rgba.png"), bgra)
    loaded = load_image(tmp_path / "deep_rgba.png")
    np.testing.assert_array_equal(loaded[0, 0], [255, 0, 0])
    np.testing.assert_array_equal(loaded[1, 0], [255, 255, 255])


def test_float_image_is_min_max_scaled(tmp_path: Path) -> None:
    Image.fromarray(np.array([[-1.0, 0.0], [1.0, 3.0]], dtype=np.float32), mode="F").save(tmp_path / "float.tif")
    loaded = load_image(tmp_path / "float.tif")
    np.testing.assert_array_equal(loaded[:, :, 0], [[0, 64], [128, 255]])  # (v + 1) / 4 * 255, rounded.


def test_exif_orientation_six_rotates_clockwise(tmp_path: Path) -> None:
    stored = np.full((40, 60, 3), 120, dtype=np.uint8)
    stored[:10, :10] = (255, 0, 0)  # Mark the stored top-left corner red.
    exif = Image.Exif()
    exif[0x0112] = 6  # "Rotate 90 CW to display".
    Image.fromarray(stored).save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    loaded = load_image(tmp_path / "rotated.jpg")
    assert loaded.shape == (60, 40, 3)
    top_right = loaded[:10, -10:].reshape(-1, 3).mean(axis=0)
    top_left = loaded[:10, :10].reshape(-1, 3).mean(axis=0)
    assert top_right[0] > 200 and top_right[1] < 60
    assert abs(top_left[0] - 120) < 20


@pytest.mark.parametrize("orientation", range(1, 9))
def test_array_orientation_matches_pillow(orientation: int) -> None:
    from PIL import ImageOps

    array = np.arange(3 * 5 * 3, dtype=np.uint8).reshape(3, 5, 3)
    pil_image = Image.fromarray(array)
    exif = pil_image.getexif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    pil_image.save(buffer, format="PNG", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(buffer)))
    np.testing.assert_array_equal(_apply_orientation(array, orientation), expected)


def test_animated_gif_gives_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 8), color) for color in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    loaded, info = load_image_with_info(tmp_path / "anim.gif")
    assert info["frames"] == 2
    np.testing.assert_array_equal(loaded[4, 4], [255, 0, 0])


def test_animated_webp_gives_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 8), color) for color in ((0, 200, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.webp", save_all=True, append_images=frames[1:], duration=100, lossless=True)
    loaded = load_image(tmp_path / "anim.webp")
    np.testing.assert_array_equal(loaded[4, 4], [0, 200, 0])


# ----------------------------------------------------------------------------------------------------------------------
# Sources
# ----------------------------------------------------------------------------------------------------------------------


def test_bytes_and_file_objects(tmp_path: Path) -> None:
    picture = make_picture()
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    np.testing.assert_array_equal(load_image(buffer.getvalue()), picture)
    np.testing.assert_array_equal(load_image(io.BytesIO(buffer.getvalue())), picture)
    (tmp_path / "p.png").write_bytes(buffer.getvalue())
    with open(tmp_path / "p.png", "rb") as handle:
        np.testing.assert_array_equal(load_image(handle), picture)
    np.testing.assert_array_equal(load_image(str(tmp_path / "p.png")), picture)


# ----------------------------------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.jpg"
    with pytest.raises(ImageLoadError) as excinfo:
        load_image(path)
    assert_one_line_error(excinfo, str(path), "not found")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageLoadError) as excinfo:
        load_image(path)
    assert_one_line_error(excinfo, "empty.png", "empty")


def test_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError) as excinfo:
        load_image(tmp_path)
    assert_one_line_error(excinfo, str(tmp_path), "folder")


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "noise.jpg"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    with pytest.raises(ImageLoadError) as excinfo:
        load_image(path)
    assert_one_line_error(excinfo, "noise.jpg", "cannot decode")


def test_text_file_renamed_png(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("these are\nnot pixels\n")
    with pytest.raises(ImageLoadError) as excinfo:
        load_image(path)
    assert_one_line_error(excinfo, "notes.png", "cannot decode")


@pytest.mark.parametrize("suffix", ["jpg", "png"])
def test_truncated_file(tmp_path: Path, suffix: str) -> None:
    buffer = io.BytesIO()
    noisy = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noisy).save(buffer, format="JPEG" if suffix == "jpg" else "PNG")
    path = tmp_path / f"cut.{suffix}"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageLoadError) as excinfo:
        load_image(path)
    assert_one_line_error(excinfo, f"cut.{suffix}", "cannot decode")


def test_bytes_errors_use_the_given_name_or_upload() -> None:
    with pytest.raises(ImageLoadError) as excinfo:
        load_image(b"not an image", name="holiday.heic")
    assert_one_line_error(excinfo, "holiday.heic")
    with pytest.raises(ImageLoadError) as excinfo:
        load_image(b"")
    assert_one_line_error(excinfo, "<upload>", "empty")


def test_decompression_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (20, 20)).save(buffer, format="PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)  # 400 pixels: over the limit, under twice the limit.
    with pytest.raises(ImageLoadError) as excinfo:
        load_image(buffer.getvalue(), name="bomb.png")
    assert_one_line_error(excinfo, "bomb.png", "too large")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # More than twice the limit: Pillow's hard error.
    with pytest.raises(ImageLoadError):
        load_image(buffer.getvalue(), name="bomb.png")


def test_check_min_size() -> None:
    check_min_size(np.zeros((32, 40, 3), dtype=np.uint8), 32, name="ok.png")
    with pytest.raises(ImageLoadError) as excinfo:
        check_min_size(np.zeros((15, 20, 3), dtype=np.uint8), 32, name="cat.jpg")
    assert str(excinfo.value) == "cat.jpg is 20x15 pixels; at least 32x32 is needed"


# ----------------------------------------------------------------------------------------------------------------------
# Downscaling and preprocessing
# ----------------------------------------------------------------------------------------------------------------------


def test_max_side_downscales_keeping_aspect(tmp_path: Path) -> None:
    Image.fromarray(make_picture(50, 100)).save(tmp_path / "wide.png")
    loaded, info = load_image_with_info(tmp_path / "wide.png", max_side=40)
    assert loaded.shape == (20, 40, 3)
    assert info["downscaled"] and info["original_size"] == (100, 50) and info["size"] == (40, 20)
    same, info = load_image_with_info(tmp_path / "wide.png", max_side=100)
    assert same.shape == (50, 100, 3) and not info["downscaled"]


def test_resolve_size() -> None:
    assert resolve_size(375, 500, None) == (375, 500)
    assert resolve_size(375, 500, (100, 120)) == (100, 120)
    assert resolve_size(375, 500, 224) == (160, 224)  # 375 * 224 / 500 = 168 → nearest multiple of 32 is 160.
    assert resolve_size(500, 375, 224) == (224, 160)
    assert resolve_size(400, 500, 224) == (192, 224)  # 179.2 → nearest multiple is 192 (rounded, not floored).
    assert resolve_size(10, 1000, 224) == (32, 224)  # Never below 32.
    assert resolve_size(300, 300, 300) == (288, 288)


def test_to_tensor_normalises_a_constant_image() -> None:
    image = np.empty((8, 6, 3), dtype=np.uint8)
    image[...] = (255, 0, 128)
    tensor = to_tensor(image)
    assert tensor.shape == (1, 3, 8, 6) and tensor.dtype == torch.float32
    expected = [(1.0 - 0.485) / 0.229, (0.0 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225]
    for channel, value in enumerate(expected):
        assert torch.allclose(tensor[0, channel], torch.full((8, 6), value), atol=1e-5)
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406) and IMAGENET_STD == (0.229, 0.224, 0.225)


def test_to_tensor_sizes() -> None:
    image = make_picture(375, 500)
    assert to_tensor(image, size=224).shape == (1, 3, 160, 224)
    assert to_tensor(image, size=(64, 32)).shape == (1, 3, 64, 32)
    with pytest.raises(ValueError):
        to_tensor(image.astype(np.float32))


def test_batch_to_tensor_stacks_resized_images() -> None:
    first, second = make_picture(40, 48), make_picture(70, 30)
    batch = batch_to_tensor([first, second], 32)
    assert batch.shape == (2, 3, 32, 32)
    assert torch.equal(batch[1:2], to_tensor(second, size=(32, 32)))


def test_denormalize_round_trip_and_refuses_batches() -> None:
    picture = make_picture()
    np.testing.assert_array_equal(denormalize(to_tensor(picture)), picture)
    np.testing.assert_array_equal(denormalize(to_tensor(picture)[0]), picture)
    with pytest.raises(ValueError, match="batch"):
        denormalize(torch.zeros(2, 3, 4, 4))
