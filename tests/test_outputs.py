"""Output folders never lose a user's files: refusals, --force on marked folders only, safe names, kill -9."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from marketsim.cli.app import main
from marketsim.outputs import MARKER, OutputError, clean_stale, output_folder, safe_name

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"


def _run(*args: str) -> int:
    return main(["run", str(QUICKSTART), "--steps", "3", "--quiet", *args])


def _listing(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` with its bytes (hidden ones included)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_run_folder_carries_the_marker_and_regular_permissions(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _run("--out", str(out)) == 0
    assert json.loads((out / MARKER).read_text())["kind"] == "run"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask
    assert _hidden(tmp_path) == []


def test_an_existing_folder_with_a_users_file_is_refused_and_the_file_survives(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    assert _run("--out", str(out)) == 2
    assert "not empty" in capsys.readouterr().err
    assert _listing(out) == {"thesis.tex": b"years of work"}
    assert _run("--out", str(out), "--force") == 2  # --force never touches an unmarked folder
    assert "--force replaces only folders marketsim wrote" in capsys.readouterr().err
    assert _listing(out) == {"thesis.tex": b"years of work"}
    assert _hidden(tmp_path) == []


def test_force_replaces_a_folder_marketsim_wrote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert _run("--out", str(out)) == 0
    (out / "stale.txt").write_text("from the old run")
    assert _run("--out", str(out)) == 2  # marked but not forced: still refused
    assert "--force" in capsys.readouterr().err
    assert _run("--out", str(out), "--force") == 0
    assert not (out / "stale.txt").exists() and (out / "summary.json").is_file()
    assert _hidden(tmp_path) == []


def test_an_empty_existing_folder_is_used(tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    assert _run("--out", str(out)) == 0
    assert (out / "summary.json").is_file()


@pytest.mark.parametrize("target", [".", "..", "~", "/"])
def test_the_working_folder_its_ancestors_home_and_root_are_refused_even_with_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], target: str
) -> None:
    work = tmp_path / "project"
    work.mkdir()
    (work / "notes.txt").write_text("keep me")
    monkeypatch.chdir(work)
    before = _listing(tmp_path)
    assert _run("--out", os.path.expanduser(target), "--force") == 2
    assert "error:" in capsys.readouterr().err
    assert _listing(tmp_path) == before


@pytest.mark.parametrize("name", ["../../escaped", "/tmp/absolute-escape", "..", "a/../../b", ".hidden"])
def test_a_scenario_name_cannot_choose_a_folder_outside_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    work = tmp_path / "deep" / "work"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    text = QUICKSTART.read_text()
    scenario = work / "s.yaml"
    scenario.write_text(text.replace("name: quickstart", f"name: {json.dumps(name)}", 1))
    assert main(["run", str(scenario), "--steps", "2", "--quiet"]) == 0
    made = [p for p in (work / "runs").iterdir()]
    assert len(made) == 1 and made[0].name == safe_name(name) and not made[0].name.startswith(".")
    assert sorted(p.name for p in work.iterdir()) == ["runs", "s.yaml"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep"]
    assert not Path("/tmp/absolute-escape").exists()


def test_safe_name_keeps_one_plain_component() -> None:
    assert safe_name("quickstart") == "quickstart"
    assert safe_name("calvano2020-experiment") == "calvano2020-experiment"
    for raw in ("../../x", "/etc/passwd", "a/b", "..", ".", "", "\x00bad", "C:\\Windows"):
        cleaned = safe_name(raw)
        assert cleaned and "/" not in cleaned and "\\" not in cleaned and not cleaned.startswith(".")
        assert Path(cleaned).name == cleaned


def test_out_at_a_file_under_a_file_or_nowhere_writable_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    afile = tmp_path / "a.txt"
    afile.write_text("data")
    for out, reason in ((afile, "not a folder"), (afile / "sub", "is a file"), (Path("/proc/marketsim"), "cannot")):
        assert _run("--out", str(out)) == 2
        assert reason in capsys.readouterr().err
    assert afile.read_text() == "data" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(RuntimeError), output_folder(out, "run") as tmp:
        (tmp / "half.csv").write_text("1,2")
        raise RuntimeError("plot failed")
    assert list(tmp_path.iterdir()) == []


def test_refusal_comes_before_the_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "keep").write_text("x")
    import marketsim.market.run

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the market ran although its folder was refused")

    monkeypatch.setattr(marketsim.market.run, "simulate", fail)
    assert _run("--out", str(out)) == 2


_KILLED_WRITER = """
import sys, time
from pathlib import Path
import marketsim.market.run
from marketsim.cli.app import main

def plot_then_hang(result, folder):
    (Path(folder) / "half-written.png").write_bytes(b"x")
    Path(sys.argv[2]).write_text(str(folder))
    time.sleep(600)

marketsim.market.run.plot_run = plot_then_hang
main(["run", sys.argv[1], "--steps", "3", "--quiet", "--out", sys.argv[3], *sys.argv[4:]])
"""


def _kill_during_write(tmp_path: Path, out: Path, *extra: str) -> Path:
    """Start ``marketsim run`` into ``out``, SIGKILL it while it writes; return its temporary folder."""
    ready = tmp_path / "ready"
    ready.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(QUICKSTART), str(ready), str(out), *extra])
    try:
        for _ in range(1200):  # a hang backstop, not a timing assertion
            if ready.exists() and ready.read_text():
                break
            assert proc.poll() is None, "the writer ended before it was killed"
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    return Path(ready.read_text())


def test_kill_minus_nine_during_a_write_leaves_nothing_after_the_next_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    temporary = _kill_during_write(tmp_path, out)
    assert not out.exists() and temporary.is_dir() and temporary.name.startswith(".")
    assert _run("--out", str(out)) == 0
    assert _hidden(tmp_path) == [] and (out / "summary.json").is_file()
    assert not (out / "half-written.png").exists()


def test_kill_minus_nine_during_a_forced_replacement_keeps_the_old_folder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _run("--out", str(out)) == 0
    before = _listing(out)
    _kill_during_write(tmp_path, out, "--force")
    assert _listing(out) == before  # the old folder stays whole until its successor is complete
    assert _run("--out", str(out), "--force") == 0
    assert _hidden(tmp_path) == []


def test_only_marked_temporaries_of_dead_writers_are_cleaned(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / ".run.marketsim-tmp-abc"
    stale.mkdir()
    (stale / MARKER).write_text(json.dumps({"kind": "run", "pid": int(dead.stdout)}))
    alive = tmp_path / ".run.marketsim-tmp-live"
    alive.mkdir()
    (alive / MARKER).write_text(json.dumps({"kind": "run", "pid": os.getpid()}))
    lookalike = tmp_path / ".run.marketsim-tmp-users"  # the pattern, but no marker: not ours
    lookalike.mkdir()
    (lookalike / "data").write_text("x")
    assert clean_stale(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, lookalike.name])


def test_tournament_folder_follows_the_same_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tournament = ROOT / "scenarios" / "tournament_quick.yaml"
    out = tmp_path / "mine"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(["tournament", str(tournament), "--out", str(out), "--quiet"]) == 2
    assert main(["tournament", str(tournament), "--out", str(out), "--quiet", "--force"]) == 2
    assert _listing(out) == {"keep.txt": b"x"}
    fresh = tmp_path / "fresh"
    assert main(["tournament", str(tournament), "--out", str(fresh), "--workers", "0", "--quiet"]) == 2
    assert not fresh.exists()  # a refused command creates nothing
    capsys.readouterr()


def test_output_error_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "x").write_text("x")
    with pytest.raises(OutputError) as info:
        with output_folder(out, "run"):
            pass
    assert "\n" not in str(info.value) and str(out) in str(info.value)
