"""Every setting of a training run (:class:`TrainConfig`, on the shared :class:`~glmix_viz.runtime.config.
RuntimeConfig`, with the grouping losses nested in :class:`GroupingConfig`), and what of it a checkpoint records.

The checkpoint's record (and ``train_config.json``) keeps the flat names it has always had (``grouping_blocks``,
``potts_weight`` ...): :func:`config_record` writes them, :meth:`TrainConfig.from_flat` reads them back.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from glmix_viz.models.registry import VARIANTS
from glmix_viz.runtime.config import RUNTIME_FIELDS, RuntimeConfig

__all__ = ["TrainConfig", "GroupingConfig", "CONFIG_FILE", "AUGMENT_MODES", "GROUPING_RECORD_NAMES",
           "TERM_LOG_NAMES", "config_record"]

CONFIG_FILE = "train_config.json"
AUGMENT_MODES = ("shapes", "flips", "standard", "none")
# loss term -> its name on the progress bar and in log.jsonl (the BCE term is "train_loss")
TERM_LOG_NAMES = {"slot_mil": "slot_mil_loss", "potts": "potts_loss", "entropy": "entropy",
                  "usage_entropy": "usage_entropy", "recon": "recon_loss", "proto": "proto_loss",
                  "proto_consistency": "proto_consistency", "proto_usage": "proto_usage"}
# run-time settings that do not change what is learned: left out of the checkpoints' record
_RUNTIME_KEYS = RUNTIME_FIELDS + ("resume", "threads", "cache_gb", "stop_after_epoch", "max_minutes")
GROUPING_RECORD_NAMES = {"blocks": "grouping_blocks", "potts_weight": "potts_weight",
                         "potts_sigma_rgb": "potts_sigma_rgb", "potts_sigma_xy": "potts_sigma_xy",
                         "entropy_weight": "entropy_weight", "usage_entropy_weight": "usage_entropy_weight",
                         "recon_weight": "recon_weight"}
""":class:`GroupingConfig` field -> its flat name in checkpoints, ``train_config.json`` and on the command line."""


@dataclass
class GroupingConfig:
    """The class-free grouping losses of a run (all off by default; :class:`~glmix_viz.train.losses.GroupingLosses`).

    Attributes:
        blocks: GLMix block paths the losses act on (empty: every GLMix block).
        potts_weight: weight of the bilateral Potts loss on the dispatch weights (0: off;
            :func:`~glmix_viz.train.losses.bilateral_potts_loss`).
        potts_sigma_rgb: its colour kernel width (RGB in [0, 1]).
        potts_sigma_xy: its position kernel width in pixels of each block's map (None: flat 8-neighbourhood).
        entropy_weight: weight of the pixel-assignment entropy (minimised: confident assignments; 0: off).
        usage_entropy_weight: weight of the slot-usage entropy, subtracted from the loss (positive: use many slots,
            no collapse; negative: fewer slots per image; 0: off).
        recon_weight: weight of the colour reconstruction through the slots, C then D (0: off;
            :func:`~glmix_viz.train.losses.slot_reconstruction_loss`).
    """

    blocks: List[str] = field(default_factory=list)
    potts_weight: float = 0.0
    potts_sigma_rgb: float = 0.12
    potts_sigma_xy: Optional[float] = None
    entropy_weight: float = 0.0
    usage_entropy_weight: float = 0.0
    recon_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.potts_sigma_rgb <= 0 or (self.potts_sigma_xy is not None and self.potts_sigma_xy <= 0):
            raise ValueError("the Potts kernel widths must be positive")

    def record(self) -> Dict[str, Any]:
        """The flat record: ``{"grouping_blocks": ..., "potts_weight": ...}``."""
        return {GROUPING_RECORD_NAMES[key]: value for key, value in dataclasses.asdict(self).items()}


@dataclass
class TrainConfig(RuntimeConfig):
    """Every setting of a training run; stored in ``train_config.json`` and in each checkpoint's config.

    The run-time settings ``out``, ``device``, ``workers``, ``progress`` are :class:`~glmix_viz.runtime.config.
    RuntimeConfig`'s (keyword-only).

    Attributes:
        data: folder of a data set with image-level labels (any format of glmix_viz.data.registry.open_split).
        model: registered GLNet variant.
        model_args: constructor overrides (e.g. ``{"num_slots": 9}``), recorded in the checkpoint.
        init: checkpoint to start from (fine-tuning); its classifier is replaced by a fresh multi-label head.
        train_split, val_split: split names (``val_split=""`` skips validation).
        epochs, batch_size: per-process batch size (DDP: global batch = batch_size x world size).
        lr: peak learning rate (AdamW).
        min_lr: final learning rate of the cosine.
        warmup_epochs: linear warm-up length, in epochs (fractions allowed).
        weight_decay: decay of tensors with more than one dimension.
        slot_scale_wd: decay of ``slot_scale`` when given; None keeps the published recipe (decayed with the rest
            when ``weight_decay_recipe`` is "official", not decayed when "ndim").
        weight_decay_recipe: "ndim" (only tensors of > 1 dim decay) or "official" (also ``slot_scale`` and learned
            slots, as the GLMix ImageNet recipe does); None: "official" for the published variants, "ndim" for
            ``glnet_tiny``.
        slot_scale_init: initial slot temperature tau of every GLMix block (None: the model's default C**-0.5).
        input_size: square training and validation side (None: the model's default cfg).
        grad_clip: max gradient norm (0: off).
        drop_path: stochastic depth rate (None: the recipe's value for the variant).
        augment: "shapes" (flips, 90-degree rotations, mild zoom and shift), "flips" (horizontal and vertical
            flips only), "standard" (horizontal flip, zoom 1-2.5x crops, shift) or "none".
        slot_mil_weight: weight of the slot MIL loss (0: off).
        slot_mil_blocks: GLMix block paths for the slot MIL loss (empty: the GLMix blocks of the deepest stage that
            has any).
        slot_mil_background: the slot MIL loss's softmax form with a background column (every slot picks one class
            or the background; :class:`glmix_viz.train.losses.SlotMILHeads`).
        slot_mil_cosine: 0, or the temperature of a cosine slot classifier for the slot MIL loss (SlotMILHeads).
        slot_mil_confidence: weight of the per-slot term of the background form (every slot picks one class of
            its image or the background; :func:`glmix_viz.train.losses.slot_mil_loss`).
        grouping: the grouping losses (:class:`GroupingConfig`; flat names in records: :meth:`from_flat`).
        proto_weight: weight of the cross-view prototype consistency of the slots (0: off;
            :mod:`glmix_viz.train.prototypes`); it costs a second forward pass per batch.
        proto_count: prototypes per block; proto_temperature: the slot-to-prototype softmax temperature;
        proto_entropy_weight: weight of the prototype-usage entropy (subtracted; keeps every prototype in use);
        proto_blocks: GLMix block paths of the prototype loss (empty: every GLMix block).
        seed: seed of weights, sampling and augmentation.
        amp: bf16 autocast on CUDA.
        cache_gb: keep a split in memory as uint8 when it takes at most this many GB.
        max_minutes: stop (after a full epoch, with a checkpoint) once this much wall time has passed (0: no limit).
        stop_after_epoch: stop after this epoch (0: run all), keeping the schedule of ``epochs``: a run can be done in
            pieces, and a resumed run may be given another ``epochs`` (its cosine then ends there).
        resume: continue from ``out/last_state.pt`` when it exists.
        threads: torch CPU threads (0: leave as is).
    """

    data: str
    model: str = "glnet_tiny"
    model_args: Dict[str, Any] = field(default_factory=dict)
    init: Optional[str] = None
    train_split: str = "train"
    val_split: str = "val"
    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    min_lr: float = 1e-5
    warmup_epochs: float = 1.0
    weight_decay: float = 0.05
    slot_scale_wd: Optional[float] = None
    weight_decay_recipe: Optional[str] = None
    slot_scale_init: Optional[float] = None
    input_size: Optional[int] = None
    grad_clip: float = 5.0
    drop_path: Optional[float] = None
    augment: str = "shapes"
    slot_mil_weight: float = 0.0
    slot_mil_blocks: List[str] = field(default_factory=list)
    grouping: GroupingConfig = field(default_factory=GroupingConfig)
    seed: int = 0
    # after seed, not beside slot_mil_blocks: the flat record keeps its older keys where checkpoints had them
    slot_mil_background: bool = False
    slot_mil_cosine: float = 0.0
    slot_mil_confidence: float = 0.0
    proto_weight: float = 0.0
    proto_count: int = 8
    proto_temperature: float = 0.1
    proto_entropy_weight: float = 1.0
    proto_blocks: List[str] = field(default_factory=list)
    amp: bool = True
    cache_gb: float = 4.0
    max_minutes: float = 0.0
    stop_after_epoch: int = 0
    resume: bool = True
    threads: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.grouping, dict):  # e.g. read back from JSON
            self.grouping = GroupingConfig(**self.grouping)
        if self.model not in VARIANTS:
            raise ValueError(f"unknown model {self.model!r}; known: {', '.join(VARIANTS)}")
        if self.augment not in AUGMENT_MODES:
            raise ValueError(f"augment must be one of {', '.join(AUGMENT_MODES)}, got {self.augment!r}")
        if self.weight_decay_recipe is None:
            self.weight_decay_recipe = "official" if VARIANTS[self.model].official else "ndim"
        if self.weight_decay_recipe not in ("ndim", "official"):
            raise ValueError(f"weight_decay_recipe must be 'ndim' or 'official', got {self.weight_decay_recipe!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be positive")
        if self.slot_mil_cosine < 0:
            raise ValueError(f"slot_mil_cosine is a temperature (> 0) or 0 for off, got {self.slot_mil_cosine}")
        if self.slot_mil_confidence and not self.slot_mil_background:
            raise ValueError("slot_mil_confidence acts on the background form of the slot MIL loss: "
                             "give slot_mil_background too")

    @classmethod
    def from_flat(cls, **settings: Any) -> "TrainConfig":
        """A configuration from flat settings: the fields, with the grouping losses under their flat names
        (``grouping_blocks``, ``potts_weight`` ...) as the command line and the checkpoints' records give them."""
        flat_names = {flat: key for key, flat in GROUPING_RECORD_NAMES.items()}
        grouping = {flat_names[name]: settings.pop(name) for name in list(settings) if name in flat_names}
        if grouping:
            settings["grouping"] = GroupingConfig(**{**dataclasses.asdict(settings.get("grouping", GroupingConfig())),
                                                     **grouping})
        return cls(**settings)


def config_record(config: TrainConfig) -> Dict[str, Any]:
    """The settings of ``config`` that define what is learned (the run-time ones left out), as a JSON-ready dict,
    in the flat layout checkpoints have always recorded."""
    record: Dict[str, Any] = {}
    for key, value in dataclasses.asdict(config).items():
        if key == "grouping":
            record.update(config.grouping.record())
        elif key not in _RUNTIME_KEYS:
            record[key] = value
    return record
