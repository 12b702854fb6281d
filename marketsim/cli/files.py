"""`marketsim validate` and `marketsim schema`: check files without running them, describe their formats."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from marketsim.cli.console import out
from marketsim.config.kinds import KindError, check_file, detect_kind
from marketsim.config.yamlsource import SourceError


def _check_file(path: str) -> tuple[str, str]:
    """(name, what it is) of a valid file of any kind; SourceError or KindError otherwise."""
    check_file(path)
    kind = detect_kind(path)
    if kind == "tournament":
        from marketsim.config.tournament import load_tournament

        loaded = load_tournament(path)
        return loaded.spec.name, f"tournament, {len(loaded.spec.entrants)} entrants, {loaded.spec.format}"
    if kind == "family":
        from marketsim.meta.tasks import load_family

        family = load_family(path)
        return family.name, f"task family, horizon {family.horizon}"
    if kind == "sweep":
        from marketsim.config.sweep import load_sweep

        sweep = load_sweep(path)
        size = f"{sweep.spec.search.trials} trials" if sweep.spec.search else f"{len(sweep.spec.points())} points"
        return sweep.spec.name, f"sweep of {sweep.job} over {sweep.base_path.name}, {size}"
    from marketsim.config.validate import load_scenario  # a scenario, or a file of no clear kind: the loader says

    scenario = load_scenario(path)
    return scenario.name, f"{len(scenario.expanded_sellers())} sellers, {scenario.steps} steps"


def cmd_validate(args: argparse.Namespace) -> int:
    """Validate scenario, tournament and task-family files; print every problem, one per line."""
    failed = 0
    for path in args.files:
        try:
            name, what = _check_file(path)
        except SourceError as exc:
            failed += 1
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            continue
        except KindError as exc:
            failed += 1
            print(exc, file=sys.stderr)
            continue
        out.print(f"[green]ok[/] {path}: {name}, {what}")
    return 2 if failed else 0


def cmd_schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema (Draft 2020-12) of one file kind: scenario, tournament or family."""
    from marketsim.config.schema import file_schema

    text = json.dumps(file_schema(args.kind), indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    else:
        print(text)
    return 0
