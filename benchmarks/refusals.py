"""What a refusal costs: wall time and peak memory of `marketsim` refusing each malformed file of the test suite.

Every scenario, tournament and family case of ``tests/test_malformed.py`` is written to a file and handed to
``python -m marketsim validate`` in a fresh process, as a user would; the process's wall time and peak
resident memory (``wait4``) are recorded. The target: each refusal in under 2 s and 500 MB.
The baseline measured side by side is ``python -m marketsim --help``: the cost of starting the program at all.

    python benchmarks/refusals.py [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))

import test_malformed as cases  # noqa: E402  (a tests/ module: the cases are the test suite's)
from rich.console import Console  # noqa: E402
from rich.progress import track  # noqa: E402
from rich.table import Table  # noqa: E402


def measure(argv: list[str], cwd: Path) -> tuple[float, float, int]:
    """(wall seconds, peak resident MiB, exit status) of ``python -m marketsim ARGV`` in a fresh process."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "marketsim", *argv], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, usage.ru_maxrss / 1024, proc.returncode


def files() -> list[tuple[str, str]]:
    """(case id, file text) for every malformed scenario, tournament and family file of the test suite."""
    kinds = (("scenario", cases.SCENARIO_CASES), ("tournament", cases.TOURNAMENT_CASES), ("family", cases.FAMILY_CASES))
    return [(f"{kind}/{case[0]}", case[1]) for kind, listed in kinds for case in listed]


def main() -> None:
    """Measure every refusal and the start-up baseline; print the distribution and the worst cases."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="runs of each case (the worst is kept)")
    args = parser.parse_args()
    console = Console()
    rows: list[tuple[str, float, float, int]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "cases").mkdir()
        baseline = [measure(["--help"], work)[:2] for _ in range(max(3, args.repeats))]
        for name, text in track(files(), description="refusing malformed files", console=console):
            path = work / "cases" / "bad.yaml"
            path.write_text(text, encoding="utf-8")
            runs = [measure(["validate", "cases/bad.yaml"], work) for _ in range(args.repeats)]
            rows.append((name, max(r[0] for r in runs), max(r[1] for r in runs), runs[-1][2]))
            assert not any(p.name != "cases" for p in work.iterdir()), f"{name} wrote something"
    seconds = [r[1] for r in rows]
    memory = [r[2] for r in rows]
    start_s, start_mb = statistics.median(b[0] for b in baseline), statistics.median(b[1] for b in baseline)
    table = Table(title=f"{len(rows)} malformed files refused by `marketsim validate` (load {os.getloadavg()[0]:.1f})")
    for col in ("measure", "median", "max", "start-up (--help)", "max / start-up"):
        table.add_column(col, justify="left" if col == "measure" else "right")
    measures = (("wall seconds", seconds, start_s, 2), ("peak memory MiB", memory, start_mb, 0))
    for label, values, start, digits in measures:
        cells = (statistics.median(values), max(values), start)
        table.add_row(label, *(f"{v:.{digits}f}" for v in cells), f"{max(values) / start:.2f}×")
    console.print(table)
    within = sum(1 for _, s, m, _ in rows if s < 2.0 and m < 500)
    console.print(f"within 2 s and 500 MB: {within} of {len(rows)}; exit status 2: {sum(r[3] == 2 for r in rows)}")
    for name, s, m, code in sorted(rows, key=lambda r: -r[1])[:5]:
        console.print(f"  slowest: {name}: {s:.2f} s, {m:.0f} MiB, exit {code}")


if __name__ == "__main__":
    main()
