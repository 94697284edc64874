"""TrainConfig: the shared run-time settings, the nested grouping losses, and the flat record checkpoints keep."""

from __future__ import annotations

import dataclasses

import pytest

from glmix_viz.runtime.config import RUNTIME_FIELDS, RuntimeConfig
from glmix_viz.segment.train import SegmentTrainConfig
from glmix_viz.train.config import GroupingConfig, TrainConfig, config_record

# The record a checkpoint of this configuration carried before the grouping losses were nested (hand-written).
FLAT_GROUPING = {"grouping_blocks": ["stages.0.blocks.0"], "potts_weight": 1.0, "potts_sigma_rgb": 0.2,
                 "potts_sigma_xy": 1.5, "entropy_weight": 0.1, "usage_entropy_weight": -0.1, "recon_weight": 10.0}


def test_both_training_configs_share_the_runtime_settings():
    assert RUNTIME_FIELDS == ("out", "device", "workers", "progress")
    for config in (TrainConfig(data="d", out="o", device="cpu", workers=0, progress=False),
                   SegmentTrainConfig(out="o", device="cpu", workers=0, progress=False)):
        assert isinstance(config, RuntimeConfig)
        assert (config.out, config.device, config.workers, config.progress) == ("o", "cpu", 0, False)
    with pytest.raises(TypeError):
        TrainConfig("d", "o")  # the run-time settings are keyword-only


def test_flat_grouping_names_build_the_nested_config_and_come_back_in_the_record():
    config = TrainConfig.from_flat(data="d", out="o", seed=3, **FLAT_GROUPING)
    assert config.grouping == GroupingConfig(blocks=["stages.0.blocks.0"], potts_weight=1.0, potts_sigma_rgb=0.2,
                                             potts_sigma_xy=1.5, entropy_weight=0.1, usage_entropy_weight=-0.1,
                                             recon_weight=10.0)
    record = config_record(config)
    assert {key: record[key] for key in FLAT_GROUPING} == FLAT_GROUPING
    assert "grouping" not in record and not set(RUNTIME_FIELDS) & set(record) and "resume" not in record
    names = list(record)  # the flat keys sit where they always did: after slot_mil_blocks, before seed
    assert names[names.index("slot_mil_blocks") + 1:names.index("seed")] == list(FLAT_GROUPING)
    again = TrainConfig.from_flat(out="o", **record)
    assert config_record(again) == record
    assert dataclasses.replace(config, grouping=dict(dataclasses.asdict(config.grouping))).grouping == config.grouping


def test_bad_potts_widths_are_refused():
    with pytest.raises(ValueError, match="Potts"):
        TrainConfig.from_flat(data="d", out="o", potts_sigma_rgb=0.0)
