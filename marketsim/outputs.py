"""Output folders that never lose a user's files.

Every folder marketsim writes (a run, an experiment, a training, a meta-train or meta-eval, a tournament)
follows one policy:

- it is written to a hidden temporary sibling and moved into place with ``os.replace``, so a failed or
  killed run leaves no half-written folder where the user looks;
- it carries a marker file (``.marketsim-output``), so the program can tell its own folders from the user's;
- an existing non-empty folder is refused; ``--force`` replaces it only when it carries the marker, and
  never the working folder, one of its ancestors, the home folder or the file-system root;
- names taken from files (a scenario's ``name:``) are reduced to one safe path component, so a file can
  never choose where outside ``runs/`` the program writes;
- temporaries left behind by a killed run (marked, with a dead writer) are removed by the next run
  that writes beside them. Nothing without the marker is ever deleted;
- every folder holds what it was made from: for each input (the scenario, tournament or task family,
  a checkpoint) ``<name>.yaml`` with its resolved content and ``<name>.sha256`` with the hash that
  identifies it (a configuration's canonical JSON, a checkpoint's bytes);
- folders and files get the permissions a plain ``mkdir`` and ``open`` give under the user's umask
  (0755 and 0644 under the usual umask 022), whichever command wrote them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MARKER = ".marketsim-output"
_TEMP = ".marketsim-tmp-"  # infix of a folder being written
_OLD = ".marketsim-old-"  # infix of a replaced folder waiting to be removed
_UNMARKED_GRACE = 60.0  # seconds an empty unmarked temporary may be another run just starting
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")

__all__ = [
    "MARKER",
    "InputRecord",
    "OutputError",
    "check_output_folder",
    "checkpoint_record",
    "clean_stale",
    "default_folder",
    "file_sha256",
    "open_resumable_folder",
    "output_folder",
    "safe_name",
    "scenario_record",
    "write_inputs",
]


class OutputError(Exception):
    """An output folder that cannot be used as asked; the message says why and what to do instead."""


@dataclass(frozen=True)
class InputRecord:
    """One input an output folder was made from: written as ``<name>.yaml`` (``data``) and ``<name>.sha256``."""

    name: str  # "scenario", "tournament", "family", "checkpoint"
    data: Mapping[str, Any]  # the resolved input, plain YAML-able data
    digest: str  # the sha256 that identifies it


def scenario_record(scenario: Any) -> InputRecord:
    """The record of a resolved scenario: every field with its default filled in, and ``Scenario.digest()``."""
    return InputRecord("scenario", scenario.model_dump(mode="json", by_alias=True), scenario.digest())


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes (a checkpoint an evaluation used)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_record(path: str | Path, strategy: str) -> InputRecord:
    """The record of a checkpoint an evaluation used: where it was, its strategy, its sidecar, its bytes' sha256."""
    pt = Path(path)
    sidecar = pt.with_suffix(".json")
    try:
        meta = json.loads(sidecar.read_text()) if sidecar.is_file() else None
    except (OSError, ValueError):
        meta = None
    data = {"path": str(pt.resolve()), "strategy": strategy, "sidecar": meta}
    return InputRecord("checkpoint", data, file_sha256(pt))


def write_inputs(folder: Path, inputs: Iterable[InputRecord]) -> None:
    """Write each input's resolved YAML and its sha256 into ``folder``."""
    import yaml

    for record in inputs:
        (folder / f"{record.name}.yaml").write_text(yaml.safe_dump(dict(record.data), sort_keys=False))
        (folder / f"{record.name}.sha256").write_text(record.digest + "\n")


def safe_name(name: str, fallback: str = "run") -> str:
    """``name`` as one harmless path component: separators and odd characters become ``_``, no leading dots."""
    cleaned = _UNSAFE.sub("_", name).strip("._") or fallback
    return cleaned[:100]


def default_folder(name: str, suffix: str = "") -> Path:
    """The default output folder ``runs/<name><suffix>`` for a name that came from a file."""
    return Path("runs") / safe_name(f"{name}{suffix}")


def is_marked(folder: Path) -> bool:
    """Whether ``folder`` was written by marketsim (it holds the marker file)."""
    return (folder / MARKER).is_file()


def write_marker(folder: Path, kind: str) -> None:
    """Mark ``folder`` as marketsim's own: the kind of output, the writer's pid and when it was made."""
    info = {"kind": kind, "pid": os.getpid(), "created": datetime.now(UTC).isoformat(timespec="seconds")}
    (folder / MARKER).write_text(json.dumps(info) + "\n")


def _protected(folder: Path) -> bool:
    """The working folder, its ancestors, the home folder and the root are never replaced."""
    target = folder.resolve()
    cwd = Path.cwd().resolve()
    return target == cwd or target in cwd.parents or target == Path.home().resolve() or target.parent == target


def _first_existing(path: Path) -> Path:
    """The nearest ancestor of ``path`` (or ``path`` itself) that exists."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def check_output_folder(folder: str | Path, force: bool = False) -> Path:
    """Raise OutputError unless ``folder`` may be written (or, with ``force``, replaced); return it.

    Called before any work starts, so that a refusal costs the user nothing.
    """
    out = Path(folder)
    if _protected(out):
        raise OutputError(f"{out}: refusing to write output into the current folder or one above it; pick a new --out")
    existing = _first_existing(out)
    if existing != out and not existing.is_dir():
        raise OutputError(f"{out}: cannot create a folder there, {existing} is a file")
    if existing == out:
        if not out.is_dir():
            raise OutputError(f"{out}: exists and is not a folder; pick another --out")
        if any(out.iterdir()):
            if not force:
                raise OutputError(
                    f"{out}: folder exists and is not empty; pick another --out, "
                    "or pass --force to replace an output folder marketsim wrote"
                )
            if not is_marked(out):
                raise OutputError(
                    f"{out}: --force replaces only folders marketsim wrote (with a {MARKER} file), "
                    "and this one has none; nothing was changed"
                )
    writable_parent = _first_existing(out.parent)
    if not os.access(writable_parent, os.W_OK | os.X_OK):
        raise OutputError(f"{out}: cannot write there ({writable_parent} is not writable)")
    return out


def _writer_alive(folder: Path) -> bool:
    """Whether the process that marked ``folder`` still runs (a temporary being written right now)."""
    try:
        pid = int(json.loads((folder / MARKER).read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def clean_stale(parent: Path) -> list[Path]:
    """Remove marked temporaries and replaced folders in ``parent`` whose writer is gone; return them."""
    removed = []
    if not parent.is_dir():
        return removed
    for entry in parent.iterdir():
        name = entry.name
        ours = name.startswith(".") and (_TEMP in name or _OLD in name)
        if not ours or not entry.is_dir() or entry.is_symlink():
            continue
        empty = not any(entry.iterdir())  # killed between creating and marking it, or being marked right now
        if empty and time.time() - entry.stat().st_mtime > _UNMARKED_GRACE:
            entry.rmdir()
            removed.append(entry)
        elif is_marked(entry) and not _writer_alive(entry):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _regular_permissions(folder: Path) -> None:
    """Give a ``mkdtemp`` folder (0700) the permissions a plain ``mkdir`` would under the user's umask."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod((stat.S_IRWXU | stat.S_IRWXG | stat.S_IRWXO) & ~umask)


def new_temporary(out: Path, kind: str) -> Path:
    """A marked, empty, hidden sibling of ``out`` to fill before it is moved into place."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}{_TEMP}", dir=out.parent))
    except OSError as exc:
        raise OutputError(f"{out}: cannot write there ({exc.strerror or exc})") from None
    _regular_permissions(tmp)
    write_marker(tmp, kind)
    clean_stale(out.parent)  # after marking ours, which is alive and so kept
    return tmp


def _retire(out: Path) -> Path:
    """Move the marked folder ``out`` into a marked hidden sibling, to be removed once its successor is in place."""
    if not is_marked(out):  # checked before the work began; re-checked so nothing unmarked is ever lost
        raise OutputError(f"{out}: was filled by someone else while marketsim ran; nothing was replaced")
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}{_OLD}", dir=out.parent))
    write_marker(old, "replaced")
    os.replace(out, old / "folder")
    return old


def move_into_place(tmp: Path, out: Path) -> None:
    """Replace ``out`` (absent, empty, or a marked folder) with the finished ``tmp`` folder."""
    old = _retire(out) if out.is_dir() and any(out.iterdir()) else None
    os.replace(tmp, out)  # an absent or empty ``out`` is replaced atomically by rename(2)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def open_resumable_folder(
    folder: str | Path,
    kind: str,
    force: bool = False,
    resume: bool = False,
    inputs: Iterable[InputRecord] = (),
) -> Path:
    """A folder written in place as work proceeds (a tournament's store), so an interrupted run can resume.

    With ``resume`` the existing folder is used as it is (its inputs were recorded when it was made);
    otherwise the folder policy above applies, a marked folder replaced with ``force`` is moved aside
    before the new one is created, and ``inputs`` are recorded in it at once.
    """
    out = Path(folder)
    if resume:
        if not out.is_dir():
            raise OutputError(f"{out}: nothing to resume there (no such folder)")
        return out
    check_output_folder(out, force)
    old = _retire(out) if out.is_dir() and any(out.iterdir()) else None
    out.mkdir(parents=True, exist_ok=True)
    write_marker(out, kind)
    write_inputs(out, inputs)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    clean_stale(out.parent)
    return out


@contextmanager
def output_folder(
    folder: str | Path, kind: str, force: bool = False, inputs: Iterable[InputRecord] = ()
) -> Iterator[Path]:
    """Yield a temporary folder holding ``inputs`` to fill; on success it becomes ``folder``, on error it vanishes."""
    out = check_output_folder(folder, force)
    tmp = new_temporary(out, kind)
    try:
        write_inputs(tmp, inputs)
        yield tmp
        move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
