"""Golden outputs: what the main jobs write today, kept in tests/golden/ so a refactor provably changes nothing.

Each case runs one CLI command into a fresh folder and keeps some of the files it wrote. The test
(`tests/test_golden.py`) reruns every case and compares; `python3 tests/golden_cases.py [CASE...]`
rewrites the stored files, which is only right when a change of output is intended and explained.

Files are compared byte for byte first; when the bytes differ, numbers may differ by 1e-12 (relative)
where a float summation order had to change, and every other value must be equal. Fields that measure
the machine rather than the market (wall time, worker count) are left out of the comparison.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "golden"
SCENARIOS = ROOT / "scenarios"
VOLATILE = frozenset({"seconds", "workers", "steps_per_second", "elapsed", "wall_seconds", "cpu_seconds"})
# relative: the Nash and monopoly solvers land within ~1e-12 of each other on different CPUs (SIMD libm)
TOLERANCE = 1e-9


@dataclass(frozen=True)
class Case:
    """One command whose listed output files are golden."""

    name: str
    argv: tuple[str, ...]  # after `marketsim`; the output folder is appended as --out
    files: tuple[str, ...]
    slow: bool = False
    needs_torch: bool = False


def _run_case(scenario: str, steps: int, torch: bool = False) -> Case:
    return Case(
        f"run-{scenario}",
        ("run", str(SCENARIOS / f"{scenario}.yaml"), "--steps", str(steps), "--quiet"),
        ("steps.csv",),
        needs_torch=torch,
    )


CASES: tuple[Case, ...] = (
    *(
        _run_case(s, 60)
        for s in (
            "quickstart",
            "calvano2020",
            "calvano2020_three_firms",
            "calvano2020_agents",
            "oligopoly",
            "social_network",
        )
    ),
    _run_case("deep_duopoly", 60, torch=True),
    Case(
        "experiment-calvano2020",
        ("experiment", str(SCENARIOS / "calvano2020.yaml"), "--sessions", "20", "--workers", "1", "--quiet"),
        ("summary.json", "sessions.csv"),
        slow=True,
    ),
    Case(
        "tournament-quick",
        ("tournament", str(SCENARIOS / "tournament_quick.yaml"), "--workers", "2", "--quiet"),
        ("matches.csv", "leaderboard.csv"),
        slow=True,
        needs_torch=False,
    ),
    Case(
        "meta-eval-rl2",
        (
            "meta-eval",
            str(SCENARIOS / "meta_pricing.yaml"),
            "--checkpoint",
            str(ROOT / "tests" / "data" / "rl2_meta_pricing.pt"),
            "--tasks",
            "50",
            "--workers",
            "1",
            "--quiet",
        ),
        ("summary.json",),
        slow=True,
        needs_torch=True,
    ),
    Case(
        "train-dqn",
        ("train", str(SCENARIOS / "deep_duopoly.yaml"), "--seller", "learner", "--steps", "2000", "--quiet"),
        ("curve.csv",),
        slow=True,
        needs_torch=True,
    ),
)


def produce(case: Case, out: Path) -> Path:
    """Run ``case`` into the new folder ``out`` (in this process) and return it."""
    from marketsim.cli.app import main

    status = main([*case.argv, "--out", str(out)])
    if status != 0:
        raise RuntimeError(f"golden case {case.name}: marketsim exited with {status}")
    return out


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _same_cell(a: str, b: str) -> bool:
    if a == b:
        return True
    x, y = _number(a), _number(b)
    return x is not None and y is not None and math.isclose(x, y, rel_tol=TOLERANCE, abs_tol=TOLERANCE)


def csv_difference(expected: str, actual: str) -> str | None:
    """The first cell where two CSV texts differ beyond the tolerance, or None."""
    rows_a = list(csv.reader(io.StringIO(expected)))
    rows_b = list(csv.reader(io.StringIO(actual)))
    if len(rows_a) != len(rows_b):
        return f"{len(rows_b)} rows instead of {len(rows_a)}"
    header = rows_a[0] if rows_a else []
    for r, (ra, rb) in enumerate(zip(rows_a, rows_b)):
        if len(ra) != len(rb):
            return f"row {r}: {len(rb)} cells instead of {len(ra)}"
        for c, (a, b) in enumerate(zip(ra, rb)):
            column = header[c] if c < len(header) else str(c)
            if column not in VOLATILE and not _same_cell(a, b):
                return f"row {r}, column {column}: {b!r} instead of {a!r}"
    return None


def json_difference(expected: object, actual: object, where: str = "") -> str | None:
    """The first place where two JSON values differ beyond the tolerance (volatile keys skipped), or None."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        keys = (set(expected) | set(actual)) - VOLATILE
        for key in sorted(keys):
            if key not in expected or key not in actual:
                return f"{where}.{key}: present in only one of them"
            found = json_difference(expected[key], actual[key], f"{where}.{key}")
            if found:
                return found
        return None
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return f"{where}: {len(actual)} items instead of {len(expected)}"
        for i, (a, b) in enumerate(zip(expected, actual)):
            found = json_difference(a, b, f"{where}[{i}]")
            if found:
                return found
        return None
    numbers = all(isinstance(v, float | int) and not isinstance(v, bool) for v in (expected, actual))
    if numbers:
        same = math.isclose(expected, actual, rel_tol=TOLERANCE, abs_tol=TOLERANCE)
    else:
        same = type(expected) is type(actual) and expected == actual
    return None if same else f"{where}: {actual!r} instead of {expected!r}"


def difference(name: str, expected: str, actual: str) -> str | None:
    """None when ``actual`` matches the golden ``expected`` text of file ``name``; else the first difference."""
    if expected == actual:
        return None
    if name.endswith(".json"):
        return json_difference(json.loads(expected), json.loads(actual))
    return csv_difference(expected, actual)


def regenerate(names: list[str]) -> None:
    """Rewrite the golden files of the named cases (all when none are named)."""
    import tempfile

    chosen = [c for c in CASES if not names or c.name in names]
    for case in chosen:
        with tempfile.TemporaryDirectory() as tmp:
            folder = produce(case, Path(tmp) / "out")
            target = GOLDEN / case.name
            target.mkdir(parents=True, exist_ok=True)
            for file in case.files:
                shutil.copyfile(folder / file, target / file)
        print(f"wrote {target.relative_to(ROOT)}: {', '.join(case.files)}")


if __name__ == "__main__":
    regenerate(sys.argv[1:])
