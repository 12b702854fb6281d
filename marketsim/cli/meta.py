"""`marketsim meta-train` and `marketsim meta-eval`: check, run, write, summarise."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from marketsim.cli.console import counting_progress, fmt, out, warn_plugin_problems
from marketsim.config.family import Family
from marketsim.config.kinds import KindError, check_kind
from marketsim.config.yamlsource import SourceError
from marketsim.market.model import StrategyError
from marketsim.meta.evaluate import (
    AgentSpec,
    EvalResult,
    MetaEvalError,
    SplitsResult,
    baseline_agents,
    evaluate_splits,
    extra_agents,
    write_eval,
)
from marketsim.meta.loop import MetaTrained
from marketsim.meta.tasks import load_family
from marketsim.meta.train import MetaTrainError, eval_inputs, meta_learners, meta_train, write_meta_train
from marketsim.outputs import OutputError, check_output_folder, default_folder
from marketsim.registry import Registry, default_registry


def _check_meta_train(args: argparse.Namespace, registry: Registry) -> Family:
    """The family of a meta-train command after checking every option; MetaTrainError/SourceError otherwise."""
    if args.iterations is not None and args.iterations < 1:
        raise MetaTrainError(f"--iterations must be >= 1, got {args.iterations}")
    if args.seed < 0:
        raise MetaTrainError(f"--seed must be >= 0, got {args.seed}")
    if args.workers < 1 or args.checkpoint_every < 1:
        raise MetaTrainError("--workers and --checkpoint-every must be >= 1")
    alone = [flag for flag, given in (("--backend", args.backend != "process"), ("--address", args.address),
                                      ("--resume", args.resume)) if given]  # fmt: skip
    if args.workers == 1 and alone:
        verb = "needs" if len(alone) == 1 else "need"
        raise MetaTrainError(f"{' and '.join(alone)} {verb} a distributed run: pass --workers N with N > 1")
    if args.address is not None and args.backend != "ray":
        raise MetaTrainError("--address is a Ray cluster's: pass it with --backend ray")
    check_kind(args.family, "meta-train")
    family = load_family(args.family, registry)
    learners = meta_learners(registry)
    if args.strategy not in learners:
        names = ", ".join(learners) or "none installed"
        raise MetaTrainError(f"strategy {args.strategy!r} cannot be meta-trained; meta-learners: {names}")
    if args.device not in ("auto", "cpu") and not args.device.startswith("cuda"):
        raise MetaTrainError(f"--device must be auto, cpu or cuda[:N], got {args.device!r}")
    return family


def _print_meta_train(
    args: argparse.Namespace, family: Family, result: MetaTrained, seconds: float, folder: Path
) -> None:
    its = result.info.get("iterations")
    device = result.info.get("device", "cpu")
    actors = result.info.get("actors")
    where = f"{device}; {actors} actors on {result.info.get('backend')}" if actors else device
    out.print(f"meta-trained [bold]{args.strategy}[/] on {family.name}: {its} iterations in {seconds:,.1f} s ({where})")
    last = result.curve[-1] if result.curve else {}
    for key, value in last.items():
        if key not in ("iteration", "seconds"):  # seconds measure the machine, not the learner
            out.print(f"  final {key}: {value:,.4g}")
    for name in result.extra:
        out.print(f"  also wrote {name}.pt")
    checkpoint = folder / "checkpoint.pt"
    out.print(
        f"checkpoint: [bold]{checkpoint}[/]  (evaluate: marketsim meta-eval {args.family} --checkpoint {checkpoint})"
    )


def cmd_meta_train(args: argparse.Namespace) -> int:
    """Meta-train, write the folder, print a summary; bad input is one line on stderr and exit 2.

    ``--workers N`` (N > 1) runs N actor processes for a learner with an off-policy correction
    (``marketsim.meta.distributed``): its folder fills in place with a resumable state that ``--resume``
    continues; an actor that dies stops the run with exit 1 and the state kept.
    """
    from marketsim.meta.distributed import Checkpointing, Distributed
    from marketsim.meta.train import family_record

    spread = {"workers": 1, "backend": "process", "address": None, "resume": False, "checkpoint_every": 50}
    args = argparse.Namespace(**{**spread, **vars(args)})  # a namespace built by hand may leave them out
    registry = default_registry()
    try:
        family = _check_meta_train(args, registry)
        out_dir = _meta_train_folder(args, family)
    except SourceError as exc:
        print(f"error: {exc.problems[0] if exc.problems else exc}", file=sys.stderr)
        return 2
    except (MetaTrainError, OutputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KindError as exc:
        print(exc, file=sys.stderr)
        return 2
    distributed = None
    if args.workers > 1:
        kept = Checkpointing(folder=out_dir, every=args.checkpoint_every, resume=args.resume, force=args.force,
                             inputs=(family_record(family),))  # fmt: skip
        distributed = Distributed(workers=args.workers, backend=args.backend, address=args.address, checkpoints=kept)
    trained = _meta_train_run(args, family, registry, distributed, out_dir)
    if isinstance(trained, int):
        return trained
    result, seconds = trained
    folder = write_meta_train(
        result, family, args.strategy, seconds, out_dir, args.seed, args.force, in_place=distributed is not None
    )
    if not args.quiet:
        _print_meta_train(args, family, result, seconds, folder)
    return 0


def _meta_train_folder(args: argparse.Namespace, family: Family) -> Path:
    """The run's output folder, checked: one holding a stopped distributed run continues only with --resume."""
    from marketsim.meta.distributed.resume import STATE

    seed = f"-seed{args.seed}" if args.seed else ""
    out_dir = Path(args.out or default_folder(family.name, f"-{args.strategy}{seed}"))
    if not args.resume and (out_dir / STATE).is_file() and not args.force:
        raise OutputError(f"{out_dir}: holds a stopped meta-training run; pass --resume to continue it, or --force")
    if not args.resume:
        check_output_folder(out_dir, args.force)
    return out_dir


def _meta_train_run(
    args: argparse.Namespace, family: Family, registry: Registry, distributed: Any, out_dir: Path
) -> tuple[MetaTrained, float] | int:
    """(result, seconds) of the run with a progress bar, or the exit code of a run that stopped."""
    from marketsim.meta.distributed import ActorError
    from marketsim.tournament.executors import ExecutorUnavailable

    with counting_progress(f"meta-train {args.strategy} on {family.name}", "iterations", args.quiet) as bar:
        task = bar.add_task("meta-train", total=None)

        def progress(done: int, total: int, metrics: Mapping[str, float]) -> None:
            bar.update(task, completed=done, total=total)

        try:
            return meta_train(
                family, args.strategy, args.iterations, args.seed, registry,
                progress=None if args.quiet else progress, device=args.device, distributed=distributed,
            )  # fmt: skip
        except (MetaTrainError, ExecutorUnavailable) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except ActorError as exc:
            print(f"error: {exc}; {_resume_hint(out_dir)}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            if distributed is None:
                raise
            print(f"interrupted; {_resume_hint(out_dir)}", file=sys.stderr)
            return 130


def _resume_hint(out_dir: Path) -> str:
    """What to do after a distributed run stopped: resume its saved state, or (none saved yet) start again."""
    from marketsim.meta.distributed import resume

    if (out_dir / resume.STATE).is_file():
        return f"continue from the last checkpoint in {out_dir} with --resume"
    return "it stopped before its actors started and wrote nothing; run it again"


def _extra_agents(args: argparse.Namespace, family: Family, registry: Registry) -> dict[str, AgentSpec]:
    """The checkpointed (or named) strategy to evaluate beside the baselines, built once to surface errors."""
    split = "test" if args.split == "all" else args.split
    return extra_agents(family, split, registry, checkpoint=args.checkpoint, strategy=args.strategy)


def _check_meta_eval(args: argparse.Namespace, registry: Registry) -> tuple[Family, Path, dict[str, AgentSpec]]:
    """(family, output folder, extra agents) of a meta-eval command after checking every option."""
    if args.tasks < 1:
        raise MetaEvalError(f"--tasks must be >= 1, got {args.tasks}")
    if args.workers < 1:
        raise MetaEvalError(f"--workers must be >= 1, got {args.workers}")
    check_kind(args.family, "meta-eval")
    family = load_family(args.family, registry)
    out_dir = check_output_folder(args.out or default_folder(family.name, _eval_suffix(args)), args.force)
    if args.split == "ood" and family.spec.ood is None:
        raise MetaEvalError(f"family {family.name!r} declares no ood slice")
    if args.split not in (*family.splits, "all"):
        splits = ", ".join((*family.splits, "all"))
        raise MetaEvalError(f"family {family.name!r} has no split {args.split!r}; --split takes {splits}")
    return family, out_dir, _extra_agents(args, family, registry)


def eval_splits(args: argparse.Namespace, family: Family) -> list[str]:
    """The splits a meta-eval runs: the one asked for, or with ``all`` the test tasks and every slice."""
    return ["test", *family.slices()] if args.split == "all" else [args.split]


def _eval_suffix(args: argparse.Namespace) -> str:
    """What tells one meta-eval folder from another: the split, then the checkpoint (or strategy) evaluated."""
    suffix = f"-meta-eval-{args.split}"
    if args.checkpoint:  # the first checkpoint names the folder
        path = Path(args.checkpoint[0] if isinstance(args.checkpoint, list) else args.checkpoint)
        folder = path.resolve().parent.name
        return f"{suffix}-{folder}" if path.stem == "checkpoint" and folder else f"{suffix}-{path.stem}"
    return f"{suffix}-{args.strategy}" if args.strategy else suffix


def _eval_table(family: Family, split: str, result: EvalResult, summary: Mapping[str, Any]) -> Table:
    table = Table(
        title=f"{family.name}: {summary['tasks']} {split} tasks, H = {summary['horizon']} "
        f"({result.seconds:,.0f} s on {result.workers} workers)"
    )
    for col in ("agent", "regret_10", "regret_25", "regret_H", "95% CI of regret_H", "last-10 oracle share"):
        table.add_column(col, justify="left" if col == "agent" else "right")
    for name, row in sorted(summary["agents"].items(), key=lambda kv: kv[1]["regret_H"]):
        low, high = row["regret_H_ci"]
        table.add_row(
            name, fmt(row["regret_10"], 1), fmt(row["regret_25"], 1), fmt(row["regret_H"], 1),
            f"{fmt(low, 1)} – {fmt(high, 1)}", f"{row['last10_oracle_share']:.3f}",
        )  # fmt: skip
    return table


def _splits_table(family: Family, result: SplitsResult) -> Table:
    """Rows: agents (lowest mean R(H) over the splits first); a column per split: R(25) / R(H)."""
    first = next(iter(result.results.values()))
    table = Table(
        title=f"{family.name}: {len(first.tasks)} tasks per split, H = {first.horizon}, R(25) / R(H) "
        f"({result.summary()['seconds']:,.0f} s)"
    )
    table.add_column("agent")
    for split in result.results:
        table.add_column(split, justify="right")
    summaries = {split: r.summary()["agents"] for split, r in result.results.items()}
    agents = sorted(first.agents, key=lambda a: np.mean([s[a]["regret_H"] for s in summaries.values()]))
    for agent in agents:
        cells = [f"{fmt(s[agent]['regret_25'], 0)} / {fmt(s[agent]['regret_H'], 0)}" for s in summaries.values()]
        table.add_row(agent, *cells)
    return table


def _print_meta_eval(args: argparse.Namespace, family: Family, result: EvalResult) -> None:
    summary = result.summary()
    out.print(_eval_table(family, args.split, result, summary))
    share = summary["fixed_price_share"]
    if share is not None:
        out.print(
            f"best fixed price {summary.get('best_fixed_price', float('nan')):.3f} earns {share:.1%} of the "
            f"clairvoyant's profit (oracle: {summary['oracle']['mean_profit']:,.2f} per step)"
        )


def cmd_meta_eval(args: argparse.Namespace) -> int:
    """Evaluate every baseline (and a checkpointed meta-learner) on held-out tasks; write the folder."""
    registry = default_registry()
    try:
        family, out_dir, extra = _check_meta_eval(args, registry)
    except SourceError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    except (MetaEvalError, StrategyError, OutputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KindError as exc:
        print(exc, file=sys.stderr)
        return 2
    except Exception as exc:  # a strategy refusing its checkpoint: one line, not a traceback
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    warn_plugin_problems(registry)
    agents = {**baseline_agents(family, registry), **extra}
    splits = eval_splits(args, family)
    with counting_progress(f"meta-eval {family.name} ({args.split})", "tasks", args.quiet) as bar:
        task = bar.add_task("tasks", total=args.tasks * len(splits))
        try:
            result = evaluate_splits(
                family, agents, args.tasks, splits, registry, workers=args.workers,
                progress=lambda done, total: bar.update(task, completed=done),
            )  # fmt: skip
        except (MetaEvalError, StrategyError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    inputs = eval_inputs(family, extra)
    if args.split != "all":
        one = result.results[args.split]
        folder = write_eval(one, out_dir, args.force, inputs)
        if not args.quiet:
            _print_meta_eval(args, family, one)
        out.print(f"meta-eval folder: [bold]{folder}[/] (summary.json, curves.csv, tasks.csv, regret.png)")
        return 0
    folder = replace(result, inputs=tuple(inputs)).write(out_dir, args.force)
    if not args.quiet:
        out.print(_splits_table(family, result))
    out.print(f"meta-eval folder: [bold]{folder}[/] (summary.json, splits.csv, curves.csv, tasks.csv, regret.png)")
    return 0
