"""Distributed meta-training: V-trace, task streams independent of the workers, backends, resume, the command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

import torch

from marketsim.cli.meta import cmd_meta_train
from marketsim.cli.parser import build_parser
from marketsim.learning.checkpoint import load_checkpoint
from marketsim.meta.batch import TaskBatch
from marketsim.meta.distributed import (
    Checkpointing,
    Distributed,
    DistributedMetaLearner,
    acting_version,
    make_fleet,
    pieces,
    resume,
)
from marketsim.meta.distributed.fleet import ActorSpec
from marketsim.meta.loop import MetaRun, build_learner
from marketsim.meta.tasks import Family, load_family, sample_tasks
from marketsim.meta.train import MetaTrainError, family_record, meta_train
from marketsim.registry import Registry, default_registry

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "scenarios" / "meta_pricing.yaml"
TINY = {"batch": 8, "pool": 64, "validation": 8, "log_every": 2, "hidden": 16}
SPREAD = {"piece": 3}  # 8 episodes an update in pieces of 3, 3 and 2


@pytest.fixture(scope="module")
def registry() -> Registry:
    return default_registry()


@pytest.fixture(scope="module")
def family(registry: Registry) -> Family:
    return load_family(BUNDLED, registry)


def weights_of(result) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in result.state["net"].items()}


def assert_same_weights(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def without_seconds(curve: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in curve]


def train(family, registry, iterations=4, seed=5, **dist):
    distributed = Distributed(**{"workers": 1, "backend": "serial", **SPREAD, **dist})
    return meta_train(family, "rl2", iterations, seed, registry, device="cpu", distributed=distributed, **TINY)[0]


@pytest.fixture(scope="module")
def serial_run(family: Family, registry: Registry):
    """The reference: 4 updates with the actor in this process (every backend must give exactly this)."""
    return train(family, registry)


# --- V-trace -------------------------------------------------------------------------------------------


def vtrace_reference(logp, mu_logp, reward, value, gamma, lam):
    """V-trace by its definition (Espeholt et al. 2018, eq. 1): a sum over the rest of each episode."""
    ratio = np.exp(logp - mu_logp)
    rho, c = np.minimum(1.0, ratio), lam * np.minimum(1.0, ratio)
    B, H = reward.shape
    nxt = np.concatenate([value[:, 1:], np.zeros((B, 1))], 1)
    vs = np.empty((B, H))
    for b in range(B):
        for s in range(H):
            total, trace = 0.0, 1.0
            for t in range(s, H):
                total += gamma ** (t - s) * trace * rho[b, t] * (reward[b, t] + gamma * nxt[b, t] - value[b, t])
                trace *= c[b, t]
            vs[b, s] = value[b, s] + total
    adv = reward + gamma * np.concatenate([vs[:, 1:], np.zeros((B, 1))], 1) - value
    return vs, adv, rho


def test_vtrace_equals_its_definition_off_policy() -> None:
    from marketsim_meta.rl2 import vtrace

    rng = np.random.default_rng(0)
    shape = (3, 7)
    logp, mu_logp = np.log(rng.uniform(0.05, 1, shape)), np.log(rng.uniform(0.05, 1, shape))
    reward, value = rng.normal(size=shape), rng.normal(size=shape)
    as_t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    vs, adv, rho = vtrace(as_t(logp), as_t(mu_logp), as_t(reward), as_t(value), 0.95, 0.9)
    ref = vtrace_reference(logp, mu_logp, reward, value, 0.95, 0.9)
    for mine, theirs in zip((vs, adv, rho), ref):
        np.testing.assert_allclose(mine.numpy(), theirs, rtol=1e-10, atol=1e-12)
    assert (rho.numpy() < 1).any() and rho.numpy().max() <= 1.0  # some weights clipped at ρ̄ = 1, some below


def test_vtrace_on_policy_is_gae() -> None:
    from marketsim_meta.rl2 import gae, vtrace

    gen = torch.Generator().manual_seed(1)
    reward, value = torch.randn(4, 9, generator=gen), torch.randn(4, 9, generator=gen)
    logp = torch.log(torch.rand(4, 9, generator=gen))
    vs, _, rho = vtrace(logp, logp, reward, value, 1.0, 0.9)
    torch.testing.assert_close(vs - value, gae(reward, value, 1.0, 0.9))
    assert torch.all(rho == 1)


# --- task streams ------------------------------------------------------------------------------------------


def test_a_pieces_tasks_come_from_the_seed_and_the_piece_only() -> None:
    work = pieces(7, 3, 10, 4)
    assert [p.episodes for p in work] == [4, 4, 2] and [p.index for p in work] == [0, 1, 2]
    assert work == pieces(7, 3, 10, 4)  # nothing else goes in: not the worker, not the time
    seeds = {p.seed for it in range(1, 6) for p in pieces(7, it, 10, 4)}
    assert len(seeds) == 15  # every piece of every batch has its own stream
    assert {p.seed for p in pieces(8, 3, 10, 4)}.isdisjoint(p.seed for p in work)
    assert [acting_version(u, 1) for u in range(1, 6)] == [0, 0, 1, 2, 3]
    assert [acting_version(u, 0) for u in range(1, 4)] == [0, 1, 2]


class Scrambled:
    """A fleet of ``workers`` in-process actors, each with its own network, that play the pieces late and
    backwards: whenever a result is asked for, every piece submitted so far is played, the last first."""

    def __init__(self, spec: ActorSpec, workers: int) -> None:
        self.fleets = [make_fleet("serial", 1, spec) for _ in range(workers)]
        self.workers, self.waiting, self.done, self.played = workers, [], {}, []

    def share(self, weights):
        return {k: v.copy() for k, v in weights.items()}

    def submit(self, piece, weights):
        self.waiting.append((piece, weights, self.fleets[len(self.played + self.waiting) % self.workers]))
        return piece

    def result(self, piece):
        for waiting, weights, fleet in reversed(self.waiting):
            self.played.append((waiting.iteration, waiting.index))
            self.done[waiting] = fleet.result(fleet.submit(waiting, weights))
        self.waiting = []
        return self.done.pop(piece)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("workers", [2, 3])
def test_the_run_is_the_same_whoever_plays_the_pieces(family, registry, serial_run, monkeypatch, workers) -> None:
    fleets = []

    def scrambled(backend, n, spec, address=None, env=None):
        fleets.append(Scrambled(spec, n))
        return fleets[-1]

    monkeypatch.setattr("marketsim.meta.distributed.run.make_fleet", scrambled)
    result = train(family, registry, workers=workers)
    assert_same_weights(weights_of(result), weights_of(serial_run))
    assert without_seconds(result.curve) == without_seconds(serial_run.curve)
    played = fleets[0].played
    assert sorted(played) == [(u, p) for u in range(1, 5) for p in range(3)] and played != sorted(played)
    other_seed = train(family, registry, seed=6)
    assert not np.array_equal(weights_of(other_seed)["pi.weight"], weights_of(serial_run)["pi.weight"])


def test_actors_build_their_pool_with_the_hosts_registry(family, registry, monkeypatch) -> None:
    import pickle

    from marketsim.meta.distributed import run as distributed_run

    specs = []

    def capture(backend, n, spec, address=None, env=None):
        specs.append(spec)
        raise KeyboardInterrupt  # enough: the spec is what the actors would get

    monkeypatch.setattr(distributed_run, "make_fleet", capture)
    with pytest.raises(KeyboardInterrupt):
        train(family, registry, workers=2)
    spec = pickle.loads(pickle.dumps(specs[0]))  # as a spawned actor process receives it
    monkeypatch.setattr("marketsim.registry.default_registry", lambda: pytest.fail("the actor used another registry"))
    assert sorted(spec.registry.names()) == sorted(registry.names())
    pool, host = spec.build_pool(), TaskBatch.from_tasks(sample_tasks(family, "train", spec.pool), registry)
    assert np.array_equal(pool.start, host.start) and np.array_equal(pool.cost, host.cost)


def test_staleness_changes_what_is_learned(family, registry, serial_run) -> None:
    on_policy = train(family, registry, staleness=0)
    assert not np.array_equal(weights_of(on_policy)["pi.weight"], weights_of(serial_run)["pi.weight"])


def test_the_actor_plays_a_batch_like_the_learners_own_rollout(family, registry) -> None:
    """What an actor records is what the network saw and did: replaying it gives back its log-probabilities."""
    from marketsim_meta.rl2 import replay

    run = MetaRun(family=family, cls=registry.get("rl2").cls, registry=registry, device="cpu", options=TINY)
    learner = build_learner(run)
    assert isinstance(learner, DistributedMetaLearner)
    fleet = make_fleet("serial", 1, ActorSpec(family, learner.pool, learner.actor()))
    piece = pieces(0, 1, 5, 5)[0]
    played = fleet.result(fleet.submit(piece, fleet.share(learner.weights())))
    assert played.features.shape[:2] == played.actions.shape == played.profit.shape == (5, family.horizon)
    with torch.no_grad():
        logits, _ = replay(learner.net, torch.as_tensor(played.features))
    logp = torch.log_softmax(logits, 2).gather(2, torch.as_tensor(played.actions)[..., None]).squeeze(2)
    np.testing.assert_allclose(logp.numpy(), played.logp, rtol=1e-5, atol=1e-5)
    again = fleet.result(fleet.submit(piece, fleet.share(learner.weights())))
    assert np.array_equal(again.actions, played.actions) and np.array_equal(again.profit, played.profit)


# --- resume --------------------------------------------------------------------------------------------------


def kept(folder: Path, family: Family, every: int = 2, resume_it: bool = False) -> Checkpointing:
    return Checkpointing(folder=folder, every=every, resume=resume_it, inputs=(family_record(family),))


def test_a_stopped_run_resumes_exactly(tmp_path, family, registry, serial_run) -> None:
    folder = tmp_path / "run"

    def stop_after_3(done, total, metrics):
        if done == 3:
            raise KeyboardInterrupt

    dist = Distributed(workers=1, backend="serial", **SPREAD, checkpoints=kept(folder, family))
    with pytest.raises(KeyboardInterrupt):
        meta_train(family, "rl2", 4, 5, registry, progress=stop_after_3, device="cpu", distributed=dist, **TINY)
    state = torch.load(folder / resume.STATE, weights_only=True)
    assert state["iteration"] == 2 and sorted(state["versions"]) == ["1", "2"]
    dist = Distributed(workers=3, backend="serial", **SPREAD, checkpoints=kept(folder, family, resume_it=True))
    seen = []
    result, _ = meta_train(family, "rl2", 4, 5, registry, progress=lambda d, t, m: seen.append(d), device="cpu",
                           distributed=dist, **TINY)  # fmt: skip
    assert seen == [3, 4]  # it went on from the last checkpoint
    assert_same_weights(weights_of(result), weights_of(serial_run))
    assert without_seconds(result.curve) == without_seconds(serial_run.curve)


def test_a_run_stopped_before_its_first_periodic_save_resumes_from_its_start(tmp_path, family, registry, serial_run):
    folder = tmp_path / "run"

    def stop_at_1(done, total, metrics):
        if done == 1:
            raise KeyboardInterrupt

    dist = Distributed(workers=1, backend="serial", **SPREAD, checkpoints=kept(folder, family, every=50))
    with pytest.raises(KeyboardInterrupt):
        meta_train(family, "rl2", 4, 5, registry, progress=stop_at_1, device="cpu", distributed=dist, **TINY)
    assert torch.load(folder / resume.STATE, weights_only=True)["iteration"] == 0  # saved as the actors started
    dist = Distributed(workers=2, backend="serial", **SPREAD, checkpoints=kept(folder, family, 50, resume_it=True))
    result, _ = meta_train(family, "rl2", 4, 5, registry, device="cpu", distributed=dist, **TINY)
    assert_same_weights(weights_of(result), weights_of(serial_run))


def test_actors_that_cannot_start_leave_no_folder(tmp_path, family, registry, monkeypatch) -> None:
    from marketsim.meta.distributed import run as distributed_run
    from marketsim.tournament.executors import ExecutorUnavailable

    def unavailable(*args):
        raise ExecutorUnavailable("the ray backend needs Ray")

    monkeypatch.setattr(distributed_run, "make_fleet", unavailable)
    folder = tmp_path / "run"
    dist = Distributed(workers=2, backend="serial", checkpoints=kept(folder, family))
    with pytest.raises(ExecutorUnavailable):
        meta_train(family, "rl2", 2, 5, registry, device="cpu", distributed=dist, **TINY)
    assert not folder.exists()  # so a second try, plain or fixed, is not refused


def test_resume_refuses_another_run(tmp_path, family, registry) -> None:
    folder = tmp_path / "run"
    dist = Distributed(workers=1, backend="serial", **SPREAD, checkpoints=kept(folder, family))
    meta_train(family, "rl2", 2, 5, registry, device="cpu", distributed=dist, **TINY)
    assert (folder / resume.STATE).is_file()  # the run finished but its outputs are not written yet
    other = Distributed(workers=1, backend="serial", **SPREAD, checkpoints=kept(folder, family, resume_it=True))
    with pytest.raises(MetaTrainError, match="holds another run.*seed 5 there, 6 now"):
        meta_train(family, "rl2", 2, 6, registry, device="cpu", distributed=other, **TINY)
    saved = torch.load(folder / resume.STATE, weights_only=True)
    saved["key"] = saved["key"].replace('"device": "cpu"', '"device": "cuda"')  # as a GPU run would have written it
    torch.save(saved, folder / resume.STATE)
    with pytest.raises(MetaTrainError, match="holds another run.*device 'cuda' there, 'cpu' now"):
        meta_train(family, "rl2", 2, 5, registry, device="cpu", distributed=other, **TINY)
    with pytest.raises(MetaTrainError, match="nothing to resume"):
        dist = Distributed(workers=1, backend="serial", checkpoints=kept(tmp_path / "empty", family, resume_it=True))
        (tmp_path / "empty").mkdir()
        meta_train(family, "rl2", 2, 5, registry, device="cpu", distributed=dist, **TINY)


# --- the command ---------------------------------------------------------------------------------------------


def _args(**kw) -> Namespace:
    base = {"family": str(BUNDLED), "strategy": "rl2", "out": None, "iterations": 3, "seed": 0, "device": "cpu"}
    spread = {"workers": 2, "backend": "serial", "address": None, "resume": False, "checkpoint_every": 2}
    return Namespace(**{**base, **spread, "quiet": True, "force": False, **kw})


@pytest.fixture
def tiny_cli(monkeypatch, registry):
    """The command with a tiny learner (the CLI has no flags for a learner's options)."""
    import marketsim.cli.meta as cli_meta

    original = cli_meta.meta_train
    monkeypatch.setattr(cli_meta, "default_registry", lambda: registry)

    def tiny(family, strategy, *args, **kw):
        return original(family, strategy, *args, **{**kw, **(TINY if strategy == "rl2" else {})})

    monkeypatch.setattr(cli_meta, "meta_train", tiny)


def test_parser_takes_the_executor_flags() -> None:
    argv = ["meta-train", "f.yaml", "--strategy", "rl2", "--workers", "2", "--backend", "ray", "--address", "auto"]
    args = build_parser().parse_args([*argv, "--resume", "--checkpoint-every", "7"])
    assert (args.workers, args.backend, args.address, args.resume, args.checkpoint_every) == (2, "ray", "auto", True, 7)
    args = build_parser().parse_args(["meta-train", "f.yaml", "--strategy", "rl2"])
    assert (args.workers, args.resume, args.checkpoint_every) == (1, False, 50)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"strategy": "reptile_dqn"}, "reptile_dqn meta-trains in one process only"),
        ({"workers": 1, "backend": "process", "resume": True}, "--resume needs a distributed run"),
        ({"workers": 1, "backend": "ray", "address": "auto"}, "--backend and --address need a distributed run"),
        ({"backend": "process", "address": "auto"}, "--address is a Ray cluster's"),
        ({"resume": True}, "nothing to resume there"),
    ],
)
def test_bad_distributed_input_is_one_line_exit_2(tmp_path, capsys, tiny_cli, change, message) -> None:
    out = tmp_path / "out"
    if change.get("resume"):
        out.mkdir()
    assert cmd_meta_train(_args(out=out, **change)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not out.exists() or not any(out.iterdir())


def test_distributed_command_writes_the_usual_folder(tmp_path, capsys, tiny_cli, family, registry) -> None:
    out = tmp_path / "rl2"
    assert cmd_meta_train(_args(out=out, quiet=False)) == 0
    assert "2 actors on serial" in capsys.readouterr().out
    names = {p.name for p in out.iterdir()}
    assert {"checkpoint.pt", "checkpoint.json", "curve.csv", "curve.png", "family.yaml", ".marketsim-output"} <= names
    assert resume.STATE not in names and not [n for n in names if n.startswith(".meta-train-outputs")]
    meta = json.loads((out / "checkpoint.json").read_text())
    assert meta["iterations"] == 3 and meta["off_policy"] == "v-trace" and meta["actors"] == 2
    state, _ = load_checkpoint(out / "checkpoint.pt")
    expected, _ = meta_train(family, "rl2", 3, 0, registry, device="cpu",
                             distributed=Distributed(workers=1, backend="serial"), **TINY)  # fmt: skip
    assert_same_weights({k: v.numpy() for k, v in state["net"].items()}, weights_of(expected))
    assert cmd_meta_train(_args(out=out)) == 2  # a finished folder is kept unless --force
    assert cmd_meta_train(_args(out=out, resume=True)) == 2  # and has nothing to resume
    assert "its run finished" in capsys.readouterr().err


def test_a_stopped_command_asks_for_resume_or_force(tmp_path, capsys, tiny_cli, family, registry) -> None:
    out = tmp_path / "rl2"
    dist = Distributed(workers=1, backend="serial", checkpoints=kept(out, family))
    meta_train(family, "rl2", 3, 0, registry, device="cpu", distributed=dist, **TINY)  # state kept, no outputs
    (out / "notes.txt").write_text("mine")
    assert cmd_meta_train(_args(out=out)) == 2
    assert "pass --resume to continue it" in capsys.readouterr().err
    assert cmd_meta_train(_args(out=out, resume=True)) == 0
    assert (out / "checkpoint.pt").is_file() and (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("where, hint", [("make_fleet", "wrote nothing; run it again"), ("_train", "with --resume")])
def test_an_interrupted_command_says_how_to_go_on(tmp_path, capsys, tiny_cli, monkeypatch, where, hint) -> None:
    from marketsim.meta.distributed import run as distributed_run

    def interrupt(*args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(distributed_run, where, interrupt)
    out = tmp_path / "rl2"
    assert cmd_meta_train(_args(out=out)) == 130
    err = capsys.readouterr().err.strip()
    assert err.startswith("interrupted; ") and hint in err and len(err.splitlines()) == 1, err
    assert (out / resume.STATE).is_file() == (where == "_train")


# --- real processes (slow: each actor process imports torch and builds its pool) ----------------------------


@pytest.mark.slow
def test_process_actors_give_the_serial_run(family, registry, serial_run) -> None:
    for workers in (2, 3):
        result = train(family, registry, workers=workers, backend="process")
        assert_same_weights(weights_of(result), weights_of(serial_run))
        assert without_seconds(result.curve) == without_seconds(serial_run.curve)


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.mark.slow  # a local Ray cluster starts (seconds), and its two actors import torch
def test_ray_actors_give_the_serial_run(family, registry, serial_run, local_ray) -> None:
    result = train(family, registry, workers=2, backend="ray")
    assert_same_weights(weights_of(result), weights_of(serial_run))
    assert without_seconds(result.curve) == without_seconds(serial_run.curve)
    assert local_ray.is_initialized()  # a session it did not start is left as it was


KILLED_RUN = """
import os, sys, time
import marketsim.cli.meta as cli_meta
from marketsim.meta.distributed import fleet
from marketsim.meta.distributed import run as distributed_run
options = {options!r}
start = fleet._start_actor
def noted_start(*args):  # each actor process notes its pid (this file runs in them too)
    with open({pids!r}, "a") as f:
        f.write(f"{{os.getpid()}}\\n")
    start(*args)
fleet._start_actor = noted_start
original, save = cli_meta.meta_train, distributed_run.save_snapshot
cli_meta.meta_train = lambda *a, **kw: original(*a, **{{**kw, **options}})
def slow_save(folder, snap):  # time for the test to kill it between two checkpoints
    save(folder, snap)
    if snap.iteration:  # (not the state saved as the actors start)
        print(f"saved {{snap.iteration}}", flush=True)  # the test reads this line, then kills the run
        time.sleep({pause})
distributed_run.save_snapshot = slow_save  # the name the learner's loop calls
if __name__ == "__main__":  # actor processes are spawned: they import this file, and must not run it
    from marketsim.cli.app import main
    sys.exit(main(sys.argv[1:]))
"""


def _running(pid: int, within: float) -> bool:
    """Whether process ``pid`` still runs after waiting up to ``within`` seconds for it to end."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        if state == "Z":  # ended; its parent (killed) cannot reap it
            return False
        time.sleep(0.1)
    return True


@pytest.mark.slow  # a command whose two actor processes start, then are killed with it
def test_a_killed_command_resumes_from_its_last_checkpoint(tmp_path, family, registry) -> None:
    out = tmp_path / "run"
    argv = ["meta-train", str(BUNDLED), "--strategy", "rl2", "--iterations", "8", "--device", "cpu", "--quiet",
            "--workers", "2", "--checkpoint-every", "2", "--out", str(out)]  # fmt: skip
    script = tmp_path / "run_cli.py"
    pids = tmp_path / "actors.txt"
    script.write_text(KILLED_RUN.format(options=TINY, pause=30, pids=str(pids)))
    child = subprocess.Popen([sys.executable, str(script), *argv], stdout=subprocess.PIPE, text=True,
                             start_new_session=True)  # fmt: skip
    try:
        saved = next((line.strip() for line in child.stdout if line.startswith("saved ")), None)  # blocks: no clock
        assert saved == "saved 2", "the run ended before its first periodic checkpoint"  # None: stdout closed, it died
        os.kill(child.pid, signal.SIGKILL)  # mid-way: 2 of 8 updates saved, the actors busy with the next
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.stdout.close()
    assert torch.load(out / resume.STATE, weights_only=True)["iteration"] == 2
    assert not (out / "checkpoint.pt").exists()
    actors = [int(pid) for pid in pids.read_text().split()]
    assert len(actors) == 2 and all(not _running(pid, within=10) for pid in actors)  # they died with it
    script.write_text(KILLED_RUN.format(options=TINY, pause=0, pids=str(pids)))
    done = subprocess.run([sys.executable, str(script), *argv, "--resume"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    state, meta = load_checkpoint(out / "checkpoint.pt")
    expected, _ = meta_train(family, "rl2", 8, 0, registry, device="cpu",
                             distributed=Distributed(workers=1, backend="serial"), **TINY)  # fmt: skip
    assert_same_weights({k: v.numpy() for k, v in state["net"].items()}, weights_of(expected))
    assert meta["iterations"] == 8 and not (out / resume.STATE).exists()


def test_a_ray_cluster_that_cannot_be_reached_is_one_line_and_no_folder(tmp_path, capsys, tiny_cli) -> None:
    pytest.importorskip("ray")
    import ray

    if ray.is_initialized() or Path("/tmp/ray/ray_current_cluster").exists():
        pytest.skip("a Ray session is open in this process, or a cluster runs on this machine ('auto' would join it)")
    out = tmp_path / "rl2"
    assert cmd_meta_train(_args(out=out, backend="ray", address="auto")) == 2  # no cluster runs here
    err = capsys.readouterr().err.strip()
    assert "cannot start the Ray cluster at 'auto'" in err and len(err.splitlines()) == 1, err
    assert not out.exists() and not ray.is_initialized()
