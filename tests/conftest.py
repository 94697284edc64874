"""Shared fixtures: the golden reference of the official model (read in place, never copied) and small models."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

import glmix_viz  # noqa: F401  (registers the GLNet variants with timm)

GOLDEN_DIR = Path(os.environ.get("GLMIX_GOLDEN", Path(__file__).resolve().parents[2] / "shared" / "golden"))

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    if not (GOLDEN_DIR / "golden_meta.json").is_file():
        pytest.skip(f"golden reference not found at {GOLDEN_DIR} (the shared/ folder beside the project root)")
    return GOLDEN_DIR


@pytest.fixture(scope="session")
def golden_meta(golden_dir: Path) -> dict:
    return json.loads((golden_dir / "golden_meta.json").read_text())


@pytest.fixture(scope="session")
def golden_inputs(golden_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(golden_dir / "input.safetensors"))
