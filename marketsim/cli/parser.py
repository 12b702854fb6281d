"""The command line's grammar: every command, its flags and their defaults, and how a bad command line is told.

This module imports nothing heavy: ``marketsim --help``, ``--version`` and a mistyped flag are answered
without loading numpy, pandas, mesa or torch. Each command names the function that runs it as a
``Handler`` (module and function name), imported only when that command runs.

Conventions shared by every command: flags are never abbreviated (``--step`` is an error, not
``--steps``); help shows each default; ``--workers`` is 1 everywhere unless given (``auto``: one per CPU
core); ``--force`` replaces only a folder marketsim wrote; a usage error prints the command's usage line
and one error line, and exits with status 2.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["FAULT_KINDS", "SCHEMA_KINDS", "Handler", "build_parser", "workers"]

FORCE_HELP = "replace the output folder if it exists and marketsim wrote it (never a folder of your own)"
QUIET_HELP = "no progress bar or summary table"
#: Fault kinds ``--retry-faults`` accepts (``marketsim.tournament.matches.FAULT_KINDS``, kept equal by a test).
FAULT_KINDS = ("exception", "invalid_price", "crash", "timeout", "wall_timeout", "memory")
#: File kinds ``marketsim schema`` describes (``marketsim.config.schema.SCHEMA_KINDS``, kept equal by a test).
SCHEMA_KINDS = ("scenario", "tournament", "family", "sweep")


@dataclass(frozen=True)
class Handler:
    """The function that runs a command, named by module and attribute so it is imported only when it runs."""

    module: str
    name: str

    def resolve(self) -> Any:
        """The command function itself (importing its module)."""
        return getattr(importlib.import_module(self.module), self.name)

    def __call__(self, args: argparse.Namespace) -> int:
        """Run the command; its exit status."""
        return self.resolve()(args)


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help that shows a flag's default, except where there is none to show or the text already gives it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False, [], argparse.SUPPRESS) or "default" in text:
            return text
        return super()._get_help_string(action)


class _Version(argparse.Action):
    """``--version``: print the installed distribution's version and exit (looked up only when asked)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> NoReturn:
        from marketsim import __version__

        print(f"marketsim {__version__}")
        parser.exit()


class _Parser(argparse.ArgumentParser):
    """A parser that never abbreviates flags, shows defaults, and reports a bad command line in two lines."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", _Formatter)
        self.flags: list[str] = []  # set first: the base class adds -h through add_argument
        self.commands: dict[str, _Parser] = {}
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        """Add an argument and remember its flags (for "did you mean")."""
        action = super().add_argument(*args, **kwargs)
        self.flags.extend(action.option_strings)
        return action

    def command(self, sub: Any, name: str, handler: Handler, help: str) -> _Parser:
        """A subcommand ``name`` run by ``handler``."""
        parser = sub.add_parser(name, help=help, description=help[:1].upper() + help[1:] + ".")
        parser.set_defaults(func=handler)
        self.commands[name] = parser
        return parser

    def error(self, message: str) -> NoReturn:
        """This (sub)command's usage on one line, then the error on one line; exit status 2."""
        usage = " ".join(self.format_usage().split())
        text = " ".join(message.split())
        text = text if len(text) <= 400 else text[:397] + "..."
        sys.stderr.write(f"{usage}\n{self.prog}: error: {text} (see `{self.prog} --help`)\n")
        raise SystemExit(2)

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        """Parse ``args``; an unrecognised argument is blamed on the subcommand it was given to."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            blamed = self.commands.get(getattr(parsed, "command", None) or "", self)
            blamed.error(f"unrecognized arguments: {' '.join(extras)}{blamed.did_you_mean(extras)}")
        return parsed

    def did_you_mean(self, extras: Sequence[str]) -> str:
        """``; did you mean --steps?`` for a mistyped flag among ``extras``, else nothing."""
        for word in extras:
            if word.startswith("--"):
                close = difflib.get_close_matches(word.split("=")[0], self.flags, n=1, cutoff=0.6)
                if close:
                    return f"; did you mean {close[0]}?"
        return ""


def _whole_number(text: str, low: int, bound: str) -> int:
    """``text`` as a whole number of at least ``low``; ArgumentTypeError saying ``bound`` otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"should be a whole number, got {text[:40]!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"should be {bound}, got {value}")
    return value


def _positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (steps, sessions, tasks)."""
    return _whole_number(text, 1, "at least 1")


def _non_negative_int(text: str) -> int:
    """An argparse type: a whole number of at least 0 (seeds)."""
    return _whole_number(text, 0, "0 or more")


def workers(text: str) -> int:
    """An argparse type: a number of worker processes, at least 1, or ``auto`` for one per CPU core."""
    if text == "auto":
        return os.cpu_count() or 1
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (or auto: one per CPU core)") from None


def _add_workers(parser: argparse.ArgumentParser, what: str) -> None:
    """The shared ``--workers`` flag: default 1, ``auto`` for one per CPU core."""
    parser.add_argument("--workers", type=workers, default=1, metavar="N|auto", help=f"{what}; auto: one per CPU core")


def _add_output(parser: argparse.ArgumentParser, default: str) -> None:
    """The shared ``--out``, ``--force`` and ``--quiet`` flags."""
    parser.add_argument("--out", type=Path, metavar="DIR", help=f"output folder (default: {default})")
    parser.add_argument("--force", action="store_true", help=FORCE_HELP)
    parser.add_argument("--quiet", action="store_true", help=QUIET_HELP)


def _add_run(top: _Parser, sub: Any) -> None:
    run = top.command(sub, "run", Handler("marketsim.cli.run", "cmd_run"), "run a scenario and write a run folder")
    run.add_argument("scenario", help="scenario YAML file")
    run.add_argument("--steps", type=_positive_int, help="number of steps (default: the scenario's steps)")
    run.add_argument("--seed", type=_non_negative_int, help="random seed (default: the scenario's seed)")
    _add_output(run, "runs/<scenario name>, or runs/<scenario name>-seed<S> with --seed")
    viz = top.command(
        sub, "viz", Handler("marketsim.cli.viz", "cmd_viz"),
        "watch a scenario's market live in the browser (Mesa SolaraViz; extra 'viz')",
    )  # fmt: skip
    viz.add_argument("scenario", help="scenario YAML file")
    viz.add_argument("--port", type=_non_negative_int, default=8765, help="port to serve the page on")
    viz.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    viz.add_argument(
        "--interval", type=_non_negative_int, default=20, metavar="MS", help="milliseconds between steps while playing"
    )


def _add_learning(top: _Parser, sub: Any) -> None:
    exp = top.command(
        sub, "experiment", Handler("marketsim.cli.learning", "cmd_experiment"),
        "run many independent sessions of a tabular-learning market in lockstep and write an experiment folder",
    )  # fmt: skip
    exp.add_argument("scenario", help="scenario YAML file with q_learning / sarsa sellers and expected demand")
    exp.add_argument("--sessions", type=_positive_int, default=100, help="independent sessions (seeds seed, seed+1, …)")
    _add_workers(exp, "processes to split the sessions over (results do not depend on it)")
    exp.add_argument(
        "--max-steps", type=_positive_int, metavar="S", help="step cap per session (default: the scenario's steps)"
    )
    exp.add_argument(
        "--engine", choices=["compiled", "numpy"],
        help="compiled (numba kernel) or numpy (the vectorised reference); identical results "
        "(default: compiled when numba is installed; Boltzmann exploration always runs on numpy)",
    )  # fmt: skip
    _add_output(exp, "runs/<scenario name>-experiment")
    trn = top.command(
        sub, "train", Handler("marketsim.cli.learning", "cmd_train"),
        "train one seller's learner and write a checkpoint and learning curve",
    )  # fmt: skip
    trn.add_argument("scenario", help="scenario YAML file")
    trn.add_argument("--seller", required=True, help="name of the seller whose learner to train")
    trn.add_argument("--steps", type=_positive_int, help="training steps (default: the scenario's steps)")
    _add_workers(trn, "worker processes of a learner that trains in parallel (A3C: part of the algorithm)")
    _add_output(trn, "runs/<scenario name>-train-<seller>")


def _add_tournament(top: _Parser, sub: Any) -> None:
    tour = top.command(
        sub, "tournament", Handler("marketsim.cli.tournament", "cmd_tournament"),
        "run (or resume) a head-to-head tournament and write its results folder",
    )  # fmt: skip
    tour.add_argument("file", help="tournament YAML file")
    _add_executor(tour, "matches", "tournament")
    tour.add_argument(
        "--retry-faults", metavar="KIND", choices=[*FAULT_KINDS, "all"],
        help=f"with --resume: replay the stored matches that faulted with KIND ({', '.join(FAULT_KINDS)}, or all)",
    )  # fmt: skip
    tour.add_argument(
        "--plugin-dir", metavar="DIR", type=Path, action="append", default=[],
        help="a folder the tournament file's `plugins:` modules may be imported from (repeatable)",
    )  # fmt: skip
    tour.add_argument(
        "--match", metavar="KEY", help="key of the match whose price paths to plot (default: the top two entrants')"
    )
    tour.add_argument(
        "--exploit", action="store_true",
        help="also train a best-responder (the file's `exploit:` budget; a DQN by default) against each frozen "
        "entrant and report its exploitability (resumable with --resume)",
    )  # fmt: skip
    _add_output(tour, "runs/<tournament name>")


def _add_sweep(top: _Parser, sub: Any) -> None:
    sweep = top.command(
        sub, "sweep", Handler("marketsim.cli.sweep", "cmd_sweep"),
        "run (or resume) a sweep: one job over a design of points, with plots over the axes and an HTML report",
    )  # fmt: skip
    sweep.add_argument("file", help="sweep YAML file (base: + axes:)")
    _add_executor(sweep, "points", "sweep")
    _add_output(sweep, "runs/<sweep name>")


def _add_executor(parser: argparse.ArgumentParser, tasks: str, what: str) -> None:
    """--backend, --workers, --address and --resume: where a job's tasks run, and continuing a stopped one."""
    parser.add_argument("--backend", choices=["serial", "process", "ray"], default="process", help=f"where {tasks} run")
    _add_workers(parser, "worker processes of the process backend (results do not depend on it)")
    parser.add_argument("--address", help="Ray cluster address (ray backend; a local Ray when omitted)")
    parser.add_argument("--resume", action="store_true", help=f"continue an interrupted {what} in --out")


def _add_meta(top: _Parser, sub: Any) -> None:
    mtr = top.command(
        sub, "meta-train", Handler("marketsim.cli.meta", "cmd_meta_train"),
        "meta-train a meta-learner (rl2, reptile_dqn, meta_q, meta_ts or a plugin's) on a task family",
    )  # fmt: skip
    mtr.add_argument("family", help="task family YAML file (family: + base:)")
    mtr.add_argument(
        "--strategy", required=True, help="meta-learner to train: rl2, reptile_dqn, meta_q, meta_ts or a plugin's"
    )
    mtr.add_argument("--iterations", type=_positive_int, help="meta-iterations (default: the strategy's)")
    mtr.add_argument("--seed", type=_non_negative_int, default=0, help="training seed")
    mtr.add_argument("--device", default="auto", help="torch device: auto (CUDA when present), cpu, cuda[:N]")
    _add_executor(mtr, "the actors of a distributed run (--workers > 1)", "distributed meta-training")
    mtr.add_argument(
        "--checkpoint-every", type=_positive_int, default=50, metavar="N",
        help="updates between two saves of a distributed run's resumable state (what --resume continues from)",
    )  # fmt: skip
    _add_output(mtr, "runs/<family>-<strategy>, with -seed<S> for a seed other than 0")
    mtr.epilog = (
        "--workers N > 1: N actor processes play episodes for a learner that corrects for their slightly older "
        "weights (V-trace, IMPALA; rl2), the same result for every N > 1 and backend; --workers 1 (the default) "
        "trains in one process."
    )
    mev = top.command(
        sub, "meta-eval", Handler("marketsim.cli.meta", "cmd_meta_eval"),
        "evaluate the meta-learning baselines (and a checkpoint) on held-out tasks of a family",
    )  # fmt: skip
    mev.add_argument("family", help="task family YAML file (family: + base:)")
    mev.add_argument(
        "--checkpoint", type=Path, action="append",
        help="meta-learner checkpoint (.pt with its .json sidecar); repeat it to evaluate several side by side",
    )  # fmt: skip
    mev.add_argument(
        "--strategy",
        help="strategy of the checkpoint (default: the sidecar's 'strategy'); without --checkpoint, "
        "a registered strategy to evaluate beside the baselines with its default parameters",
    )
    mev.add_argument("--tasks", type=_positive_int, default=500, help="held-out tasks to evaluate")
    mev.add_argument(
        "--split", default="test", metavar="SPLIT",
        help="test (the meta-test tasks), ood, a slice the family names, or all: test and every slice in one table",
    )  # fmt: skip
    _add_workers(mev, "processes to spread the tasks over (results do not depend on it)")
    _add_output(mev, "runs/<family>-meta-eval-<split>, then -<checkpoint> or -<strategy> when one is evaluated")


def _add_files(top: _Parser, sub: Any) -> None:
    val = top.command(
        sub, "validate", Handler("marketsim.cli.files", "cmd_validate"),
        "check scenario, tournament and task-family files without running them",
    )  # fmt: skip
    val.add_argument("files", nargs="+", metavar="FILE", help="files to check (each one's kind is recognised)")
    schema = top.command(
        sub, "schema", Handler("marketsim.cli.files", "cmd_schema"),
        "print the JSON Schema (Draft 2020-12) of a file kind, for editors and CI",
    )  # fmt: skip
    schema.add_argument("--kind", choices=list(SCHEMA_KINDS), default="scenario", help="which file format")
    schema.add_argument("--out", metavar="FILE", help="write to this file (default: print it)")


def _add_plugins(top: _Parser, sub: Any) -> None:
    plugins = top.command(
        sub, "plugins", Handler("marketsim.cli.plugins", "cmd_plugins"),
        "list registered strategies, choice models and observers; exit 1 if a plugin has problems",
    )  # fmt: skip
    plugins.add_argument("--json", action="store_true", help="machine-readable output")
    plugins.add_argument("--check", action="store_true", help="print only problems (for CI): exit 1 if there are any")
    plugins.add_argument(
        "what", nargs="*", help="'show NAME': one strategy's (choice model's, observer's) docstring and parameters"
    )
    new = top.command(
        sub, "new-plugin", Handler("marketsim.cli.plugins", "cmd_new_plugin"),
        "write a new strategy-plugin distribution that passes its own tests",
    )  # fmt: skip
    new.add_argument("name", help="distribution name (pip install NAME); the import package is derived from it")
    new.add_argument("--dir", type=Path, default=Path("."), help="folder to create NAME/ in")
    new.add_argument("--strategy", help="the strategy's registered name (default: <package>_markup)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs); every usage error is a usage line and one error line."""
    parser = _Parser(prog="marketsim", description="Agent-based market simulator with plugin pricing strategies.")
    parser.add_argument("--version", action=_Version, help="print the installed version and exit")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in (_add_run, _add_learning, _add_tournament, _add_sweep, _add_meta, _add_files, _add_plugins):
        add(parser, sub)
    return parser
