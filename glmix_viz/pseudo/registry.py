"""The pseudo-mask method registry: one :class:`ScoreMethod` per method, made by :func:`register_method`.

A method is one decorated function in one file; the CLI's ``--method`` choices, the app's predictions tab, the
weak-supervision benchmark's grid and baselines, and notebook 02 all read :data:`METHODS`::

    from glmix_viz.models.cam import class_activation_maps
    from glmix_viz.pseudo import MapContext, register_method

    @register_method("my_cam", description="CAM squared", bg_threshold=0.4, search_space={"power": (2, 3)},
                     options={"power": 2})
    def my_cam(context: MapContext) -> list[torch.Tensor]:
        cams = class_activation_maps(context.model, context.features, context.classes)  # (N, K, h, w)
        return [cams ** context.options["power"]]

A map function takes one :class:`MapContext` (a batch of views of one input size) and returns a list of
``(N, K, h_i, w_i)`` maps, one row per view and one channel per ``context.classes`` entry; the scoring resizes
each to the image size and averages the list (e.g. one map per GLMix block). Everything else the project needs to
know about a method is on its registry entry: default background threshold (there is no project-wide fallback),
option defaults, benchmark search space, whether it is a baseline, what it needs to run.

This module is a leaf: it imports none of its methods. The built-in methods (:mod:`glmix_viz.pseudo.methods`) and
the pytorch-grad-cam baselines (:mod:`glmix_viz.pseudo.gradcam`) import :func:`register_method`, and the package face
(:mod:`glmix_viz.pseudo`) imports them, in that order, so :data:`METHODS` holds the same methods in the same order
whichever module of the package is imported first (importing any submodule runs the package face first).

Two names for the two roles a method can play when none is named:

* :func:`default_method` - THE default method: what :class:`~glmix_viz.pseudo.settings.ScoreSettings` takes when no
  method is given, and so the CLI's ``--method``, the app's predictions tab and any scoring call without settings:
  the non-baseline method with the best measured mIoU after the dense CRF (``slot_pool`` with the built-in methods).
* :func:`reference_baseline` - the method the others are compared against in benchmarks (classic ``cam``): the first
  registered baseline. It is never the default.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np

__all__ = [
    "BLOCK_SETS",
    "METHODS",
    "MapContext",
    "ScoreMethod",
    "block_set",
    "baseline_methods",
    "default_method",
    "reference_baseline",
    "register_method",
    "search_grid",
]


@dataclass(frozen=True)
class MapContext:
    """What a method's map function sees: one batch of ``N`` views (all of one network input size).

    Attributes:
        model: the classifier (in eval mode).
        inputs: ``(N, 3, H_in, W_in)`` normalised network inputs of the views (flipped views already flipped).
        features: ``(N, C, h, w)`` final feature map (``model.forward_features(inputs)``); ``None`` for methods that
            run the network themselves (``ScoreMethod.gradients``).
        classes: the ``K`` model classes (0-based, background excluded) to return channels for, sorted: every
            class present in at least one of the views' images.
        row_classes: per view, the classes present in its image (a subset of ``classes``): the per-image targets.
        records: GLMix grouping records by block name when the method ``uses_probe``, else ``None``.
        options: the method's options, defaults filled in.
    """

    model: Any
    inputs: Any
    features: Optional[Any]
    classes: Sequence[int]
    row_classes: Sequence[Sequence[int]]
    records: Optional[Mapping[str, Any]]
    options: Mapping[str, Any]


MapFunction = Callable[[MapContext], List[Any]]
Postprocess = Callable[[np.ndarray, np.ndarray, Mapping[str, Any]], np.ndarray]


@dataclass(frozen=True)
class ScoreMethod:
    """A registered score-map method.

    Attributes:
        name: registry name (``--method``).
        description: one line for help texts and captions.
        maps: the map function, ``(MapContext) -> list of (N, K, h_i, w_i) tensors``.
        bg_threshold: default constant background score of the ``"threshold"`` rule for this method's maps.
        search_space: benchmark grid: option name -> candidate values; key ``"blocks"`` -> names of
            :data:`BLOCK_SETS`. The grid is the product, in key order (:func:`search_grid`).
        baseline: a method the slot methods are compared against (never the default method; the first registered
            is the reference, :func:`reference_baseline`).
        uses_probe: reads the GLMix groupings (the network runs inside a :class:`~glmix_viz.probe.GroupingProbe`).
        gradients: runs the network itself, with gradients (``context.features`` is ``None``).
        slow: costs many forward passes per image (e.g. ScoreCAM: one per channel of its layer); the app's
            side-by-side row and quick benchmark runs leave it out unless asked.
        options: option names and defaults.
        postprocess: optional ``(image (H, W, 3) uint8, maps (K, H, W), options) -> maps`` at full resolution.
        measured: benchmark results of the method (``miou``, ``miou_crf`` in percent; ``bench/wsss_shapes.py``),
            from which :func:`default_method` is chosen.
    """

    name: str
    description: str
    maps: MapFunction
    bg_threshold: float
    search_space: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    baseline: bool = False
    uses_probe: bool = False
    gradients: bool = False
    slow: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    postprocess: Optional[Postprocess] = None
    measured: Optional[Mapping[str, float]] = None

    def resolve_options(self, options: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
        """The defaults updated with ``options``; unknown names are refused."""
        unknown = sorted(set(options or {}) - set(self.options))
        if unknown:
            known = ", ".join(self.options) or "none"
            raise ValueError(f"method {self.name!r} has no option(s) {unknown}; its options: {known}")
        return {**self.options, **(options or {})}


METHODS: Dict[str, ScoreMethod] = {}
"""Registry of score-map methods by name, in registration order."""


def register_method(
    name: str,
    *,
    description: str,
    bg_threshold: float,
    search_space: Optional[Mapping[str, Sequence[Any]]] = None,
    baseline: bool = False,
    uses_probe: bool = False,
    gradients: bool = False,
    slow: bool = False,
    options: Optional[Mapping[str, Any]] = None,
    postprocess: Optional[Postprocess] = None,
    measured: Optional[Mapping[str, float]] = None,
) -> Callable[[MapFunction], MapFunction]:
    """Decorator: register a map function as method ``name`` (fields as :class:`ScoreMethod`); returns it unchanged.

    Raises:
        ValueError: the name is taken, the threshold is outside ``[0, 1]``, or the search space names an option
            the method does not have.
    """
    if not 0.0 <= float(bg_threshold) <= 1.0:
        raise ValueError(f"method {name!r}: bg_threshold must be in [0, 1], got {bg_threshold}")
    space = dict(search_space or {})
    unknown = sorted(set(space) - {"blocks"} - set(options or {}))
    if unknown:
        raise ValueError(f"method {name!r}: search space names unknown option(s) {unknown}")
    bad_sets = sorted(set(space.get("blocks", ())) - set(BLOCK_SETS))
    if bad_sets:
        raise ValueError(f"method {name!r}: unknown block set(s) {bad_sets}; known: {', '.join(BLOCK_SETS)}")

    def decorator(function: MapFunction) -> MapFunction:
        if name in METHODS:
            raise ValueError(f"a method named {name!r} is already registered")
        METHODS[name] = ScoreMethod(
            name=name, description=description, maps=function, bg_threshold=float(bg_threshold), search_space=space,
            baseline=baseline, uses_probe=uses_probe, gradients=gradients, slow=slow, options=dict(options or {}),
            postprocess=postprocess, measured=None if measured is None else dict(measured),
        )
        return function

    return decorator


def default_method() -> str:
    """The default method (used wherever none is named): the non-baseline method with the best measured mIoU after
    the CRF.

    Falls back to the first registered non-baseline method when none has measurements, then to the first method.

    Raises:
        ValueError: no method is registered.
    """
    if not METHODS:
        raise ValueError("no pseudo-mask method is registered (import glmix_viz.pseudo to register the built-in ones)")
    candidates = [method for method in METHODS.values() if not method.baseline]
    measured = [method for method in candidates if method.measured]
    if measured:
        return max(measured, key=lambda method: float(method.measured["miou_crf"])).name
    return (candidates or list(METHODS.values()))[0].name


def baseline_methods() -> List[str]:
    """Names of the baseline methods, in registration order (the first is the reference: classic CAM)."""
    return [name for name, method in METHODS.items() if method.baseline]


def reference_baseline() -> str:
    """The baseline the other methods are compared against in benchmarks: the first registered one (classic CAM).

    Raises:
        ValueError: no baseline is registered.
    """
    baselines = baseline_methods()
    if not baselines:
        raise ValueError("no baseline pseudo-mask method is registered")
    return baselines[0]


def _first_block(names: Sequence[str]) -> Optional[List[str]]:
    return [names[0]]


def _early_blocks(names: Sequence[str]) -> Optional[List[str]]:
    return [name for name in names if name.startswith(("stages.0.", "stages.1."))] or [names[0]]


BLOCK_SETS: Dict[str, Callable[[Sequence[str]], Optional[List[str]]]] = {
    "all": lambda names: None,
    "first": _first_block,
    "early": _early_blocks,
}
"""Block sets a search space may name: every GLMix block (``None``), the first one (the finest grid: colour and
position regions, a learned superpixel), the blocks of the first two stages."""


def block_set(name: str, block_names: Sequence[str]) -> Optional[List[str]]:
    """The blocks of a named block set (:data:`BLOCK_SETS`) for a model with GLMix blocks ``block_names``."""
    if name not in BLOCK_SETS:
        raise ValueError(f"unknown block set {name!r}; known: {', '.join(BLOCK_SETS)}")
    return BLOCK_SETS[name](list(block_names)) if block_names else None


def search_grid(method: str, block_names: Sequence[str]) -> List[Dict[str, Any]]:
    """A method's benchmark candidates: ``[{"blocks": list or None, "options": {...}}, ...]`` (product, key order)."""
    space = METHODS[method].search_space
    keys = list(space)
    grid = []
    for values in itertools.product(*(space[key] for key in keys)):
        chosen = dict(zip(keys, values))
        blocks = block_set(chosen.pop("blocks"), block_names) if "blocks" in chosen else None
        grid.append({"blocks": blocks, "options": chosen})
    return grid
