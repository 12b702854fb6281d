"""The Python API for the main jobs: each one in a few lines, its result a typed object with ``to_pandas()``.

    import marketsim as ms

    result = ms.run("scenarios/quickstart.yaml", steps=200)
    result.to_pandas()        # one row per step: prices, units, profits, surplus
    result.sellers_frame()    # one row per seller: mean price, share, profit, Δ, Nash and monopoly prices

The jobs are ``run`` (one scenario), ``experiment`` (Calvano-style sessions of tabular learners),
``play_tournament`` (Axelrod-style: entrants to a leaderboard), ``train`` (one seller's learner) and
``meta_eval`` (adaptation to unseen markets of a task family). Each loads and validates its input exactly as
the command line does, so a bad file or value raises the same ``SourceError`` (``marketsim.ScenarioError``)
naming file:line:col and field, then calls the same library function as the command, so its result equals
the command's for the same seed. Every result's ``write(folder)`` writes the command's output folder, under
the same folder policy (``marketsim.outputs``).

A tournament is built from Python values as if it were a file: the values become the file's YAML and are
validated by the same code, so a mistake gets the same message, naming the field (``entrants[2].strategy``).
``marketsim.tournament`` is the tournament subpackage, so the job is called ``play_tournament``.

Heavy libraries are imported inside the functions: ``import marketsim`` stays light.
"""

from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from marketsim.config.scenario import Scenario
    from marketsim.config.tournament import LoadedTournament
    from marketsim.config.yamlsource import SourceError
    from marketsim.learning.experiment import ExperimentResult
    from marketsim.learning.training import TrainResult
    from marketsim.market.run import RunResult
    from marketsim.meta.evaluate import EvalResult, SplitsResult
    from marketsim.meta.tasks import Family
    from marketsim.registry import Registry
    from marketsim.tournament.executors import Executor
    from marketsim.tournament.matches import MatchResult

__all__ = ["DUOPOLY", "TournamentResult", "experiment", "meta_eval", "play_tournament", "run", "train"]

PathLike = str | os.PathLike[str]

#: The logit duopoly of Calvano et al. (2020) with expected demand, as in ``scenarios/tournament_quick.yaml``:
#: the market ``play_tournament`` seats its entrants in when given none.
DUOPOLY: Mapping[str, Any] = {
    "name": "logit_duopoly",
    "steps": 1,
    "consumers": {"size": 1, "wtp": {"distribution": "constant", "value": 0.0}, "mu": 0.25},
    "demand": {"mode": "expected"},
    "sellers": [
        {"name": "seat", "strategy": "fixed_price", "cost": 1.0, "quality": 2.0, "price_min": 1.0, "price_max": 2.5}
    ],
}

#: Which API function runs each kind of file (for the message when a file of another kind is given).
_RUNS = {
    "scenario": "marketsim.run (or experiment, train)",
    "tournament": "marketsim.play_tournament",
    "family": "marketsim.meta_eval",
}


# --- the jobs --------------------------------------------------------------------------------------------


def run(
    scenario: PathLike | Mapping[str, Any] | Scenario,
    *,
    steps: int | None = None,
    seed: int | None = None,
    registry: Registry | None = None,
    progress: Callable[[int], None] | None = None,
) -> RunResult:
    """Run a scenario to the end, as ``marketsim run`` does, and return its ``RunResult``.

    ``scenario`` is a scenario file, a mapping with a scenario file's fields (validated like a file) or a
    ``Scenario``; ``steps`` and ``seed`` replace the scenario's, as ``--steps`` and ``--seed`` do;
    ``progress(k)`` is called after each step.

    Examples:
        >>> import marketsim as ms
        >>> result = ms.run("scenarios/quickstart.yaml", steps=50)
        >>> result.to_pandas().shape[0], list(result.sellers_frame()["seller"])
        (50, ['steady', 'cutter', 'rival', 'oracle'])
    """
    from marketsim.market.run import simulate

    loaded = _with(_scenario(scenario, registry), steps=steps, seed=seed)
    return simulate(loaded, registry, progress)


def experiment(
    scenario: PathLike | Mapping[str, Any] | Scenario,
    sessions: int,
    *,
    max_steps: int | None = None,
    seed: int | None = None,
    workers: int = 1,
    registry: Registry | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ExperimentResult:
    """Run ``sessions`` independent sessions of a tabular-learning market, as ``marketsim experiment`` does.

    Session ``s`` uses seed ``seed + s`` (the scenario's seed unless given) and stops when its learners
    converge or at ``max_steps`` (the scenario's ``steps`` unless given); ``workers`` processes share the
    sessions without changing any result. ``progress(steps_done, sessions_learning)`` reports as it goes.

    Examples:
        >>> import marketsim as ms
        >>> result = ms.experiment("scenarios/calvano2020.yaml", sessions=2, max_steps=2_000)
        >>> table = result.to_pandas()
        >>> len(table), bool(table["converged"].any())
        (2, False)
    """
    from marketsim.learning.experiment import run_experiment

    _at_least_one(sessions=sessions, workers=workers, max_steps=max_steps)
    loaded = _with(_scenario(scenario, registry), seed=seed)
    return run_experiment(loaded, sessions, workers, max_steps, registry, progress)


def play_tournament(
    tournament: PathLike | Sequence[Any],
    market: PathLike | Mapping[str, Any] | Scenario | None = None,
    *,
    backend: str | Executor = "process",
    workers: int = 1,
    store: PathLike | None = None,
    plugin_dirs: Sequence[PathLike] = (),
    progress: Callable[[int, int], None] | None = None,
    **fields: Any,
) -> TournamentResult:
    """Play a tournament, as ``marketsim tournament`` does, from a tournament file or from a list of entrants.

    An entrant is a registered strategy's name (``"undercut"``), a tuple ``(name, strategy)`` or
    ``(name, strategy, params)``, or a mapping with an entrant's fields. ``market`` is a scenario file, a
    scenario mapping or a ``Scenario`` whose sellers are the seats (``DUOPOLY``, the Calvano logit duopoly,
    when None). Any other field of a tournament file is a keyword: ``repetitions=2``, ``format="vs_field"``,
    ``field=[...]``, ``phases={"train_steps": 2000, "eval_steps": 300}``, ``seed=7``; given with a file, they
    replace the file's. The result is validated exactly as a file is: a mistake raises ``SourceError``.

    Matches run in ``workers`` worker processes (``backend`` "process" or "serial", "ray", or an
    ``Executor``), each under the file's time and memory limits. ``store`` is a result-store file to keep the
    matches in and to resume from when it exists; without it they are kept in a temporary one.

    Examples:
        >>> import marketsim as ms
        >>> cup = ms.play_tournament(
        ...     ["undercut", "q_learning", ("fixed", "fixed_price", {"price": 1.8})],
        ...     repetitions=1, phases={"train_steps": 100, "eval_steps": 50},
        ... )
        >>> cup.leaderboard.columns.tolist()[:4]
        ['entrant', 'rank', 'mean_profit', 'ci_low']
        >>> sorted(cup.leaderboard["entrant"])
        ['fixed', 'q_learning', 'undercut']
    """
    from marketsim.tournament.executors import make_executor

    loaded = _tournament(tournament, market, fields, plugin_dirs)
    executor = make_executor(backend, workers) if isinstance(backend, str) else backend
    return TournamentResult(loaded, tuple(_played(loaded, executor, store, progress)))


def train(
    scenario: PathLike | Mapping[str, Any] | Scenario,
    seller: str,
    steps: int | None = None,
    workers: int = 1,
    registry: Registry | None = None,
    progress: Callable[[int], None] | None = None,
    eval_points: int = 20,
    *,
    seed: int | None = None,
) -> TrainResult:
    """Train ``seller``'s learner while the others play as usual, as ``marketsim train`` does.

    The same function as ``marketsim.learning.training.train`` (the same parameters and result), widened:
    ``scenario`` may also be a file or a mapping, and ``seed`` replaces the scenario's. ``steps`` defaults to
    the scenario's; ``workers`` > 1 trains a parallel learner (A3C) in that many processes;
    ``progress(k)`` reports the steps done; S, the oracle score, is taken ``eval_points`` times where the
    market allows one.

    Examples:
        >>> import marketsim as ms
        >>> trained = ms.train("scenarios/calvano2020.yaml", seller="firm_1", steps=500)
        >>> trained.strategy, len(trained.to_pandas())
        ('q_learning', 500)
    """
    from marketsim.learning.training import train as train_seller

    loaded = _with(_scenario(scenario, registry), seed=seed)
    return train_seller(loaded, seller, steps, workers, registry, progress, eval_points)


def meta_eval(  # noqa: PLR0913 - the options of `marketsim meta-eval`, each with its default
    family: PathLike | Family,
    tasks: int,
    *,
    split: str = "test",
    checkpoint: PathLike | Sequence[PathLike] | None = None,
    strategy: str | None = None,
    baselines: bool = True,
    workers: int = 1,
    registry: Registry | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult | SplitsResult:
    """Evaluate how fast strategies adapt to ``tasks`` unseen markets of a task family, as ``marketsim meta-eval``.

    Every agent and the clairvoyant oracle take the learner's seat in the same held-out tasks of ``split``
    ("test", "ood" or a slice the family names; "all" evaluates the test tasks and every slice and returns a
    ``SplitsResult``, one ``EvalResult`` per split). The agents are the baselines (Thompson sampling, UCB and the
    best fixed price; drop them with ``baselines=False``) and, as with the command's options, meta-learners'
    ``checkpoint`` (one path or several; each strategy read from its sidecar unless ``strategy`` names it) or a
    registered ``strategy`` with its default parameters.

    Examples:
        >>> import marketsim as ms
        >>> evaluated = ms.meta_eval("scenarios/meta_pricing.yaml", tasks=2, strategy="ucb_pricing", baselines=False)
        >>> list(evaluated.agents_frame()["agent"]), len(evaluated.to_pandas())
        (['ucb_pricing'], 2)
    """
    from marketsim.meta.evaluate import baseline_agents, evaluate, evaluate_splits, extra_agents
    from marketsim.meta.tasks import Family, load_family
    from marketsim.meta.train import eval_inputs
    from marketsim.registry import default_registry

    _at_least_one(tasks=tasks, workers=workers)
    registry = registry if registry is not None else default_registry()
    if not isinstance(family, Family):
        family = load_family(_checked_path(family, "family"), registry)
    probe = "test" if split == "all" else split
    extra = extra_agents(family, probe, registry, checkpoint=checkpoint, strategy=strategy)  # checked first: cheap
    agents = {**(baseline_agents(family, registry) if baselines else {}), **extra}
    inputs = tuple(eval_inputs(family, extra))  # what write() records, as the command does
    if split == "all":
        splits = evaluate_splits(family, agents, tasks, ["test", *family.slices()], registry, progress, workers)
        return replace(splits, inputs=inputs)
    return replace(evaluate(family, agents, tasks, split, registry, progress, workers), inputs=inputs)


# --- a played tournament -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TournamentResult:
    """A played tournament: the validated tournament and every match's result, with its tables as DataFrames."""

    tournament: LoadedTournament
    matches: tuple[MatchResult, ...]

    @property
    def name(self) -> str:
        """The tournament's name."""
        return self.tournament.spec.name

    def to_pandas(self) -> pd.DataFrame:
        """One row per match and seat (``matches.csv``), with the tournament's fault rule applied."""
        from marketsim.tournament.results import match_rows

        return match_rows(list(self.matches), self.tournament.spec.on_fault)

    @cached_property
    def leaderboard(self) -> pd.DataFrame:
        """Rank, mean evaluation profit with its bootstrap 95% CI, win rate, matches and faults per entrant."""
        from marketsim.tournament.results import leaderboard

        return leaderboard(self.to_pandas())

    def payoff_matrix(self) -> pd.DataFrame:
        """Mean profit of each row entrant against each column entrant."""
        from marketsim.tournament.results import payoff_matrix

        return payoff_matrix(self.to_pandas())

    def faults(self) -> list[Any]:
        """The faults of the matches that had one (who, what kind, at which step, the traceback's tail)."""
        return [m.fault for m in self.matches if m.fault is not None]

    def write(self, folder: PathLike, force: bool = False) -> Path:
        """Write the folder ``marketsim tournament`` writes (result store, tables, plots, report.html), atomically."""
        from marketsim.config.tournament import tournament_record
        from marketsim.outputs import output_folder
        from marketsim.tournament.report import write_outputs
        from marketsim.tournament.results import ResultStore

        with output_folder(folder, "tournament", force, [tournament_record(self.tournament)]) as tmp:
            with ResultStore(tmp / "results.sqlite") as store:
                store.set_meta("tournament", self.tournament.digest())  # the identity a --resume checks
                for match in self.matches:
                    store.add(match)
            write_outputs(list(self.matches), self.tournament, tmp)
        return Path(folder)


# --- loading, as the command line loads ------------------------------------------------------------------


def _at_least_one(**numbers: int | None) -> None:
    """Refuse a count below 1 (sessions, tasks, workers, a step cap), as the command line's options do."""
    for name, value in numbers.items():
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ValueError(f"{name} should be a whole number of at least 1, got {value!r}")


def _checked_path(source: PathLike, kind: str) -> Path:
    """``source`` as a path to an existing file of ``kind``; else SourceError: no such file, or use another job."""
    from marketsim.config.kinds import KINDS, detect_kind, missing_file
    from marketsim.config.yamlsource import Problem, SourceError

    path = Path(source)
    if not path.is_file():
        hint = missing_file(path).partition("; ")[2] if not path.exists() else ""
        what = "no such file" if not path.exists() else "not a file"
        raise SourceError([Problem(str(path), 0, 0, "", what + (f"; {hint}" if hint else ""))])
    found = detect_kind(path)
    if found is not None and found != kind:
        label = KINDS[found]
        message = f"this is a {label} file: run it with {_RUNS[found]}" if found in _RUNS else f"this is a {label} file"
        raise SourceError([Problem(str(path), 0, 0, "", message)])
    return path


def _scenario(source: PathLike | Mapping[str, Any] | Scenario, registry: Registry | None) -> Scenario:
    """A validated Scenario from a file, a mapping (validated like a file) or a Scenario (as it is)."""
    from marketsim.config.scenario import Scenario
    from marketsim.config.validate import load_scenario, parse_scenario

    if isinstance(source, Scenario):
        return source
    if isinstance(source, Mapping):
        text, name = _as_yaml(source, "scenario"), "<scenario mapping>"
        return _generated(name, lambda: parse_scenario(text, name, registry, Path.cwd()))
    return load_scenario(_checked_path(source, "scenario"), registry)


def _with(scenario: Scenario, **overrides: int | None) -> Scenario:
    """The scenario with the given top-level fields replaced (None: kept), validated like ``--steps``/``--seed``."""
    given = {k: v for k, v in overrides.items() if v is not None}
    return scenario.with_overrides(**given) if given else scenario


def _tournament(
    source: PathLike | Sequence[Any],
    market: PathLike | Mapping[str, Any] | Scenario | None,
    fields: Mapping[str, Any],
    plugin_dirs: Sequence[PathLike],
) -> LoadedTournament:
    """A validated tournament: a file as it is, or a mapping built from entrants and fields, validated as a file."""
    from marketsim.config.tournament import load_tournament, parse_tournament
    from marketsim.config.yamlsource import load_yaml, read_source

    dirs = [Path(d) for d in plugin_dirs]
    if isinstance(source, str | os.PathLike):
        path = _checked_path(source, "tournament")
        if market is None and not fields:
            return load_tournament(path, plugin_dirs=dirs)
        data, name, base = dict(load_yaml(read_source(path), str(path)).data or {}), str(path), path.parent
    else:
        data, name, base = {"name": "tournament", "market": copy.deepcopy(dict(DUOPOLY))}, "<play_tournament>", None
        data["entrants"] = list(source)
    data |= fields
    if market is not None:
        data["market"] = _market(market)
    for section in ("entrants", "field"):
        if isinstance(data.get(section), list | tuple):
            data[section] = [_entrant(item) for item in data[section]]
    text = _as_yaml(data, "tournament")
    return _generated(name, lambda: parse_tournament(text, name, None, base or Path.cwd(), dirs))


def _market(market: PathLike | Mapping[str, Any] | Scenario) -> str | Mapping[str, Any]:
    """A market given in Python as a tournament file holds it: a scenario file's absolute path, or a mapping."""
    from marketsim.config.scenario import Scenario

    if isinstance(market, Scenario):
        return market.model_dump(mode="json", by_alias=True)
    if isinstance(market, str | os.PathLike):  # relative to the working folder, not to a tournament file
        return str(Path(market).resolve())
    return market


def _entrant(item: Any) -> Any:
    """``"name"`` and ``(name, strategy[, params])`` as an entrant mapping; anything else is left to validation."""
    if isinstance(item, str):
        return {"name": item, "strategy": item}
    if isinstance(item, tuple) and len(item) in (2, 3):
        return {"name": item[0], "strategy": item[1], "params": item[2] if len(item) == 3 else {}}
    return item


def _as_yaml(data: Mapping[str, Any], what: str) -> str:
    """The YAML text of ``data`` (tuples as lists, numpy numbers as numbers, paths as text)."""
    import yaml

    try:
        return yaml.safe_dump(_plain(data), sort_keys=False, allow_unicode=True)
    except yaml.YAMLError as exc:
        message = f"the {what} holds a value that is not plain data (numbers, text, lists, mappings): {exc}"
        raise TypeError(message) from None


def _plain(value: Any) -> Any:
    """``value`` with tuples as lists, numpy numbers and arrays as Python ones, paths as text, recursively."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, os.PathLike):
        return str(value)
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):  # a numpy scalar or array
        return value.tolist()
    return value


def _generated(source: str, validate: Callable[[], Any]) -> Any:
    """``validate()`` of YAML made from Python values: its problems name fields, not lines of text never seen."""
    from marketsim.config.yamlsource import SourceError

    try:
        return validate()
    except SourceError as exc:
        raise _unlocated(exc, source) from None


def _unlocated(exc: SourceError, source: str) -> SourceError:
    """The problems of ``source`` without line and column (a market file's own problems keep theirs)."""
    from marketsim.config.yamlsource import SourceError

    problems = [replace(p, line=0, column=0) if p.source == source else p for p in exc.problems]
    return SourceError(problems)


def _played(
    tournament: LoadedTournament,
    executor: Executor,
    store: PathLike | None,
    progress: Callable[[int, int], None] | None,
) -> list[MatchResult]:
    """Every match, played into ``store`` (resumed when it holds some) or into a temporary store."""
    from marketsim.tournament.play import run_tournament

    if store is not None:
        return run_tournament(tournament, Path(store), executor, resume=True, progress=progress)
    with tempfile.TemporaryDirectory(prefix="marketsim-tournament-") as folder:
        return run_tournament(tournament, Path(folder) / "results.sqlite", executor, progress=progress)
