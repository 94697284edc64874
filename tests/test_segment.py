"""The segmenter: building on GLNet, the backbone reader, checkpoints, label checks, augmentation, prediction job."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import glmix_viz
from glmix_viz.cli import main
from glmix_viz.data.shapes import ShapesConfig, make_shapes
from glmix_viz.data.voc import VOCDataset, label_to_pil, load_label_png
from glmix_viz.errors import CheckpointError
from glmix_viz.segment.model import (
    DECODERS,
    backbone_of,
    build_segmenter,
    init_backbone,
    load_segmenter,
    read_backbone,
    save_segmenter,
)

DEMO_ARGS = {"downsample_strides": [2, 2, 1], "num_slots": 9,
             "mixing_modes": ["glmix", "glmix", "glmix.mha_nchw", "glmix"], "slot_scale_init": 10.0}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shapes") / "voc"
    make_shapes(root, ShapesConfig(image_size=64), num_train=6, num_val=4, seed=11)
    return root


def _small(decoder: str = "upernet", **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    width = {"upernet": 32, "unet": 64, "fpn": 32, "deeplabv3plus": 32}[decoder]
    args = {"decoder_channels": width}
    return build_segmenter("glnet_tiny", 5, decoder=decoder, decoder_args=args, **kwargs).eval()


def _checkpoint_config(num_classes: int = 5) -> dict:
    return {"backbone": {"variant": "glnet_tiny", "model_args": {}}, "decoder": "upernet",
            "decoder_args": {"decoder_channels": 32}, "num_classes": num_classes,
            "class_names": ["background", "circle", "square", "triangle", "cross"][:num_classes], "input_size": 64}


@pytest.mark.parametrize("decoder", sorted(DECODERS))
def test_every_decoder_gives_full_size_logits(decoder: str) -> None:
    segmenter = _small(decoder)
    with torch.no_grad():
        logits = segmenter(torch.randn(2, 3, 64, 96))
    assert logits.shape == (2, 5, 64, 96)
    widths = {"upernet": 32, "unet": 8, "fpn": 32, "deeplabv3plus": 32}  # the last decoder layer's width, from decoder_channels
    assert segmenter.segmentation_head[0].in_channels == widths[decoder]


def test_fpn_refuses_a_stride_16_backbone_but_upernet_takes_it() -> None:
    with pytest.raises(ValueError, match="4/8/16/16"):
        build_segmenter("glnet_tiny", 5, decoder="fpn", model_args=DEMO_ARGS)
    segmenter = build_segmenter("glnet_tiny", 5, decoder="upernet", model_args=DEMO_ARGS,
                                decoder_args={"decoder_channels": 32}).eval()
    with torch.no_grad():
        assert segmenter(torch.randn(1, 3, 64, 64)).shape == (1, 5, 64, 64)
    deeplab = build_segmenter("glnet_tiny", 5, decoder="deeplabv3plus", model_args=DEMO_ARGS,
                              decoder_args={"decoder_channels": 32}).eval()  # GLNet(output_stride=16) for smp
    with torch.no_grad():
        assert deeplab(torch.randn(1, 3, 64, 64)).shape == (1, 5, 64, 64)


def test_backbone_of_a_demo_checkpoint_lands_in_the_encoder() -> None:
    demo = glmix_viz.demo_checkpoint()
    variant, model_args, state = read_backbone(demo)
    assert variant == "glnet_tiny" and model_args["downsample_strides"] == [2, 2, 1]
    assert not any(key.startswith("head.") for key in state)
    segmenter = build_segmenter(variant, 5, model_args=model_args, decoder_args={"decoder_channels": 32})
    loaded = init_backbone(segmenter, state)
    reference = glmix_viz.load_model(demo, device="cpu").state_dict()
    encoder = backbone_of(segmenter).state_dict()
    assert loaded == len(encoder) > 50
    for key, value in encoder.items():
        torch.testing.assert_close(value, reference[key], rtol=0, atol=0)
    with pytest.raises(CheckpointError, match="missing"):
        init_backbone(segmenter, {key: value for key, value in state.items() if "stages.3" not in key}, source="x")


def test_segmenter_checkpoint_round_trip_and_open_checkpoint(tmp_path: Path) -> None:
    segmenter = _small()
    path = tmp_path / "run" / "best.safetensors"
    save_segmenter(segmenter, path, _checkpoint_config())
    assert json.loads(path.with_suffix(".json").read_text())["format"] == "glmix-viz-segmenter/1"
    again = load_segmenter(path, device="cpu")
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(again(images), segmenter(images))
    opened = glmix_viz.open_checkpoint(path, device="cpu")  # the segmenter, explicitly, and its encoder
    backbone = opened.model
    assert opened.kind == "segmenter" and opened.segmenter is not None
    assert isinstance(backbone, glmix_viz.GLNet) and backbone.num_classes == 0
    assert backbone.checkpoint_config["kind"] == "segmenter" and backbone_of(opened.segmenter) is backbone
    assert not hasattr(backbone, "segmenter")  # nothing hidden on the encoder
    assert set(backbone.state_dict()) == set(backbone_of(segmenter).state_dict())  # the decoder is not a submodule
    with pytest.raises(CheckpointError, match="not a GLNet classifier"):
        glmix_viz.load_model(path, device="cpu")  # GLNets only
    from glmix_viz.probe import glmix_block_names

    import timm

    assert glmix_block_names(backbone) == glmix_block_names(timm.create_model("glnet_tiny"))  # the probe sees it
    with pytest.raises(CheckpointError, match="not a glmix-viz segmenter"):
        load_segmenter(glmix_viz.demo_checkpoint())


def test_explore_segmenter_gives_groupings_and_the_predicted_mask(tmp_path: Path) -> None:
    """The mask is checked against a forward pass written here (an image whose sides are multiples of 32 enters the
    network as it is), and against a head rigged to one class."""
    from glmix_viz.images import IMAGENET_MEAN, IMAGENET_STD
    from glmix_viz.segment.predict import explore_segmenter

    path = tmp_path / "seg.safetensors"
    save_segmenter(_small(), path, _checkpoint_config())
    opened = glmix_viz.open_checkpoint(path, device="cpu")
    image = np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    exploration, labels = explore_segmenter(opened.segmenter, image)
    assert labels.shape == (64, 96) and labels.dtype == np.uint8
    pixels = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
    normalised = (pixels - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        by_hand = opened.segmenter(normalised)[0].argmax(dim=0).numpy()
    np.testing.assert_array_equal(labels, by_hand)
    assert list(exploration.records) == list(glmix_viz.glmix_block_names(opened.model))
    assert exploration.cam is None  # the encoder has no classifier
    head = opened.segmenter.segmentation_head[0]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 5.0, 0.0]))
    assert (explore_segmenter(opened.segmenter, image[:40, :50])[1] == 3).all()


def test_check_pairs_reports_each_bad_label_and_keeps_the_rest(shapes: Path, tmp_path: Path) -> None:
    from glmix_viz.segment.data import check_pairs

    dataset = VOCDataset(shapes, "train")
    labels = tmp_path / "labels"
    labels.mkdir()
    ids = dataset.ids
    for image_id in ids:
        label_to_pil(dataset.load_mask(image_id)).save(labels / f"{image_id}.png")
    (labels / f"{ids[0]}.png").unlink()  # missing
    (labels / f"{ids[1]}.png").write_bytes(b"not a png")  # unreadable
    label_to_pil(np.zeros((32, 32), np.uint8)).save(labels / f"{ids[2]}.png")  # another size
    label_to_pil(np.full((64, 64), 9, np.uint8)).save(labels / f"{ids[3]}.png")  # not a class (5 classes)
    check = check_pairs(dataset, ids, labels, dataset.num_classes)
    assert check.ids == ids[4:]
    reasons = {failure["id"]: failure["reason"] for failure in check.failures}
    assert list(reasons) == ids[:4]
    assert "not found" in reasons[ids[0]] and "cannot read" in reasons[ids[1]]
    assert "32x32" in reasons[ids[2]] and "64x64" in reasons[ids[2]] and "[9]" in reasons[ids[3]]
    assert all("\n" not in reason for reason in reasons.values())


def test_segment_train_with_no_usable_label_exits_with_one_line(shapes: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(["segment-train", "--voc-root", str(shapes), "--labels", str(empty), "--backbone", "glnet_tiny",
                 "--out", str(tmp_path / "run"), "--epochs", "1", "--input-size", "64", "--workers", "0",
                 "--no-progress", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code != 0
    assert err.count("segment-train: left out") == 6
    assert err.strip().splitlines()[-1].startswith("glmix-viz segment-train: error:") and "no usable image" in err
    assert not (tmp_path / "run" / "last.safetensors").exists()


def test_augmentation_keeps_labels_and_pads_with_ignore() -> None:
    from glmix_viz.segment.data import build_augmentation

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
    mask = rng.integers(0, 3, (40, 50)).astype(np.uint8)
    transform = build_augmentation(96, (0.5, 1.0))
    for _ in range(3):
        out = transform(image=image, mask=mask)
        assert out["image"].shape == (96, 96, 3) and out["mask"].shape == (96, 96)
        assert set(np.unique(out["mask"])) <= {0, 1, 2, 255}  # nearest-neighbour labels, never blends
        assert (out["mask"] == 255).mean() > 0.5  # at most 50x40 of 96x96 is image
    flat = build_augmentation(64, train=False)(image=image, mask=mask)
    assert (flat["mask"][:12] == 255).all() and (flat["mask"][12:52, 7:57] == mask).all()


def test_flip_inference_is_flip_equivariant(shapes: Path) -> None:
    from glmix_viz.segment.predict import network_size, predict_probs

    assert network_size(375, 500, 1.0) == (384, 512) and network_size(64, 64, 0.5) == (32, 32)
    segmenter = _small()
    image = VOCDataset(shapes, "val").load_image(VOCDataset(shapes, "val").ids[0])
    probs = predict_probs(segmenter, [image], flip=True, scales=(1.0, 1.5))
    mirrored = predict_probs(segmenter, [image[:, ::-1].copy()], flip=True, scales=(1.0, 1.5))
    assert probs.shape == (1, 5, 64, 64)
    torch.testing.assert_close(mirrored, probs.flip(-1), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(probs.sum(1), torch.ones(1, 64, 64), rtol=1e-5, atol=1e-5)


def test_segment_job_resumes_shards_and_reports_bad_images(shapes: Path, tmp_path: Path) -> None:
    from glmix_viz.segment.predict import VOC_TEST_FOLDER, run_segment

    checkpoint = tmp_path / "seg.safetensors"
    save_segmenter(_small(), checkpoint, _checkpoint_config())
    segmenter = load_segmenter(checkpoint, device="cpu")
    dataset = VOCDataset(shapes, "val")
    out = tmp_path / "pred"
    first = run_segment(dataset, out, segmenter, shard="1/2", progress=False)
    second = run_segment(dataset, out, segmenter, shard="2/2", progress=False)
    assert first["counts"]["done"] + second["counts"]["done"] == len(dataset.ids)
    assert (out / "summary.shard-1-of-2.json").is_file() and (out / "summary.shard-2-of-2.json").is_file()
    for image_id in dataset.ids:
        labels = load_label_png(out / f"{image_id}.png")
        assert labels.shape == (64, 64) and labels.max() < 5
        assert Image.open(out / f"{image_id}.png").mode == "P"
    again = run_segment(dataset, out, segmenter, progress=False)
    assert again["counts"] == {"total": len(dataset.ids), "done": 0, "skipped": len(dataset.ids), "failed": 0}
    broken = shapes.parent / "broken"
    make_shapes(broken, ShapesConfig(image_size=64), num_train=1, num_val=2, seed=3)
    bad_id = VOCDataset(broken, "val").ids[0]
    VOCDataset(broken, "val").image_path(bad_id).write_bytes(b"broken")
    code = main(["segment", "--checkpoint", str(checkpoint), "--voc-root", str(broken), "--split", "val",
                 "--out", str(tmp_path / "test"), "--format", "voc-test", "--no-progress", "--device", "cpu"])
    summary = json.loads((tmp_path / "test" / "summary.json").read_text())
    assert code == 1 and summary["counts"]["failed"] == 1 and summary["failures"][0]["id"] == bad_id
    written = sorted(path.stem for path in (tmp_path / "test" / VOC_TEST_FOLDER).glob("*.png"))
    assert written == [image_id for image_id in VOCDataset(broken, "val").ids if image_id != bad_id]


def test_a_zero_backbone_ratio_freezes_the_encoder(shapes: Path, tmp_path: Path) -> None:
    from glmix_viz.segment.train import SegmentTrainConfig, train_segmenter

    demo = glmix_viz.demo_checkpoint()

    def run(name: str, lr: float) -> torch.nn.Module:
        config = SegmentTrainConfig(out=str(tmp_path / name), init=str(demo), backbone_lr_ratio=0.0, epochs=1, lr=lr,
                                    batch_size=2, max_steps=1, input_size=64, workers=0, device="cpu", progress=False,
                                    decoder_args={"decoder_channels": 16})
        result = train_segmenter(config, VOCDataset(shapes, "train"))
        assert result["epochs"] == 1 and result["best_miou"] is None
        return load_segmenter(tmp_path / name / "last.safetensors", device="cpu")

    trained, untouched = run("run", 6e-4), run("still", 0.0)  # one seed: the same initial head in both runs
    reference = glmix_viz.load_model(demo, device="cpu").state_dict()
    for key, value in backbone_of(trained).state_dict().items():
        torch.testing.assert_close(value, reference[key], rtol=0, atol=0)
    assert not torch.equal(trained.segmentation_head[0].weight, untouched.segmentation_head[0].weight)


def test_validation_loss_is_the_mean_pixel_cross_entropy_by_hand() -> None:
    from glmix_viz.segment.train import evaluate_segmenter

    class Constant(torch.nn.Module):  # the same logits (2, 0, 0) at every pixel
        def __init__(self) -> None:
            super().__init__()
            self.logits = torch.nn.Parameter(torch.tensor([2.0, 0.0, 0.0]))

        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            return self.logits.view(1, 3, 1, 1).expand(inputs.shape[0], 3, *inputs.shape[-2:])

    class Data:  # one 32x32 image: 512 pixels of class 0, 256 of class 1, 256 ignored
        num_classes, class_names = 3, ("background", "a", "b")
        background, ignore = 0, 255  # the Split protocol's (glmix_viz.data.base)

        def load_image(self, image_id: str) -> np.ndarray:
            return np.zeros((32, 32, 3), np.uint8)

        def load_mask(self, image_id: str) -> np.ndarray:
            return np.concatenate([np.zeros((16, 32)), np.ones((8, 32)), np.full((8, 32), 255)]).astype(np.uint8)

    scores = evaluate_segmenter(Constant(), Data(), ["x"], torch.device("cpu"))
    p0, p1 = np.exp(2) / (np.exp(2) + 2), 1 / (np.exp(2) + 2)
    assert scores["loss"] == pytest.approx((512 * -np.log(p0) + 256 * -np.log(p1)) / 768, rel=1e-5)
    assert scores["miou"] == pytest.approx((512 / 768 + 0 + 0) / 2)  # class b never seen nor predicted: left out
