"""Safe checkpoints of learned strategy state: tensors in a ``.pt`` file plus a JSON sidecar.

The ``.pt`` file holds only plain containers, numbers, strings and tensors, written with ``torch.save``
and read back with ``torch.load(weights_only=True)``, so loading a checkpoint never runs code from it.
numpy arrays (tabular learners) are stored as tensors and come back as numpy arrays. The sidecar
``<name>.json`` says what the state belongs to: strategy, parameters, scenario hash, versions.
torch is imported only when a checkpoint is saved or loaded.
"""

from __future__ import annotations

import json
import platform
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from marketsim.config.validate import state_file  # the one rule for naming a checkpoint's .pt file
from marketsim.strategy import STRATEGY_API_VERSION

_NUMPY_TAG = "__numpy__"


class CheckpointError(ValueError):
    """A checkpoint is missing, malformed, or holds something other than plain data and tensors."""


def _to_storable(value: Any) -> Any:
    import torch

    if isinstance(value, np.ndarray):
        return {_NUMPY_TAG: torch.from_numpy(np.ascontiguousarray(value))}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _to_storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_storable(v) for v in value]
    return value


def _from_storable(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {_NUMPY_TAG}:
            return value[_NUMPY_TAG].numpy()
        return {k: _from_storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_storable(v) for v in value]
    return value


def versions() -> dict[str, str]:
    """Versions that decide whether a checkpoint can be read back faithfully."""
    import torch

    from marketsim import __version__

    return {
        "marketsim": __version__,
        "strategy_api": STRATEGY_API_VERSION,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def save_checkpoint(path: str | Path, state: Mapping[str, Any], meta: Mapping[str, Any]) -> Path:
    """Write ``state`` to ``path`` (``.pt``) and ``meta`` plus versions to the ``.json`` beside it."""
    import torch

    path = Path(path).with_suffix(".pt")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(_to_storable(dict(state)), path)
    sidecar = {**dict(meta), "versions": versions(), "state_file": path.name}
    path.with_suffix(".json").write_text(json.dumps(sidecar, indent=2, default=str) + "\n")
    return path


def load_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a checkpoint's state and sidecar; refuse anything that is not plain data and tensors."""
    import pickle

    import torch

    path = state_file(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError) as exc:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()  # torch's message carries terminal bold codes
        first = text.splitlines()[0] if text else type(exc).__name__
        raise CheckpointError(f"checkpoint {path} refused: not plain data and tensors ({first})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a state dict")
    sidecar = path.with_suffix(".json")
    meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    return _from_storable(state), meta
