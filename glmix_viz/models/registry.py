"""The GLNet variants as data: one :class:`VariantSpec` per name, the one table that loading, training and the app read.

``glnet.py`` registers one timm model function per spec (``timm.create_model(name)``) and builds its default config
from it; :mod:`glmix_viz.models.loading` matches checkpoints against every spec; training takes its stochastic-depth
default from it; the app lists it. (The module itself is plain data; the package above it imports torch.)

A new variant is one :func:`register_variant` call here plus its three-line ``@register_model`` function in its
model file.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Dict, Mapping, Optional, Tuple

__all__ = ["VariantSpec", "VARIANTS", "register_variant", "get_variant", "official_variants"]


@dataclass(frozen=True)
class VariantSpec:
    """Everything the project needs to know about one registered GLNet variant.

    Attributes:
        name: the timm model name, e.g. ``"glnet_stl"``.
        family: the official family it belongs to: ``"glnet_g"`` (4g/9g/16g, overlapping down-sampling) or
            ``"glnet_stl"`` (the Swin-Tiny layout).
        args: keyword arguments of ``GLNet`` (the official constructor's hyper-parameters).
        official: an official variant (its checkpoints are published), as opposed to a glmix-viz addition.
        token_label: trained with token labelling: built as ``GLNetTokenLabel`` (extra per-token head).
        input_size: ``(C, H, W)`` the variant is evaluated at by default.
        pool_size: ``(h, w)`` of its final feature map at ``input_size``.
        crop_pct: centre-crop fraction of its evaluation transform.
        drop_path: stochastic-depth rate of the official training recipe (for fine-tuning).
        summary: one line for listings: parameters, cost, ImageNet top-1.
    """

    name: str
    family: str
    args: Mapping[str, Any]
    official: bool = True
    token_label: bool = False
    input_size: Tuple[int, int, int] = (3, 224, 224)
    pool_size: Tuple[int, int] = (7, 7)
    crop_pct: float = 0.875
    drop_path: float = 0.0
    summary: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "args", MappingProxyType(dict(self.args)))

    @property
    def num_slots(self) -> int:
        """Slots per GLMix block."""
        return int(self.args["num_slots"])

    @property
    def widths(self) -> Tuple[int, ...]:
        """Channel width of each of the four stages."""
        return tuple(int(width) for width in self.args["embed_dim"])

    @property
    def first_conv(self) -> str:
        """Module path of the first convolution (timm's ``first_conv``)."""
        return "downsample_layers.0.1" if self.args["downsample_style"] == "ovlp" else "downsample_layers.0.0"

    def model_args(self, **overrides: Any) -> Dict[str, Any]:
        """A fresh dict of the constructor arguments, with ``overrides`` applied."""
        return dict(self.args, **overrides)

    def scaled(self, name: str, **overrides: Any) -> "VariantSpec":
        """A copy of this spec under another name with some constructor arguments changed (e.g. a small test
        config of the same family: ``spec.scaled("x", embed_dim=(16, 32, 64, 128), depth=(1, 1, 2, 1))``)."""
        return replace(self, name=name, args=self.model_args(**overrides), official=False)


_REGISTRY: Dict[str, VariantSpec] = {}
VARIANTS: Mapping[str, VariantSpec] = MappingProxyType(_REGISTRY)  # name -> spec, in registration order


def register_variant(spec: VariantSpec) -> VariantSpec:
    """Add a spec to :data:`VARIANTS` (a name may be registered once)."""
    if spec.name in _REGISTRY:
        raise ValueError(f"GLNet variant {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def get_variant(name: str) -> VariantSpec:
    """The spec of a registered variant.

    Raises:
        KeyError: one line naming the known variants.
    """
    if name not in _REGISTRY:
        raise KeyError(f"unknown GLNet variant {name!r}; known: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def official_variants() -> Tuple[str, ...]:
    """Names of the official variants, in registration order."""
    return tuple(name for name, spec in _REGISTRY.items() if spec.official)


_GLNET_G: Dict[str, Any] = dict(
    depth=(4, 4, 18, 4), head_dim=32, mlp_ratios=3, norm_layer="BatchNorm2d",
    mixing_modes=("glmix", "glmix", "glmix.mha_nchw", "mha_nchw"), local_dw_ks=5, slot_init="ada_avgpool",
    num_slots=64, cpe_ks=3, downsample_style="ovlp", transition_layout="proj.norm", mlp_dw=True, layerscale=-1.0,
)
_GLNET_STL: Dict[str, Any] = dict(
    depth=(2, 2, 6, 2), embed_dim=(96, 192, 384, 768), head_dim=32, mlp_ratios=4, norm_layer="BatchNorm2d",
    mixing_modes=("glmix", "glmix", "glmix", "mha"), local_dw_ks=5, slot_init="ada_avgpool", num_slots=64, cpe_ks=0,
    downsample_style="non_ovlp", transition_layout="norm.proj", mlp_dw=False, layerscale=-1.0,
)
_W4, _W9 = (64, 128, 256, 512), (96, 192, 384, 768)


def _spec(name: str, family: str, base: Dict[str, Any], summary: str, drop_path: float,
          embed_dim: Optional[Tuple[int, ...]] = None, **kwargs: Any) -> VariantSpec:
    args = dict(base, **({"embed_dim": embed_dim} if embed_dim else {}), **kwargs.pop("args", {}))
    return VariantSpec(name, family, args, drop_path=drop_path, summary=summary, **kwargs)


for _entry in (
    _spec("glnet_4g", "glnet_g", _GLNET_G, "GLNet-4G: 27.0 M parameters, 4.5 GMACs at 224, ImageNet top-1 83.7",
          0.15, _W4),
    _spec("glnet_9g", "glnet_g", _GLNET_G, "GLNet-9G: 60.0 M parameters, 9.6 GMACs at 224, ImageNet top-1 84.5",
          0.3, _W9),
    _spec("glnet_16g", "glnet_g", _GLNET_G,
          "GLNet-16G (layer scale 1e-4): 106.1 M parameters, 16.7 GMACs at 224, ImageNet top-1 85.0", 0.4,
          (128, 256, 512, 1024), args=dict(layerscale=1e-4)),
    _spec("glnet_stl", "glnet_stl", _GLNET_STL,
          "GLNet in the Swin-Tiny layout: 30.3 M parameters, 4.4 GMACs at 224, ImageNet top-1 82.5", 0.1),
    _spec("glnet_stl_paramslot", "glnet_stl", _GLNET_STL,
          "GLNet-STL with learned slot initialisation: 30.5 M parameters, ImageNet top-1 82.1", 0.1,
          args=dict(slot_init="param")),
    _spec("glnet_4g_tklb", "glnet_g", _GLNET_G,
          "GLNet-4G trained with token labelling: 27.5 M parameters, ImageNet top-1 84.4", 0.1, _W4, token_label=True),
    _spec("glnet_9g_tklb", "glnet_g", _GLNET_G,
          "GLNet-9G trained with token labelling: 60.8 M parameters, ImageNet top-1 85.3", 0.1, _W9, token_label=True),
    # Not an official variant: a few-million-parameter model of the 4g family for training on a CPU.
    _spec("glnet_tiny", "glnet_g", _GLNET_G,
          "A small GLNet (4g family, widths 32-256, 16 slots) for training from scratch on a CPU; not official", 0.0,
          (32, 64, 128, 256), args=dict(depth=(1, 2, 4, 1), num_slots=16), official=False,
          input_size=(3, 128, 128), pool_size=(4, 4), crop_pct=1.0),
):
    register_variant(_entry)
del _entry
