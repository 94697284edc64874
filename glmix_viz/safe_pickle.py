"""Read pickled files without running code from them.

A pickle names the functions that rebuild its objects, and ``pickle.load`` calls them: a file from elsewhere can run
anything. Two kinds of pickled files reach glmix-viz, and each is read with an unpickler that resolves only harmless
names:

* :func:`read_pickled_npy` - an ``.npy`` holding a pickled object (IRN's ``cls_labels.npy``, a dict from image id to
  a multi-hot vector): only numpy arrays, dicts, lists, strings and numbers are rebuilt, everything else is refused.
* :func:`torch_load_inert` - a PyTorch checkpoint that pickles foreign objects beside its tensors (the official GLNet
  files pickle an OmegaConf config): every foreign class is replaced by an inert placeholder that only stores what
  the pickle hands it, so the tensors are recovered without importing or running anything from the file.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from glmix_viz.errors import CheckpointError, DataError, one_line

__all__ = ["ArrayOnlyUnpickler", "read_pickled_npy", "torch_load_inert"]


class ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds numpy arrays, dicts, lists, strings and numbers, and refuses everything else."""

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),  # protocol 5
        ("numpy._core.numeric", "_frombuffer"),
        ("collections", "OrderedDict"),
        ("_codecs", "encode"),  # protocol 2 stores bytes as _codecs.encode(text, "latin1")
        ("builtins", "dict"),
        ("builtins", "list"),
    }

    def find_class(self, module: str, name: str):  # noqa: D102 - pickle API
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            module = "numpy._core." + module[len("numpy.core."):]
        return super().find_class(module, name)


def read_pickled_npy(path: Path) -> object:
    """The object pickled in an ``.npy`` file (as ``np.save`` writes a dict), rebuilt by :class:`ArrayOnlyUnpickler`.

    Returns:
        The object; a 0-d object array is unwrapped to its item.

    Raises:
        DataError: the file holds a plain (not pickled) array.
        pickle.UnpicklingError: the pickle names anything but arrays and plain containers.
    """
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
        if not dtype.hasobject:
            raise DataError(f"{path}: expected a pickled dict (as np.save writes it), got a {dtype} array")
        array = ArrayOnlyUnpickler(io.BytesIO(handle.read())).load()
    if isinstance(array, np.ndarray) and array.shape == ():
        return array.item()
    return array


class _InertObject:
    """Stands in for a foreign pickled object: stores its constructor arguments and state, runs nothing."""

    def __new__(cls, *args: Any, **kwargs: Any) -> "_InertObject":
        obj = super().__new__(cls)
        obj.__dict__["_pickled_args"] = args
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.__dict__["_pickled_state"] = state


def torch_load_inert(path: Path) -> Any:
    """``torch.load(weights_only=True)`` with every non-allow-listed global replaced by an inert placeholder.

    Raises:
        CheckpointError: not a PyTorch checkpoint, or one whose pickled objects cannot be stood in for.
    """
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception as error:  # noqa: BLE001 - torch raises many types for a file that is not a checkpoint
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint ({one_line(error, with_type=False, limit=200)})") from None
    if not names:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (the weights-only unpickler refused it)")
    placeholders = [(type(name.rsplit(".", 1)[-1], (_InertObject,), {}), name) for name in names]
    try:
        with torch.serialization.safe_globals(placeholders):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - the same: any failure is one line naming the file
        raise CheckpointError(
            f"{path}: holds pickled objects that cannot be read safely ({one_line(error, with_type=False, limit=200)});"
            " from a trusted Python session re-save just the weights: "
            "torch.save(torch.load(p, weights_only=False)['model'], q)"
        ) from None
