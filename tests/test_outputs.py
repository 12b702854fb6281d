"""Output folders never lose a user's files: refusals, --force on marked folders only, safe names, kill -9."""

from __future__ import annotations

import argparse
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
    import marketsim.cli.run

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the market ran although its folder was refused")

    monkeypatch.setattr(marketsim.cli.run, "simulate", fail)
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
    with pytest.raises(SystemExit):  # a usage error
        main(["tournament", str(tournament), "--out", str(fresh), "--workers", "0", "--quiet"])
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


# --- one policy for every command (issue 16, acceptance E) ----------------------------------------------------

SCENARIOS = ROOT / "scenarios"
TINY_TOURNAMENT = """\
name: tiny
market:
  name: duo
  steps: 1
  consumers: {size: 1, wtp: {distribution: constant, value: 0.0}, mu: 0.25}
  demand: {mode: expected}
  sellers: [{name: seat, strategy: fixed_price, cost: 1.0, quality: 2.0, price_min: 1.0, price_max: 2.5}]
entrants:
  - {name: fixed, strategy: fixed_price, params: {price: 1.8}}
  - {name: cut, strategy: undercut}
self_play: false
repetitions: 1
phases: {train_steps: 0, eval_steps: 5}
"""
TINY_RL2 = {"batch": 8, "pool": 64, "validation": 8, "log_every": 2, "hidden": 16}
#: each command on a tiny budget: (argv before --out, the marker's kind, the inputs its folder records)
JOBS = {
    "run": (["run", str(QUICKSTART), "--steps", "5"], "run", ("scenario",)),
    "experiment": (
        ["experiment", str(SCENARIOS / "calvano2020.yaml"), "--sessions", "2", "--max-steps", "20"],
        "experiment",
        ("scenario",),
    ),
    "train": (
        ["train", str(SCENARIOS / "calvano2020.yaml"), "--seller", "firm_1", "--steps", "20"],
        "training",
        ("scenario",),
    ),
    "tournament": (["tournament", "tiny.yaml", "--backend", "serial"], "tournament", ("tournament",)),
    "meta-train": (
        [
            "meta-train",
            str(SCENARIOS / "meta_pricing.yaml"),
            "--strategy",
            "rl2",
            "--iterations",
            "1",
            "--device",
            "cpu",
        ],
        "meta-train",
        ("family",),
    ),
    "meta-eval": (["meta-eval", str(SCENARIOS / "meta_pricing.yaml"), "--tasks", "2"], "meta-eval", ("family",)),
}
NEEDS_TORCH = {"meta-train"}
SLOW_JOBS = {"train", "tournament", "meta-train", "meta-eval"}  # a few seconds each: their real run is marked slow


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with the tiny tournament file, and meta-training cut down to seconds."""
    (tmp_path / "tiny.yaml").write_text(TINY_TOURNAMENT)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _job(name: str, running: bool = False) -> object:
    """A JOBS entry as a test parameter; ``running`` (the job really runs) marks the costly ones slow."""
    marks = [pytest.mark.skipif(not _has_torch(), reason="needs torch (the deep extra)")] if name in NEEDS_TORCH else []
    marks += [pytest.mark.slow] if running and name in SLOW_JOBS else []
    return pytest.param(name, id=name, marks=marks)


def _has_torch() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def _tiny_meta_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Meta-train rl2 with a few small batches: this checks the folder, not the learning."""
    import marketsim.cli.meta as cli_meta

    original = cli_meta.meta_train
    monkeypatch.setattr(cli_meta, "meta_train", lambda *args, **kw: original(*args, **{**kw, **TINY_RL2}))


@pytest.mark.parametrize("name", [_job(n) for n in JOBS])
def test_every_command_refuses_a_folder_it_did_not_write_even_with_force(
    name: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, _, _ = JOBS[name]
    mine = workdir / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    for extra in ([], ["--force"]):
        assert main([*argv, "--out", str(mine), "--quiet", *extra]) == 2
        assert "error:" in capsys.readouterr().err
        assert _listing(mine) == {"notes.txt": b"mine"}
    ours = workdir / "ours"  # a folder marketsim wrote is refused too, unless --force
    ours.mkdir()
    (ours / MARKER).write_text(json.dumps({"kind": JOBS[name][1], "pid": 1}))
    assert main([*argv, "--out", str(ours), "--quiet"]) == 2
    assert "pass --force" in capsys.readouterr().err
    assert sorted(p.name for p in workdir.iterdir()) == ["mine", "ours", "tiny.yaml"]


def _expected_digest(input_name: str, argv: list[str]) -> str:
    """The sha256 the folder must record for its input, computed from the file the command was given."""
    from marketsim.config.tournament import load_tournament
    from marketsim.config.validate import load_scenario
    from marketsim.meta.tasks import load_family
    from marketsim.meta.train import family_hash

    if input_name == "scenario":
        scenario = load_scenario(argv[1])
        return (scenario.with_overrides(steps=5) if argv[0] == "run" else scenario).digest()
    if input_name == "tournament":
        return load_tournament(argv[1]).digest()
    return family_hash(load_family(argv[1]))


@pytest.mark.parametrize("name", [_job(n, running=True) for n in JOBS])
def test_every_command_replaces_its_own_folder_with_force_and_records_its_input(
    name: str, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tiny_meta_training(monkeypatch)
    argv, kind, inputs = JOBS[name]
    out = workdir / "out"
    out.mkdir()
    (out / MARKER).write_text(json.dumps({"kind": kind, "pid": 1}))
    (out / "stale.txt").write_text("from an earlier run")
    assert main([*argv, "--out", str(out), "--quiet", "--force"]) == 0
    assert not (out / "stale.txt").exists()
    assert json.loads((out / MARKER).read_text())["kind"] == kind
    for input_name in inputs:  # the resolved input, loadable again, and the hash that identifies it
        assert (out / f"{input_name}.sha256").read_text() == _expected_digest(input_name, argv) + "\n"
        assert main(["validate", str(out / f"{input_name}.yaml")]) == 0
    umask = os.umask(0)
    os.umask(umask)
    for path in [out, *out.rglob("*")]:  # the same permissions as mkdir and open give, in every folder
        expected = (0o777 if path.is_dir() else 0o666) & ~umask
        assert stat.S_IMODE(path.stat().st_mode) == expected, path
    assert _hidden(workdir) == []  # no temporary or replaced folder left beside it


def test_meta_eval_records_the_checkpoint_it_used_and_names_its_folder_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from marketsim.cli.meta import _eval_suffix
    from marketsim.meta.tasks import load_family
    from marketsim.meta.train import eval_inputs
    from marketsim.outputs import file_sha256, write_inputs

    ckpt = tmp_path / "meta_pricing-rl2" / "checkpoint.pt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"weights")
    ckpt.with_suffix(".json").write_text(json.dumps({"strategy": "rl2", "iterations": 3}))
    args = argparse.Namespace(split="ood", checkpoint=ckpt, strategy=None)
    assert _eval_suffix(args) == "-meta-eval-ood-meta_pricing-rl2"
    assert _eval_suffix(argparse.Namespace(split="test", checkpoint=tmp_path / "best.pt", strategy=None)) == (
        "-meta-eval-test-best"
    )
    assert _eval_suffix(argparse.Namespace(split="test", checkpoint=None, strategy="ucb")) == "-meta-eval-test-ucb"
    records = eval_inputs(load_family(SCENARIOS / "meta_pricing.yaml"), {"rl2": ("rl2", {"checkpoint": str(ckpt)})})
    assert [r.name for r in records] == ["family", "checkpoint"]
    write_inputs(tmp_path, records)
    import yaml

    recorded = yaml.safe_load((tmp_path / "checkpoint.yaml").read_text())
    assert recorded == {"path": str(ckpt), "strategy": "rl2", "sidecar": {"strategy": "rl2", "iterations": 3}}
    assert (tmp_path / "checkpoint.sha256").read_text() == file_sha256(ckpt) + "\n"


def test_default_folder_names_tell_runs_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(QUICKSTART), "--steps", "2", "--quiet"]) == 0
    assert main(["run", str(QUICKSTART), "--steps", "2", "--seed", "3", "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["quickstart", "quickstart-seed3"]
