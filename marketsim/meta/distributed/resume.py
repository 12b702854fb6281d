"""The resumable state of a distributed meta-training run: ``resume.pt`` in its output folder.

Written every few updates with ``torch.save`` to a temporary file beside it and moved over the last one with
``os.replace``, so a run killed at any moment (``kill -9`` included) leaves the previous state whole. It holds
plain data and tensors only (read back with ``weights_only=True``): the run's key (what must match to
continue it), the updates done, the curve so far, the seconds spent, the learner's training state, and the
weights of the last updates, which the batches still to come are acted with. Only files this module names
are ever removed: the state once the run's outputs are written, and temporaries of a killed save.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from marketsim.meta.batch import MetaTrainError

STATE = "resume.pt"
_PARTIAL = f".{STATE}.partial-"  # prefix of a save in progress: <prefix><pid>


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """A distributed run after ``iteration`` updates: enough to continue it exactly."""

    key: dict[str, Any]  # what the run was asked (strategy, family hash, seed, iterations, options, schedule)
    iteration: int
    curve: list[dict[str, float]]
    seconds: float  # training seconds spent up to this snapshot, over every resumed part
    learner: dict[str, Any]  # the learner's training_state()
    versions: dict[int, dict[str, np.ndarray]]  # update -> weights the batches still to come act with


def save(folder: Path, snap: Snapshot) -> None:
    """Write ``snap`` as the folder's resumable state, atomically."""
    import torch

    data = {
        "key": json.dumps(snap.key, sort_keys=True, default=str),
        "iteration": snap.iteration,
        "curve": snap.curve,
        "seconds": snap.seconds,
        "learner": snap.learner,
        "versions": {
            str(v): {k: torch.from_numpy(np.asarray(a)) for k, a in w.items()} for v, w in snap.versions.items()
        },
    }
    partial = folder / f"{_PARTIAL}{os.getpid()}"
    torch.save(data, partial)
    os.replace(partial, folder / STATE)


def load(folder: Path, key: Mapping[str, Any]) -> Snapshot:
    """The folder's resumable state; ``MetaTrainError`` when there is none or it is another run's."""
    import pickle

    import torch

    _drop_partials(folder)
    path = folder / STATE
    if not path.is_file():
        done = (folder / "checkpoint.pt").is_file()
        why = (
            "its run finished (checkpoint.pt)"
            if done
            else f"no {STATE}; only a distributed run (--workers > 1) has one"
        )
        raise MetaTrainError(f"{folder}: nothing to resume there ({why})")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise MetaTrainError(f"{path}: cannot be resumed ({type(exc).__name__})") from None
    stored = json.loads(data["key"])
    asked = json.loads(json.dumps(dict(key), sort_keys=True, default=str))
    differ = [f"{k} {stored.get(k)!r} there, {asked.get(k)!r} now" for k in sorted(set(stored) | set(asked))
              if stored.get(k) != asked.get(k)]  # fmt: skip
    if differ:
        raise MetaTrainError(f"{folder}: holds another run ({'; '.join(differ)}); resume it as it was started")
    versions = {int(v): {k: t.numpy() for k, t in w.items()} for v, w in data["versions"].items()}
    return Snapshot(
        key=stored,
        iteration=int(data["iteration"]),
        curve=list(data["curve"]),
        seconds=float(data["seconds"]),
        learner=data["learner"],
        versions=versions,
    )


def clear(folder: Path) -> None:
    """Remove the resumable state (the run's outputs are written) and any partial save."""
    _drop_partials(folder)
    (folder / STATE).unlink(missing_ok=True)


def _drop_partials(folder: Path) -> None:
    """Remove saves a killed run left half-written (only this module's own file names, of dead writers)."""
    for partial in folder.glob(f"{_PARTIAL}*"):
        pid = partial.name.removeprefix(_PARTIAL)
        if partial.is_file() and pid.isdigit() and not _alive(int(pid)):
            partial.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (this one counts as alive)."""
    try:
        os.kill(pid, 0)  # signal 0 only asks
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
