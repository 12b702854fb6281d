"""``marketsim meta-train``: meta-train a registered strategy on a task family, and write what it learned.

A meta-learning strategy class has the capability ``marketsim.strategy.MetaTrainable``; this module finds it
through the registry (the core never imports a strategy module), runs the host's loop
(``marketsim.meta.loop``) on the family's batched task markets (``marketsim.meta.batch``), and writes the
checkpoint with ``marketsim.learning.checkpoint.save_checkpoint`` — sidecar: strategy, params, family name and
hash, iterations, training seconds — and the training curve (``curve.csv``, ``curve.png``). With
``distributed`` the experience comes from actor processes (``marketsim.meta.distributed``) and the output
folder fills in place, resumable, as the run goes.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from marketsim.config.family import Dist
from marketsim.meta.batch import MetaTrainError, Step, TaskBatch, oracle_profits
from marketsim.meta.loop import MetaRun, MetaTrained, Progress, run_meta_training
from marketsim.meta.tasks import Family
from marketsim.outputs import InputRecord
from marketsim.registry import Registry, default_registry
from marketsim.strategy import MetaTrainable

if TYPE_CHECKING:
    from marketsim.meta.distributed import Distributed

__all__ = [
    "MetaTrainError",
    "MetaTrained",
    "Progress",
    "Step",
    "TaskBatch",
    "eval_inputs",
    "family_hash",
    "family_record",
    "meta_learners",
    "meta_train",
    "oracle_profits",
    "write_meta_train",
]


def family_hash(family: Family) -> str:
    """sha256 of the family's draws and base scenario: what a checkpoint was trained on."""
    text = json.dumps(family.spec.model_dump(mode="json"), sort_keys=True, default=str) + family.base.digest()
    return hashlib.sha256(text.encode()).hexdigest()


def family_record(family: Family) -> InputRecord:
    """The record of a task family an output folder was made from: its draws, its resolved base, its hash.

    Written as a family file reads (``{uniform: [a, b]}``, not the parsed form), so it loads again.
    """
    data = {"family": _file_form(family.spec), "base": family.base.model_dump(mode="json", by_alias=True)}
    return InputRecord("family", data, family_hash(family))


def _file_form(value: Any) -> Any:
    """A family spec (or part of one) as plain YAML data in the family file's own notation."""
    if isinstance(value, Dist):
        return value.args[0] if value.kind == "constant" else {value.kind: _file_form(value.args)}
    if isinstance(value, BaseModel):
        return {name: _file_form(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, Mapping):
        return {key: _file_form(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_file_form(item) for item in value]
    return value


def eval_inputs(family: Family, agents: Mapping[str, tuple[str, Mapping[str, Any]]]) -> list[InputRecord]:
    """The family and any checkpoint a meta-evaluation of ``agents`` (name -> (strategy, params)) used."""
    from marketsim.outputs import checkpoint_record

    inputs = [family_record(family)]
    for strategy, params in agents.values():
        if "checkpoint" in params:
            inputs.append(checkpoint_record(params["checkpoint"], strategy))
    return inputs


def meta_learners(registry: Registry) -> list[str]:
    """Names of the registered strategies that can be meta-trained (capability ``MetaTrainable``)."""
    return [n for n in registry.names() if isinstance(registry.get(n).cls, MetaTrainable)]


def meta_train(
    family: Family,
    strategy: str,
    iterations: int | None = None,
    seed: int = 0,
    registry: Registry | None = None,
    progress: Progress | None = None,
    device: str = "auto",
    *,
    distributed: Distributed | None = None,
    **options: Any,
) -> tuple[MetaTrained, float]:
    """Train ``strategy`` (a registered ``MetaTrainable`` class) on ``family``; return (result, seconds).

    ``distributed`` spreads the run over actor processes; its seconds include a resumed run's earlier parts.
    """
    registry = registry if registry is not None else default_registry()
    cls = registry.get(strategy).cls if strategy in registry else None
    if not isinstance(cls, MetaTrainable):
        if strategy not in registry:
            raise MetaTrainError(f"unknown strategy {strategy!r}; available: {', '.join(registry.names())}")
        meta = ", ".join(meta_learners(registry)) or "-"
        raise MetaTrainError(f"strategy {strategy!r} cannot be meta-trained; meta-learners: {meta}")
    if iterations is not None and iterations < 1:
        raise MetaTrainError(f"iterations must be >= 1, got {iterations}")
    began = time.perf_counter()
    run = MetaRun(
        family=family,
        cls=cls,
        registry=registry,
        iterations=iterations,
        seed=seed,
        device=device,
        progress=progress,
        options=options,
    )
    if distributed is not None:
        from marketsim.meta.distributed import run_distributed

        result = run_distributed(run, distributed)
    else:
        result = run_meta_training(run)
    return result, time.perf_counter() - began + result.earlier_seconds


def write_meta_train(
    result: MetaTrained,
    family: Family,
    strategy: str,
    seconds: float,
    out_dir: str | Path,
    seed: int = 0,
    force: bool = False,
    in_place: bool = False,
) -> Path:
    """Write ``checkpoint.pt/.json``, extra checkpoints, ``curve.csv`` and ``curve.png`` into ``out_dir``.

    ``in_place``: ``out_dir`` is a distributed run's resumable folder (``marketsim.meta.distributed``): each
    file is moved into it whole, then its resumable state is removed; nothing else there is touched.
    """
    import pandas as pd

    from marketsim.learning.checkpoint import save_checkpoint
    from marketsim.outputs import output_folder
    from marketsim.tables import write_csv

    meta = {
        "strategy": strategy,
        "params": result.params,
        "family": family.name,
        "family_hash": family_hash(family),
        "family_source": str(family.source),
        "training_seconds": round(seconds, 2),
        "iterations": result.info.get("iterations"),
        "seed": seed,
        **{k: v for k, v in result.info.items() if k != "iterations"},
    }
    into = (
        _files_into(Path(out_dir)) if in_place else output_folder(out_dir, "meta-train", force, [family_record(family)])
    )
    with into as tmp:
        save_checkpoint(tmp / "checkpoint.pt", result.state, meta)
        for name, (state, extra_meta) in result.extra.items():
            save_checkpoint(tmp / f"{name}.pt", state, {**meta, **extra_meta})
        curve = pd.DataFrame(result.curve)
        write_csv(curve, tmp / "curve.csv")
        _plot_curve(curve, tmp / "curve.png", f"{strategy} on {family.name} ({seconds:,.0f} s)")
    if in_place:
        from marketsim.meta.distributed import resume

        resume.clear(Path(out_dir))
    return Path(out_dir)


@contextmanager
def _files_into(folder: Path) -> Iterator[Path]:
    """Yield a hidden temporary folder inside ``folder``; on success move each file it holds into ``folder``."""
    tmp = Path(tempfile.mkdtemp(prefix=".meta-train-outputs-", dir=folder))
    try:
        yield tmp
        for path in sorted(tmp.iterdir()):
            os.replace(path, folder / path.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _plot_curve(curve: Any, path: Path, title: str) -> None:
    """Write ``meta_curve_figure`` to ``path``."""
    from marketsim.market.plots import save

    save(meta_curve_figure(curve, title), path, dpi=100)


def meta_curve_figure(curve: Any, title: str) -> Any:
    """One panel per logged metric against the meta-iteration; "not enough data" (with the values) below 2 rows."""
    from marketsim.market.plots import not_enough_data, plt, plural

    metrics = [c for c in curve.columns if c not in ("iteration", "seconds")]
    if len(curve) < 2 or not metrics:
        fig, ax = plt.subplots(figsize=(8, 3.6), layout="constrained")
        fig.suptitle(title)
        logged = [f"{c} {_shown(curve[c].iloc[0])}" for c in metrics if len(curve)]
        where = f" (iteration {curve['iteration'].iloc[0]:,})" if len(curve) and "iteration" in curve else ""
        detail = f"{plural(len(curve), 'logged iteration')}{where}; a curve needs at least 2"
        not_enough_data(ax, "\n".join([detail, *logged]))
        return fig
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), layout="constrained", squeeze=False)
    for ax, col in zip(axes[0], metrics):
        ax.plot(curve["iteration"], curve[col], lw=1.4, marker="o" if len(curve) <= 30 else None, ms=3)
        ax.set(title=col, xlabel="iteration")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return fig


def _shown(value: Any) -> str:
    """A logged value as a reader wants it: 4 significant digits for a number, the text otherwise."""
    return f"{value:,.4g}" if isinstance(value, numbers.Real) else str(value)
