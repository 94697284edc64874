"""The CAM family of pytorch-grad-cam (``pip install grad-cam``), registered as baseline pseudo-mask methods.

Every method of the table below is one registry entry (:func:`~glmix_viz.pseudo.registry.register_method`) whose map
function runs the library's CAM object on the batch of views:

* **per-image targets**: each view is repeated once per class present in its image, with one
  ``ClassifierOutputTarget(class)`` per row, so a batch of several images gets one map per present class per image
  (the library's default, a single arg-max target for the whole batch, is never used);
* **target layer** (option ``layer``): a module path of the model, e.g. ``"stages.-1"`` (the last stage, the default:
  the usual choice, the last feature map before the head), ``"stages.2"``, or a GLMix block such as
  ``"stages.1.blocks.0"``; integer parts index ``ModuleList`` / ``Sequential`` children and may be negative. GLNet
  stage outputs are ``(N, C, h, w)`` already; blocks of a full-attention stage output tokens ``(N, L, C)``, which
  the reshape transform turns back into ``(N, C, h, w)`` with the input's aspect ratio;
* **hooks are released**: the CAM object is used as the library's context manager, so its forward hooks are removed
  when the batch is done (also on an error); the model's parameters are frozen for the call (the gradients that
  the gradient methods need flow to the input instead), so no ``.grad`` builds up on the model;
* option ``batch_size``: the most rows per CAM call (and ScoreCAM's batch of masked inputs).

The library min-max normalises each row's map and resizes it to the network input; the scoring then averages views
and max-normalises each class as for every method. EigenCAM is class-agnostic (the first principal component of
the activations): every present class gets the same map. ScoreCAM runs one forward pass per channel of the target
layer and row: by far the slowest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from types import SimpleNamespace
from typing import Callable, Iterator, List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from glmix_viz.pseudo.methods import slot_pool
from glmix_viz.pseudo.registry import MapContext, register_method

__all__ = ["CAM_CLASSES", "resolve_layer"]

DEFAULT_LAYER = "stages.-1"

CAM_CLASSES = {
    # name: (pytorch_grad_cam class, description, background threshold)
    "gradcam": ("GradCAM", "Grad-CAM (pytorch-grad-cam): activations weighted by their mean gradient (baseline)", 0.55),
    "gradcam_pp": ("GradCAMPlusPlus", "Grad-CAM++ (pytorch-grad-cam): second-order gradient weights (baseline)", 0.50),
    "xgradcam": ("XGradCAM", "XGrad-CAM (pytorch-grad-cam): activation-normalised gradient weights (baseline)", 0.55),
    "hirescam": ("HiResCAM", "HiResCAM (pytorch-grad-cam): activations times gradients, element-wise (baseline)",
                 0.55),
    "layercam": ("LayerCAM", "LayerCAM (pytorch-grad-cam): positive gradients times activations (baseline)", 0.55),
    "eigencam": ("EigenCAM", "EigenCAM (pytorch-grad-cam): first principal component, class-agnostic (baseline)",
                 0.35),
    "scorecam": ("ScoreCAM", "Score-CAM (pytorch-grad-cam): channel weights from masked-input scores; slow "
                 "(baseline)", 0.50),
}
"""The registered pytorch-grad-cam methods (``pytorch_grad_cam.<class>``), their one-line descriptions and default
background thresholds: those chosen on the tuning split of ``bench/wsss_shapes.py --quick`` (demo model, 40 tuning
images, seed 2001, layer ``stages.-1``); ScoreCAM's was not measured (too slow for a CPU run): classic CAM's."""


def resolve_layer(model: nn.Module, path: str) -> nn.Module:
    """The sub-module at a dotted path; integer parts (negative too) index ``ModuleList`` / ``Sequential`` children.

    Raises:
        ValueError: the path names no sub-module (one line, with the model's top-level children).
    """
    module = model
    for part in str(path).split("."):
        try:
            if part.lstrip("-").isdigit() and isinstance(module, (nn.ModuleList, nn.Sequential)):
                module = module[int(part)]
            else:
                module = getattr(module, part)
        except (AttributeError, IndexError):
            children = ", ".join(name for name, _ in model.named_children())
            raise ValueError(f"target layer {path!r}: no sub-module {part!r} (top level: {children})") from None
        if not isinstance(module, nn.Module):
            raise ValueError(f"target layer {path!r}: {part!r} is not a module")
    return module


def _to_maps(inputs: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """The reshape transform: ``(N, C, h, w)`` unchanged; tokens ``(N, L, C)`` to ``(N, C, h, w)`` (input aspect)."""
    aspect = inputs.shape[-2] / inputs.shape[-1]

    def reshape(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.ndim != 3:
            return tensor
        rows, length, channels = tensor.shape
        height = max(1, round(math.sqrt(length * aspect)))
        while length % height:
            height -= 1
        return tensor.transpose(1, 2).reshape(rows, channels, height, length // height)

    return reshape


@contextlib.contextmanager
def _frozen(model: nn.Module) -> Iterator[None]:
    """Parameters without ``requires_grad`` for the block (restored after); gradients flow to the input only."""
    flags = [(parameter, parameter.requires_grad) for parameter in model.parameters()]
    for parameter, _ in flags:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


@contextlib.contextmanager
def _quiet_score_cam() -> Iterator[None]:
    """ScoreCAM shows a tqdm bar per row; silence it for the call (the pipeline has its own bar)."""
    import pytorch_grad_cam.score_cam as module  # deferred, as in _cam_class

    original = module.tqdm
    module.tqdm = SimpleNamespace(tqdm=lambda iterable, *args, **kwargs: iterable)
    try:
        yield
    finally:
        module.tqdm = original


def _run_cam(cam_class: type, context: MapContext, rows: torch.Tensor, classes: Sequence[int]) -> torch.Tensor:
    """``(M, H_in, W_in)`` maps of input rows ``rows`` (M, 3, H_in, W_in), row ``m`` for class ``classes[m]``."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # deferred, as in _cam_class

    layer = resolve_layer(context.model, context.options["layer"])
    result = None
    with _frozen(context.model), _quiet_score_cam(), cam_class(
        model=context.model, target_layers=[layer], reshape_transform=_to_maps(rows)
    ) as cam:
        cam.compute_input_gradient = True  # gradients reach the layer through the input (parameters are frozen)
        cam.batch_size = int(context.options["batch_size"])  # ScoreCAM's batch of masked inputs
        result = cam(input_tensor=rows, targets=[ClassifierOutputTarget(int(index)) for index in classes])
    if result is None:  # the library's context manager swallows an IndexError (and prints it)
        raise RuntimeError(f"{cam_class.__name__} failed on layer {context.options['layer']!r} (see above)")
    return torch.from_numpy(result)


def _cam_class(class_name: str) -> type:
    """The library's CAM class of that name, e.g. ``pytorch_grad_cam.GradCAM``."""
    import pytorch_grad_cam  # deferred: its import loads matplotlib, OpenCV and scikit-learn (about 3 s)

    return getattr(pytorch_grad_cam, class_name)


def _cam_maps(class_name: str) -> Callable[[MapContext], List[torch.Tensor]]:
    def maps(context: MapContext) -> List[torch.Tensor]:
        cam_class = _cam_class(class_name)
        pairs = [(row, index) for row, present in enumerate(context.row_classes) for index in present]
        rows, height, width = context.inputs.shape[0], context.inputs.shape[-2], context.inputs.shape[-1]
        out = torch.zeros(rows, len(context.classes), height, width, device=context.inputs.device)
        step = max(1, int(context.options["batch_size"]))
        for start in range(0, len(pairs), step):
            chunk = pairs[start:start + step]
            picked = context.inputs[[row for row, _ in chunk]].detach()
            result = _run_cam(cam_class, context, picked, [index for _, index in chunk]).to(out.device)
            for (row, index), single in zip(chunk, result):
                out[row, context.classes.index(index)] = single
        return [out]

    maps.__name__ = maps.__qualname__ = f"{class_name}_maps"
    return maps


for _name, (_class_name, _description, _threshold) in CAM_CLASSES.items():
    _cheap = _class_name != "ScoreCAM"
    register_method(
        _name, description=_description, bg_threshold=_threshold, baseline=True, gradients=True, slow=not _cheap,
        options={"layer": DEFAULT_LAYER, "batch_size": 16 if _cheap else 4},
        search_space={"layer": (DEFAULT_LAYER, "stages.-2")} if _cheap else {},
    )(_cam_maps(_class_name))


@register_method(
    "slot_gradcam", description="combination: slot_pool's maps averaged with Grad-CAM's (weight cam_weight); the slots "
    "draw the shapes, Grad-CAM tells the classes apart", bg_threshold=0.65, uses_probe=True, gradients=True,
    options={"sharpen": 1.0, "cam_weight": 0.5, "layer": DEFAULT_LAYER, "batch_size": 16},
    search_space={"blocks": ("early",), "cam_weight": (0.15, 0.3)},
)
def slot_gradcam(context: MapContext) -> List[torch.Tensor]:
    """``(1 - w) * slot_pool + w * gradcam`` at the network input size (both maps in ``[0, 1]`` per class)."""
    cam = _cam_maps("GradCAM")(context)[0].detach()
    with torch.no_grad():  # one plain forward pass: the probe records this batch's groupings
        features = context.model.forward_features(context.inputs)
        blocks = slot_pool(dataclasses.replace(context, features=features))
        slots = sum(F.interpolate(block.float(), size=cam.shape[-2:], mode="bilinear", align_corners=False)
                    for block in blocks) / len(blocks)
    weight = float(context.options["cam_weight"])
    return [(1.0 - weight) * slots + weight * cam.float()]
