"""Tournament files: the format (entrants, market, format, phases, exploit budget), read and checked.

A tournament file names a market (a scenario file or an inline scenario whose sellers are the seats),
the entrants, a format and the phases of each match. Parsing validates the file against its schema and
the registry, resolves its paths and refuses any line-up that would not fit the seller limit or the
memory budget, so a tournament that validates does not fail for these while it plays.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.machinery import PathFinder
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from marketsim.config import limits
from marketsim.config.errors import pydantic_problems, source_error
from marketsim.config.plugins import plugin_registry
from marketsim.config.scenario import Scenario
from marketsim.config.spec import Spec
from marketsim.config.validate import (
    check_strategies,
    checkpoint_problems,
    file_problems,
    load_scenario,
    memory_excess,
    resolve_checkpoints,
    scenario_from_located,
)
from marketsim.config.yamlsource import Located, Problem, load_yaml, read_source
from marketsim.outputs import InputRecord
from marketsim.registry import Registry, default_registry

__all__ = [
    "DEFAULT_MEMORY_LIMIT_MB",
    "Entrant",
    "Exploit",
    "LoadedTournament",
    "Phases",
    "Tournament",
    "best_responder_problem",
    "load_tournament",
    "match_scenario",
    "parse_tournament",
    "seatings",
    "tournament_record",
    "with_checkpoint",
]

#: MiB of address space a match may add in its worker unless the file says otherwise.
DEFAULT_MEMORY_LIMIT_MB = 4096


class Entrant(Spec):
    """A competitor: a display name and a registered strategy with its parameters."""

    name: str = Field(..., min_length=1, description="Display name, unique in the tournament.")
    strategy: str = Field(..., description="Registered strategy name (see `marketsim plugins`).")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword parameters of the strategy (a relative `checkpoint` path is relative to this file).",
    )
    checkpoint: str | None = Field(
        None, description="Saved state to load (passed as the `checkpoint` parameter); relative to this file."
    )


class Phases(Spec):
    """What a match consists of: learners learn, then everyone is evaluated."""

    train_steps: int = Field(0, ge=0, description="Steps in which learners learn (not scored).")
    eval_steps: int = Field(200, gt=0, description="Scored steps.")
    learn_during_eval: bool = Field(False, description="Keep learning while being evaluated.")


class Exploit(Spec):
    """Exploitability runs (``marketsim tournament --exploit``): a best-responder trained against each entrant."""

    strategy: str = Field(
        "dqn", description="Registered learning strategy of the best-responder (the DQN seller by default)."
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Keyword parameters of the best-responder (its defaults otherwise)."
    )
    train_steps: int = Field(10_000, gt=0, description="Steps the best-responder learns against the frozen entrant.")
    eval_steps: int = Field(500, gt=0, description="Scored steps of the exploit match, with nothing learning.")
    repetitions: int = Field(
        3, ge=1, description="Exploit runs per entrant; run r uses the seed of the tournament's repetition r."
    )
    time_limit: float = Field(
        600.0, gt=0, description="CPU seconds one exploit run (self-play replay and exploit match) may use."
    )


class Tournament(Spec):
    """A tournament file."""

    name: str = Field(..., min_length=1, description="Short name of the tournament.")
    description: str = Field("", description="What it compares.")
    seed: int = Field(0, ge=0, description="Root seed; each match's seed derives from it and the match.")
    market: str | dict[str, Any] = Field(
        ...,
        description="Scenario file (a relative path is relative to this file's folder) or an inline scenario "
        "(whose relative paths are relative to this file's folder too).",
    )
    entrants: list[Entrant] = Field(..., min_length=2, description="The competitors.")
    format: Literal["round_robin", "all_play_all", "vs_field"] = Field(
        "round_robin",
        description="round_robin: every pair as a duopoly, both seatings; all_play_all: everyone in one "
        "market; vs_field: each entrant against the fixed field.",
    )
    field: list[Entrant] = Field(default_factory=list, description="The fixed rivals of a vs_field tournament.")
    self_play: bool = Field(True, description="round_robin also plays each entrant against a copy of itself.")
    repetitions: int = Field(3, ge=1, description="Times each pairing is played (each with its own seed).")
    phases: Phases = Field(default_factory=Phases, description="Training and evaluation steps of a match.")
    time_limit: float = Field(
        60.0,
        gt=0,
        description="CPU seconds a match may use in its worker before it is stopped (a `timeout` fault). CPU "
        "time, not wall time, so a busy machine gives the same results as an idle one.",
    )
    wall_limit: float | None = Field(
        None,
        gt=0,
        description="Wall-clock seconds after which a match that sleeps or blocks is killed (a `wall_timeout` "
        "fault); a backstop, by default max(3 × time_limit, time_limit + 60).",
    )
    memory_limit_mb: int | None = Field(
        DEFAULT_MEMORY_LIMIT_MB,
        gt=0,
        description="MiB of memory (address space) a match may add in its worker; above it the match is a "
        "`memory` fault of the seat that allocated. null: no cap.",
    )
    on_fault: Literal["forfeit", "void"] = Field(
        "forfeit", description="forfeit: the faulty entrant scores 0 and loses; void: the match is dropped."
    )
    plugins: list[str] = Field(
        default_factory=list,
        description="Extra plugin modules (local, uninstalled strategies), imported only from a directory allowed "
        "with `marketsim tournament --plugin-dir DIR` (never by `validate`). Installed plugins need no entry.",
    )
    exploit: Exploit = Field(
        default_factory=Exploit,
        description="Budget of the exploitability runs of `marketsim tournament --exploit`; not part of the "
        "tournament's identity, so changing it never invalidates stored matches.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Tournament:
        names = [e.name for e in self.entrants] + [f.name for f in self.field]
        odd = sorted(n for n in names if set(n) & set(",|#"))
        if odd:  # these characters separate the parts of a match key
            raise ValueError(f"entrant names may not contain ',', '|' or '#': {', '.join(map(repr, odd))}")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"entrant and field names must be unique; repeated: {', '.join(dupes)}")
        if self.format == "vs_field" and not self.field:
            raise ValueError("format vs_field needs a non-empty 'field' of rivals")
        if self.wall_limit is not None and self.wall_limit < self.time_limit:
            raise ValueError(f"wall_limit ({self.wall_limit:g} s) must be at least time_limit ({self.time_limit:g} s)")
        return self


@dataclass(frozen=True)
class LoadedTournament:
    """A validated tournament with its market resolved."""

    spec: Tournament
    market: Scenario
    source: str
    plugin_dirs: tuple[str, ...] = ()  # where the user allowed the spec's plugin modules to come from

    def digest(self) -> str:
        """Identifies the tournament (spec and market, not the exploit budget): a resume must match it."""
        spec = self.spec.model_dump(mode="json", exclude={"exploit"})
        blob = json.dumps(spec, sort_keys=True) + self.market.digest()
        return hashlib.sha256(blob.encode()).hexdigest()


def tournament_record(tournament: LoadedTournament) -> InputRecord:
    """The record of a tournament a results folder was made from: the spec with its market inline, and its digest."""
    data = tournament.spec.model_dump(mode="json", by_alias=True)
    data["market"] = tournament.market.model_dump(mode="json", by_alias=True)
    return InputRecord("tournament", data, tournament.digest())


def parse_tournament(
    text: str,
    source: str = "<string>",
    registry: Registry | None = None,
    base_dir: Path | None = None,
    plugin_dirs: Sequence[str | Path] | None = None,
) -> LoadedTournament:
    """Validate tournament YAML; errors name file:line:col like scenario errors.

    ``plugin_dirs`` None (validation) imports none of the file's ``plugins:`` and leaves the strategies they
    may provide to be checked at run time; a sequence (running) imports them from those directories only.
    """
    located = load_yaml(text, source)
    if not isinstance(located.data, dict):
        raise source_error([Problem(source, 1, 1, "", "a tournament must be a YAML mapping (key: value lines)")])
    try:
        spec = Tournament.model_validate(located.data)
    except ValidationError as exc:
        raise source_error(pydantic_problems(exc, located, Tournament)) from None
    base_dir = base_dir or Path.cwd()
    dirs = None if plugin_dirs is None else tuple(str(Path(d).resolve()) for d in plugin_dirs)
    registry = _plugin_registry(spec, located, dirs) if registry is None else registry
    market = _market(spec, located, registry, base_dir)
    spec = _resolve_checkpoints(spec, base_dir)
    problems, _ = check_strategies([with_checkpoint(e) for e in spec.entrants], "entrants", located, registry)
    problems += check_strategies([with_checkpoint(e) for e in spec.field], "field", located, registry)[0]
    if "exploit" in located.data:  # the default best-responder (dqn) needs torch: checked when --exploit asks
        problems += _exploit_problems(spec, located, registry)
    if dirs is None and spec.plugins:  # validation: strategies of the (unimported) plugins are checked at run time
        problems = [p for p in problems if not p.message.startswith("unknown strategy")]
    problems = problems or _checkpoint_problems(spec, located) or _seated_problems(spec, market, located, registry)
    if problems:
        raise source_error(problems)
    return LoadedTournament(spec, market, source, dirs or ())


def _exploit_problems(spec: Tournament, located: Located, registry: Registry) -> list[Problem]:
    """The best-responder's strategy and parameters, located under ``exploit:``; it must be a learner."""
    part = located.part("exploit")
    problems = check_strategies([spec.exploit], "", part, registry)[0]  # steps "" and 0 locate nothing: exploit.*
    if not problems and not registry.get(spec.exploit.strategy).cls.classifier.get("learns"):
        message = f"the best-responder must be a learning strategy; {spec.exploit.strategy!r} does not learn"
        problems.append(part.problem(("strategy",), message))
    return problems


def best_responder_problem(tournament: LoadedTournament) -> str | None:
    """Why ``--exploit`` cannot run with this file's best-responder (not registered, or not a learner), or None."""
    registry = plugin_registry(tuple(tournament.spec.plugins), tournament.plugin_dirs)
    name = tournament.spec.exploit.strategy
    if name not in registry:
        why = next((p.reason for p in registry.problems if name in p.reason), "no installed plugin registers it")
        return f"{tournament.source}: exploit.strategy: best-responder {name!r} is not available: {why}"
    if not registry.get(name).cls.classifier.get("learns"):
        return f"{tournament.source}: exploit.strategy: the best-responder must be a learning strategy, not {name!r}"
    return None


def _plugin_registry(spec: Tournament, located: Located, dirs: tuple[str, ...] | None) -> Registry:
    """The registry for a tournament file: installed plugins, plus ``plugins:`` found in ``dirs`` (if given)."""
    problems = []
    for i, name in enumerate(spec.plugins):
        if not all(part.isidentifier() for part in name.split(".")):
            problems.append(located.problem(("plugins", i), f"{name!r} is not a module name (package.module)"))
        elif dirs is not None and PathFinder.find_spec(name.split(".")[0], list(dirs)) is None:
            where = ", ".join(dirs) if dirs else "none allowed: pass --plugin-dir DIR"
            problems.append(
                located.problem(
                    ("plugins", i),
                    f"plugin module {name!r} not found in the allowed plugin directories ({where}); "
                    "installed plugins need no entry here",
                )
            )
    if problems:
        raise source_error(problems)
    if dirs is None or not spec.plugins:
        return default_registry()
    return plugin_registry(tuple(spec.plugins), dirs)


def with_checkpoint(entrant: Entrant) -> Entrant:
    """The entrant with its checkpoint passed as the strategy's ``checkpoint`` parameter (as matches do)."""
    if entrant.checkpoint is None:
        return entrant
    return entrant.model_copy(update={"params": {**entrant.params, "checkpoint": entrant.checkpoint}})


def _resolve_checkpoints(spec: Tournament, base_dir: Path) -> Tournament:
    """Checkpoint paths (``checkpoint:`` and a ``checkpoint`` parameter) relative to the tournament file."""

    def resolve(e: Entrant) -> Entrant:
        if e.checkpoint is None:
            return e
        return e.model_copy(update={"checkpoint": str((base_dir / e.checkpoint).resolve())})

    entrants = [resolve(e) for e in resolve_checkpoints(spec.entrants, base_dir)]
    rivals = [resolve(f) for f in resolve_checkpoints(spec.field, base_dir)]
    return spec.model_copy(update={"entrants": entrants, "field": rivals})


def _checkpoint_problems(spec: Tournament, located: Located) -> list[Problem]:
    """Entrants and rivals whose checkpoint (field or parameter) or ``path`` names no file: refused before any match."""
    problems = []
    for section in ("entrants", "field"):
        items = getattr(spec, section)
        problems += checkpoint_problems([e.checkpoint for e in items], section, located, ("checkpoint",))
        params = [e.params.get("checkpoint") for e in items]
        problems += checkpoint_problems(params, section, located, ("params", "checkpoint"))
        problems += file_problems([e.params.get("path") for e in items], section, located, ("params", "path"))
    return problems


def _seated_problems(spec: Tournament, market: Scenario, located: Located, registry: Registry) -> list[Problem]:
    """Refuse a tournament whose market, with some match's entrants seated, exceeds the seller limit or memory budget.

    Each distinct line-up is estimated with the scenario's own ``memory_excess``; a problem names the entrant
    (or rival) whose tables are the largest part, or the market when its population is. When every member
    fits filling all seats of a match, every line-up fits (a sum is at most n times its largest term), so
    a large round robin needs one estimate per member, not one per pairing.
    """
    home = {e.name: (section, i) for section in ("entrants", "field") for i, e in enumerate(getattr(spec, section))}
    lineups = seatings(spec)
    full = [(m,) * len(lineups[0]) for m in [*spec.entrants, *spec.field]] if lineups else []
    if len(lineups) > len(full) and not _seated_problems_in(spec, market, located, registry, full, home):
        return []
    return _seated_problems_in(spec, market, located, registry, lineups, home)


def _seated_problems_in(
    spec: Tournament,
    market: Scenario,
    located: Located,
    registry: Registry,
    lineups: list[tuple[Entrant, ...]],
    home: dict[str, tuple[str, int]],
) -> list[Problem]:
    """The first of ``lineups`` (seats of a match) above the seller limit or memory budget, located at ``home``."""
    seen: set[tuple[str, ...]] = set()
    for seats in lineups:
        names = tuple(e.name for e in seats)
        if tuple(sorted(names)) in seen or any(e.strategy not in registry for e in seats):
            continue
        seen.add(tuple(sorted(names)))
        if len(seats) > (most := limits.max_sellers()):
            message = f"{len(seats):,} seats in a match is more than {most:,}, the most one market may hold"
            return [located.problem(("entrants",), f"{message} (set MARKETSIM_MAX_SELLERS to allow more)")]
        found = memory_excess(match_scenario(market, seats, spec.seed, spec.phases), registry)
        if found is not None:
            where, message = found
            path = (*home[names[where[1]]], "params") if where[0] == "sellers" else ("market", *where)
            lineup = " vs ".join(names) if len(names) <= 4 else f"all {len(names)} seats"
            return [located.problem(path, f"in a match of {lineup}: {message}")]
    return []


def _market(spec: Tournament, located: Located, registry: Registry, base_dir: Path) -> Scenario:
    if isinstance(spec.market, dict):
        return scenario_from_located(located.part("market"), registry, base_dir)
    path = base_dir / spec.market
    if not path.is_file():
        raise source_error([located.problem(("market",), f"scenario file {spec.market!r} not found in {base_dir}")])
    return load_scenario(path, registry)


def load_tournament(
    path: str | Path, registry: Registry | None = None, plugin_dirs: Sequence[str | Path] | None = None
) -> LoadedTournament:
    """Read and validate a tournament file (``plugin_dirs``: see ``parse_tournament``)."""
    path = Path(path)
    return parse_tournament(read_source(path), str(path), registry, path.parent, plugin_dirs)


def seatings(spec: Tournament) -> list[tuple[Entrant, ...]]:
    """Who sits where in each match of one repetition, in schedule order."""
    entrants = spec.entrants
    if spec.format == "all_play_all":
        return [tuple(entrants)]
    if spec.format == "vs_field":
        return [(e, *spec.field) for e in entrants]
    out = []
    for i, a in enumerate(entrants):
        for b in entrants[i:]:
            if a is b:
                if spec.self_play:
                    out.append((a, b))
            else:
                out += [(a, b), (b, a)]
    return out


def match_scenario(market: Scenario, seats: tuple[Entrant, ...], seed: int, phases: Phases) -> Scenario:
    """The market with one seller per seat (seat templates from the market's sellers, last one repeated)."""
    templates = market.expanded_sellers()
    sellers, used = [], set()
    for s, entrant in enumerate(seats):
        name = entrant.name if entrant.name not in used else f"{entrant.name}#{s + 1}"
        used.add(name)
        params = dict(with_checkpoint(entrant).params)
        template = templates[min(s, len(templates) - 1)]
        sellers.append(template.model_copy(update={"name": name, "strategy": entrant.strategy, "params": params}))
    steps = phases.train_steps + phases.eval_steps
    return market.model_copy(update={"sellers": tuple(sellers), "seed": seed, "steps": steps})
