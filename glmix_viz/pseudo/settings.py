"""What a pseudo-mask's score maps depend on, in one validated object: :class:`ScoreSettings`.

Built once (by the CLI from its flags, by the app from its widgets, by the benchmarks and notebooks from their
parameters) and passed down whole: :func:`~glmix_viz.pseudo.scores.compute_scores`,
:func:`~glmix_viz.pseudo.scores.compute_scores_batch` and :func:`~glmix_viz.pseudo.pipeline.run_pseudo_label` take
it (the only spelling of a scoring call: no loose keyword fields), every :class:`~glmix_viz.pseudo.scores.ScoreMaps`
carries it, and a run's ``summary.json`` records it (``score_settings``, readable back with
:meth:`ScoreSettings.from_dict`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from glmix_viz.pseudo.evidence import BG_RULES, DEFAULT_POWER_ALPHA, check_background
from glmix_viz.pseudo.registry import METHODS, ScoreMethod, default_method

__all__ = ["BG_RULES", "DEFAULT_POWER_ALPHA", "ScoreSettings", "check_background"]

InputSize = Union[None, int, Tuple[int, int]]
Block = Union[str, int]


def _method(name: str) -> ScoreMethod:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(METHODS)}")
    return METHODS[name]


def _input_size(value: Any) -> InputSize:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"input_size must be None, N or (height, width), got {value!r}")
        size = (int(value[0]), int(value[1]))
        if min(size) < 1:
            raise ValueError(f"input_size must be positive, got {value!r}")
        return size
    if isinstance(value, bool) or not float(value).is_integer() or int(value) < 1:
        raise ValueError(f"input_size must be None, a positive integer N or (height, width), got {value!r}")
    return int(value)


def _scales(value: Any) -> Tuple[float, ...]:
    try:
        scales = tuple(float(scale) for scale in (value if isinstance(value, (list, tuple)) else [value]))
    except (TypeError, ValueError):
        raise ValueError(f"scales must be positive numbers, got {value!r}") from None
    if not scales or any(not (math.isfinite(scale) and scale > 0) for scale in scales):
        raise ValueError(f"scales must be positive numbers, got {scales}")
    return scales


def _background(rule: str, param: Optional[float], method: ScoreMethod) -> float:
    param = check_background(rule, param)
    if param is None:  # the threshold belongs to the method: there is no project-wide fallback
        return float(method.bg_threshold) if rule == "threshold" else DEFAULT_POWER_ALPHA
    return param


@dataclass(frozen=True)
class ScoreSettings:
    """Settings of the class score maps, validated and normalised when made (a bad value: one-line ``ValueError``).

    Attributes:
        method: a name of :data:`glmix_viz.pseudo.METHODS`; default :func:`~glmix_viz.pseudo.registry.default_method`
            (the best measured non-baseline method, ``slot_pool``), the same default as the CLI's and the app's.
        options: the method's options; stored with its defaults filled in (an unknown name is refused).
        scales: input scales; every scale (and its flip) is one view, summed after resizing to the image size.
        flip: also run the horizontally flipped image at every scale (its maps are flipped back).
        bg_rule: ``"threshold"`` (constant background score) or ``"power"`` (``(1 - max class score) ** alpha``).
        bg_param: the rule's parameter; ``None`` when made means the method's own threshold (``bg_threshold`` of its
            registry entry) for ``"threshold"``, :data:`DEFAULT_POWER_ALPHA` for ``"power"``. Always a number after.
        blocks: GLMix blocks (paths or indices) for the slot methods; ``None`` for all.
        input_size: network input at scale 1: ``None`` the image's own size, an ``int`` the longer side (aspect
            kept, sides rounded to multiples of 32), or ``(height, width)``.
        device: where the network runs (``"cpu"``, ``"cuda:1"`` ...); ``None``: wherever the model is.
    """

    method: str = field(default_factory=default_method)
    options: Mapping[str, Any] = field(default_factory=dict)
    scales: Tuple[float, ...] = (1.0,)
    flip: bool = True
    bg_rule: str = "threshold"
    bg_param: Optional[float] = None
    blocks: Optional[Tuple[Block, ...]] = None
    input_size: InputSize = None
    device: Optional[str] = None

    def __post_init__(self) -> None:
        spec = _method(self.method)
        if self.options is not None and not isinstance(self.options, Mapping):
            raise ValueError(f"options must be a mapping of option names to values, got {self.options!r}")
        values = {
            "options": dict(spec.resolve_options(self.options)),
            "scales": _scales(self.scales),
            "flip": bool(self.flip),
            "bg_param": _background(self.bg_rule, self.bg_param, spec),
            "blocks": None if self.blocks is None else tuple(
                block if isinstance(block, int) else str(block) for block in
                ([self.blocks] if isinstance(self.blocks, (str, int)) else self.blocks)),
            "input_size": _input_size(self.input_size),
            "device": None if self.device is None else str(self.device),
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True, default=str))

    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON-ready dict (lists for tuples); :meth:`from_dict` reads it back to an equal object."""
        data = asdict(self)
        data["options"] = dict(self.options)
        data["scales"] = list(self.scales)
        data["blocks"] = None if self.blocks is None else list(self.blocks)
        data["input_size"] = list(self.input_size) if isinstance(self.input_size, tuple) else self.input_size
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ScoreSettings":
        """Settings from a dict such as :meth:`to_dict` wrote (missing keys take their defaults; unknown: refused)."""
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown score setting(s) {unknown}; known: {', '.join(sorted(known))}")
        return cls(**dict(data))
