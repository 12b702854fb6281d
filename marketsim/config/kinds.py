"""What kind of file a path holds (scenario, tournament, task family, sweep) and which command runs it.

Every command and ``marketsim validate`` ask here before loading a file, so a file of the wrong kind gets
one line naming the right command instead of a list of unknown fields, and a missing file gets "no such
file" with the closest bundled file names. The test is cheap on purpose (the file's top-level keys, read
line by line: no YAML parsing, no pydantic), so it runs before anything heavy is imported and still
answers for a file whose YAML is broken further down.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Literal

Kind = Literal["scenario", "tournament", "family", "sweep"]

__all__ = [
    "COMMANDS",
    "KINDS",
    "Kind",
    "KindError",
    "bundled_files",
    "check_file",
    "check_kind",
    "detect_kind",
    "missing_file",
    "wrong_kind",
]

#: The kinds of YAML file marketsim reads, with the words a message uses for each.
KINDS: dict[str, str] = {
    "scenario": "scenario",
    "tournament": "tournament",
    "family": "task-family",
    "sweep": "sweep",
}

#: The commands that run each kind of file, the usual one first.
COMMANDS: dict[str, tuple[str, ...]] = {
    "scenario": ("run", "experiment", "train", "viz"),
    "tournament": ("tournament",),
    "family": ("meta-train", "meta-eval"),
    "sweep": ("sweep",),
}

_TOP_KEY = re.compile(r"^([A-Za-z_][\w-]*)\s*:", re.MULTILINE)  # a key at column 0: the document's top level
_TOURNAMENT_KEYS = frozenset({"entrants", "market"})  # never scenario fields
_SCENARIO_KEYS = frozenset({"sellers", "consumers", "demand", "network", "observers", "steps"})
_READ_LIMIT = 4 * 1024 * 1024  # the keys are near the top; a huge file is the loader's to refuse
_SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the checkout (or site-packages) above the package


class KindError(Exception):
    """A path that the command cannot run: missing, a folder, or a file of another kind (one line)."""


def _top_keys(path: Path) -> set[str]:
    """The keys at the top level of a YAML mapping file (empty when unreadable)."""
    try:
        with path.open("rb") as handle:
            text = handle.read(_READ_LIMIT).decode("utf-8", errors="replace")
    except OSError:
        return set()
    return set(_TOP_KEY.findall(text))


def detect_kind(path: str | Path) -> Kind | None:
    """The kind of the file at ``path`` from its top-level keys; None when it is none of them (or unreadable).

    ``family:`` makes a task family; ``base:`` with ``axes:`` a sweep; ``entrants:`` or ``market:`` a
    tournament; any scenario section (``sellers:``, ``consumers:``, ``steps:`` …) a scenario.
    """
    keys = _top_keys(Path(path))
    if "family" in keys:
        return "family"
    if {"base", "axes"} <= keys:
        return "sweep"
    if keys & _TOURNAMENT_KEYS:
        return "tournament"
    if keys & _SCENARIO_KEYS:
        return "scenario"
    return None


def bundled_files() -> list[Path]:
    """The YAML files under ``scenarios/`` of the working folder and of the source checkout, without repeats."""
    roots = dict.fromkeys(p.resolve() for p in (Path("scenarios"), _SOURCE_ROOT / "scenarios") if p.is_dir())
    return sorted({f for root in roots for f in root.rglob("*.yaml")})


def _shown(path: Path) -> str:
    """``path`` relative to the working folder when it lies below it, else as it is."""
    try:
        return path.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def missing_file(path: str | Path, command: str | None = None) -> str:
    """``no such file: PATH``, with the bundled files whose names are closest, else those ``command`` runs."""
    files = bundled_files()
    names = [f.stem for f in files]  # stems: a shared ".yaml" would make every name look close
    close = difflib.get_close_matches(Path(path).stem, names, n=3, cutoff=0.6)
    if close:
        shown = ", ".join(_shown(files[names.index(name)]) for name in close)
        return f"no such file: {path}; closest bundled files: {shown}"
    runnable = [f for f in files if command is not None and command in COMMANDS.get(detect_kind(f) or "", ())]
    if runnable:
        return f"no such file: {path}; bundled files it runs: " + ", ".join(_shown(f) for f in runnable[:4])
    return f"no such file: {path}"


def wrong_kind(path: str | Path, kind: str) -> str:
    """The one line for a file of ``kind`` given to a command that runs another kind."""
    label = KINDS[kind]
    commands = COMMANDS[kind]
    if not commands:
        return f"{path} is a {label} file, and this version of marketsim has no command that runs {label}s"
    others = f" (or {', '.join(f'`marketsim {c}`' for c in commands[1:])})" if len(commands) > 1 else ""
    return f"{path} is a {label} file: run it with `marketsim {commands[0]}`{others}"


def check_file(path: str | Path, command: str | None = None) -> None:
    """Raise KindError unless ``path`` is an existing file (not a folder); ``command`` picks files to suggest."""
    where = Path(path)
    if not where.exists():
        raise KindError(missing_file(path, command))
    if where.is_dir():
        raise KindError(f"{path} is a folder, not a file")


def check_kind(path: str | Path, command: str) -> None:
    """Raise KindError unless ``path`` is a file that ``marketsim COMMAND`` can run.

    A file whose kind cannot be told passes: the command's own loader then reports what is wrong in it,
    located to the line.
    """
    check_file(path, command)
    kind = detect_kind(path)
    if kind is not None and command not in COMMANDS[kind]:
        raise KindError(wrong_kind(path, kind))
