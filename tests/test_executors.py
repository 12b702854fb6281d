"""Executors: identical results on every backend, faults isolated, nothing run twice.

The runners are fakes from ``executor_helpers`` whose behaviour the task key chooses; the real runner
(``marketsim.tournament.play.run_match``) is exercised by the tournament tests.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from executor_helpers import RUN_LOG, fake_runner, make_tasks, ok_result, raised_result, read_run_log

from marketsim.config.tournament import parse_tournament
from marketsim.tournament.executors import (
    ExecutorUnavailable,
    ProcessExecutor,
    RayExecutor,
    SerialExecutor,
    make_executor,
    worker_imports,
)
from marketsim.tournament.matches import MatchResult, MatchTask, fault_result
from marketsim.tournament.play import schedule
from optional import HAS_TORCH

TESTS_DIR = str(Path(__file__).parent)


def run_all(executor, tasks: list[MatchTask], runner=fake_runner) -> list[MatchResult]:
    """Results in completion order, checking they were reported in the caller's thread."""
    results: list[MatchResult] = []
    caller = threading.current_thread()

    def collect(result: MatchResult) -> None:
        assert threading.current_thread() is caller
        results.append(result)

    executor.run(tasks, runner, collect)
    return results


def by_index(results: list[MatchResult]) -> dict[int, MatchResult]:
    indices = [result.index for result in results]
    assert len(indices) == len(set(indices)), f"a task was reported twice: {sorted(indices)}"
    return {result.index: result for result in results}


def fault_of(result: MatchResult) -> tuple:
    """The comparable part of a fault result: its NaN surplus never equals itself after a pickle round trip."""
    assert result.status == "fault" and result.fault is not None
    fault = result.fault
    return (result.key, result.index, fault.kind, fault.entrant, fault.seat, fault.step)


def assert_same_fault(result: MatchResult, expected: MatchResult) -> None:
    assert fault_of(result) == fault_of(expected) and result.fault.message == expected.fault.message


def assert_ok_unchanged(results: dict[int, MatchResult], tasks: list[MatchTask]) -> None:
    for task in tasks:
        if task.key.startswith("ok"):
            assert results[task.index] == ok_result(task)


def assert_each_ran_once(log: Path, tasks: list[MatchTask]) -> None:
    assert Counter(key for key, _ in read_run_log(log)) == Counter(task.key for task in tasks)


@pytest.fixture
def run_log(tmp_path, monkeypatch) -> Path:
    """A run log the fake runner appends to (inherited by spawned workers)."""
    path = tmp_path / "runs.log"
    monkeypatch.setenv(RUN_LOG, str(path))
    return path


CLEAN_KEYS = ("ok-0", "ok-1", "raise-2", "ok-3", "bug-4", "ok-5", "ok-6", "ok-7")


# --- serial ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("in_process", [False, True], ids=["isolated", "in_process"])
def test_serial_runs_every_task_in_order(in_process):
    tasks = make_tasks(*CLEAN_KEYS)
    results = run_all(SerialExecutor(in_process=in_process), tasks)
    assert [result.index for result in results] == list(range(len(tasks)))
    assert_same_fault(results[2], raised_result(tasks[2]))
    assert results[2].fault.cpu_seconds >= 0 and results[2].fault.wall_seconds >= 0  # filled in by the guard
    assert_ok_unchanged(by_index(results), tasks)


@pytest.mark.parametrize("in_process", [False, True], ids=["isolated", "in_process"])
def test_serial_turns_timeouts_exits_and_runner_errors_into_faults(in_process):
    keys = ("ok-0", "loop-1", "bug-2", "sysexit-3", "ok-4", "kbint-5", "nap-6")
    tasks = make_tasks(*keys, time_limit=0.5, wall_limit=60.0)
    tasks[6] = replace(tasks[6], wall_limit=1.0)  # only the sleeper meets its wall-clock backstop
    before = {number: signal.getsignal(number) for number in (signal.SIGALRM, signal.SIGPROF, signal.SIGINT)}
    results = by_index(run_all(SerialExecutor(in_process=in_process), tasks))
    assert {number: signal.getsignal(number) for number in before} == before
    assert signal.getitimer(signal.ITIMER_REAL) == signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)
    assert fault_of(results[1]) == ("loop-1", 1, "timeout", "beta", 1, 3)
    assert "CPU-time budget of 0.5 s" in results[1].fault.message
    assert results[1].fault.cpu_seconds >= 0.45  # the budget is CPU time: it ran out after about half a CPU second
    assert fault_of(results[2]) == ("bug-2", 2, "exception", "beta", 1, 4)
    assert "RuntimeError: bug in the runner" in results[2].fault.message
    assert fault_of(results[3]) == ("sysexit-3", 3, "crash", "beta", 1, 2)
    assert "exit(4)" in results[3].fault.message
    assert fault_of(results[5]) == ("kbint-5", 5, "crash", "alpha", 0, 5)  # a strategy's Ctrl-C is its fault
    assert fault_of(results[6]) == ("nap-6", 6, "wall_timeout", "beta", 1, 6)  # sleeping uses no CPU: wall backstop
    assert results[6].fault.cpu_seconds < 0.5 <= results[6].fault.wall_seconds
    assert_ok_unchanged(results, tasks)


def test_serial_survives_a_hard_exit():
    tasks = make_tasks("exit-0", "ok-1")
    results = by_index(run_all(SerialExecutor(), tasks))
    assert fault_of(results[0]) == ("exit-0", 0, "crash", "alpha", 0, 7)
    assert "exit code 3" in results[0].fault.message
    assert results[1] == ok_result(tasks[1])


def test_serial_has_no_time_limit_off_the_main_thread():
    (task,) = make_tasks("sleep-0", time_limit=0.2, wall_limit=0.2)
    results: list[MatchResult] = []
    runner = SerialExecutor(in_process=True)
    thread = threading.Thread(target=lambda: results.extend(run_all(runner, [task])))
    thread.start()
    thread.join()
    assert [result.status for result in results] == ["ok"]


# --- process pool ---------------------------------------------------------------------------------


def test_process_pool_results_equal_serial(run_log):
    tasks = make_tasks(*CLEAN_KEYS)
    serial = by_index(run_all(SerialExecutor(), tasks))
    run_log.unlink()
    pooled = by_index(run_all(ProcessExecutor(workers=2), tasks))
    assert_same_fault(pooled[2], raised_result(tasks[2]))
    assert fault_of(pooled[4]) == fault_of(serial[4])
    assert_ok_unchanged(pooled, tasks)
    assert_each_ran_once(run_log, tasks)


def test_process_pool_isolates_timeouts_and_crashes(run_log):
    keys = ("exit-0", "ok-1", "loop-2", "ok-3", "sysexit-4", "ok-5", "raise-6", "ok-7", "ok-8", "stubborn-9")
    tasks = make_tasks(*keys, time_limit=1.0)
    results = by_index(run_all(ProcessExecutor(workers=2), tasks))
    assert sorted(results) == list(range(len(tasks)))
    faults = {index: fault_of(result) for index, result in results.items() if result.status == "fault"}
    assert faults == {
        0: ("exit-0", 0, "crash", "alpha", 0, 7),
        2: ("loop-2", 2, "timeout", "beta", 1, 3),
        4: ("sysexit-4", 4, "crash", "beta", 1, 2),
        6: ("raise-6", 6, "exception", "alpha", 0, 2),
        9: ("stubborn-9", 9, "timeout", "alpha", 0, 1),  # ignores its CPU timer: RLIMIT_CPU ends it
    }
    assert "exit code 3" in results[0].fault.message
    assert "CPU-time budget of 1 s" in results[2].fault.message
    assert "SIGXCPU" in results[9].fault.message and results[9].fault.cpu_seconds >= 1.0
    assert_ok_unchanged(results, tasks)
    assert_each_ran_once(run_log, tasks)
    log = read_run_log(run_log)
    for died in ("exit-0", "stubborn-9"):  # a dead worker runs no more: its fatal match was its last
        pid = dict(log)[died]
        assert [key for key, by in log if by == pid][-1] == died


def test_process_pool_runs_two_matches_at_once():
    tasks = make_tasks("sleep-0", "sleep-1")
    results = run_all(ProcessExecutor(workers=2), tasks)
    (start_a, end_a), (start_b, end_b) = (result.prices[0] for result in results)
    assert start_a < end_b and start_b < end_a  # the two sleeps overlapped
    assert max(end_a, end_b) - min(start_a, start_b) < 1.8


def test_process_pool_reports_once_when_a_result_races_a_death(run_log):
    tasks = make_tasks("racy-0", "racy-1", "racy-2", "racy-3", "ok-4", "ok-5", "ok-6")
    results = by_index(run_all(ProcessExecutor(workers=2), tasks))
    assert sorted(results) == list(range(len(tasks)))
    for task in tasks:
        result = results[task.index]
        assert result == ok_result(task) or result.fault.kind == "crash"
    runs = Counter(key for key, _ in read_run_log(run_log))
    assert max(runs.values()) == 1  # a crash is never retried


def test_process_pool_kills_its_workers_on_keyboard_interrupt(run_log):
    tasks = make_tasks("sleep-0", "sleep-1", "ok-2", "ok-3")

    def interrupt(result: MatchResult) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ProcessExecutor(workers=2).run(tasks, fake_runner, interrupt)
    pids = {pid for _, pid in read_run_log(run_log)}
    assert len(pids) == 2  # one finished its sleep, the other was still sleeping
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert multiprocessing.active_children() == []


def test_process_pool_kills_a_match_that_ignores_every_timer(run_log):
    tasks = make_tasks("stubborn-0", "ok-1", time_limit=60.0, wall_limit=60.0)  # RLIMIT_CPU would take a minute
    tasks[0] = replace(tasks[0], wall_limit=1.0)
    results = by_index(run_all(ProcessExecutor(workers=1), tasks))
    assert fault_of(results[0]) == ("stubborn-0", 0, "wall_timeout", "alpha", 0, 1)
    assert "worker killed" in results[0].fault.message
    assert results[1] == ok_result(tasks[1])


def test_workers_die_with_their_coordinator(tmp_path, run_log):
    script = (
        "from executor_helpers import fake_runner, make_tasks\n"
        "from marketsim.tournament.executors import ProcessExecutor\n"
        "ProcessExecutor(workers=2).run(make_tasks('nap-0', 'nap-1', wall_limit=600), fake_runner, print)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [TESTS_DIR, os.environ.get("PYTHONPATH")]))}
    coordinator = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        pids = _wait_for(lambda: {pid for _, pid in read_run_log(run_log)}, 2)
    finally:
        coordinator.kill()  # SIGKILL: it cannot clean up, its workers must go by themselves
        coordinator.wait()
    assert _wait_for(lambda: {pid for pid in pids if _alive(pid)}, 0) == set()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie awaiting its (dead) parent's reaper counts as gone
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def _wait_for(probe, size: int, attempts: int = 600):
    """Poll ``probe`` until it returns a collection of ``size`` items (or give up and return the last one)."""
    found = probe()
    for _ in range(attempts):
        if len(found) == size:
            break
        time.sleep(0.1)
        found = probe()
    return found


def test_process_pool_needs_a_worker():
    with pytest.raises(ValueError, match="at least 1"):
        ProcessExecutor(workers=0)


# --- choosing a backend ---------------------------------------------------------------------------


def test_make_executor_builds_each_backend():
    assert isinstance(make_executor("serial"), SerialExecutor)
    pool = make_executor("process", workers=3)
    assert isinstance(pool, ProcessExecutor) and pool.workers == 3
    with pytest.raises(ValueError, match="unknown executor backend"):
        make_executor("threads")  # type: ignore[arg-type]


def test_ray_backend_without_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ExecutorUnavailable, match=r"pip install 'marketsim\[ray\]'"):
        make_executor("ray")


# --- workers start without heavy optional dependencies unless an entrant needs one (issue 15, item 5) -------

HEAVY = ("torch", "gymnasium", "pettingzoo", "stable_baselines3", "openai", "ray")
DUOPOLY = """
name: imports
market:
  name: duopoly
  steps: 1
  consumers: {size: 1, wtp: {distribution: constant, value: 0.0}, mu: 0.25}
  demand: {mode: expected}
  sellers:
    - {name: seat, strategy: fixed_price, price_min: 1.0, price_max: 2.5}
entrants:
  - {name: fixed, strategy: fixed_price}
  - {name: other, strategy: SECOND}
self_play: false
repetitions: 1
"""


def heavy_modules_runner(task: MatchTask, tracker=None) -> MatchResult:
    """A fake runner that reports, as its fault message, the heavy modules its process had when the match began."""
    return fault_result(task, "exception", None, None, json.dumps([name for name in HEAVY if name in sys.modules]))


def duopoly_tasks(second: str) -> list[MatchTask]:
    """The two matches of ``fixed_price`` against ``second``."""
    return schedule(parse_tournament(DUOPOLY.replace("SECOND", second), "t.yaml"))


def heavy_at_start(executor, tasks: list[MatchTask]) -> list[list[str]]:
    """For each task, the heavy modules its worker had imported when the match began."""
    return [json.loads(result.fault.message) for result in run_all(executor, tasks, heavy_modules_runner)]


def test_workers_import_torch_only_when_an_entrant_needs_it():
    assert worker_imports(duopoly_tasks("cost_plus")) == ()
    assert worker_imports(make_tasks("ok-0")) == ()  # tasks without a market need nothing
    if HAS_TORCH:
        assert worker_imports(duopoly_tasks("dqn")) == ("torch",)


def test_pool_workers_start_without_heavy_dependencies():
    assert heavy_at_start(ProcessExecutor(workers=1), duopoly_tasks("cost_plus")) == [[], []]


@pytest.mark.slow  # a worker that imports torch (seconds)
@pytest.mark.skipif(not HAS_TORCH, reason="torch (the deep extra) is missing")
def test_pool_workers_import_torch_before_the_first_match_that_needs_it():
    """The first match of a worker does not pay for importing torch out of its CPU budget."""
    found = heavy_at_start(ProcessExecutor(workers=1), duopoly_tasks("dqn"))
    assert all("torch" in modules and "gymnasium" not in modules for modules in found), found


# --- Ray (a local 2-CPU cluster for the module) -----------------------------------------------------


@pytest.fixture(scope="module")
def ray_log(tmp_path_factory):
    """One local Ray for these tests; its workers can import the fake runners and write the run log."""
    ray = pytest.importorskip("ray")
    log = tmp_path_factory.mktemp("ray") / "runs.log"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [TESTS_DIR, os.environ.get("PYTHONPATH")])))
        patch.setenv(RUN_LOG, str(log))
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            yield log
        finally:
            ray.shutdown()


@pytest.fixture
def ray_run_log(ray_log) -> Path:
    ray_log.write_text("")
    return ray_log


@pytest.mark.slow  # Ray starts a local cluster (about 5 s); the pool tests keep the fast suite's executor checks
def test_ray_results_equal_serial(ray_run_log):
    tasks = make_tasks(*CLEAN_KEYS)
    serial = by_index(run_all(SerialExecutor(), tasks))
    ray_run_log.write_text("")
    results = by_index(run_all(make_executor("ray"), tasks))
    assert_same_fault(results[2], serial[2])
    assert fault_of(results[4]) == fault_of(serial[4])
    assert_ok_unchanged(results, tasks)
    assert_each_ran_once(ray_run_log, tasks)


@pytest.mark.slow  # worker processes or full CLI runs: the slow suite keeps the fast one near 5 min
def test_ray_isolates_timeouts_and_crashes(ray_run_log):
    keys = ("ok-0", "loop-1", "exit-2", "sysexit-3", "ok-4", "raise-5", "ok-6", "kbint-7", "nap-8")
    tasks = make_tasks(*keys, time_limit=1.0, wall_limit=60.0)
    tasks[8] = replace(tasks[8], wall_limit=1.0)  # only the sleeper meets its wall-clock backstop
    results = by_index(run_all(RayExecutor(), tasks))
    faults = {index: fault_of(result) for index, result in results.items() if result.status == "fault"}
    assert faults == {  # the same kinds and blame as on the process backend
        1: ("loop-1", 1, "timeout", "beta", 1, 3),
        2: ("exit-2", 2, "crash", "alpha", 0, 7),  # read from the dead worker's progress file
        3: ("sysexit-3", 3, "crash", "beta", 1, 2),
        5: ("raise-5", 5, "exception", "alpha", 0, 2),
        7: ("kbint-7", 7, "crash", "alpha", 0, 5),
        8: ("nap-8", 8, "wall_timeout", "beta", 1, 6),
    }
    assert "WorkerCrashedError" in results[2].fault.message
    assert_ok_unchanged(results, tasks)
    assert_each_ran_once(ray_run_log, tasks)


@pytest.mark.slow  # Ray starts a local cluster (about 5 s); the pool tests keep the fast suite's executor checks
def test_ray_kills_a_match_that_ignores_its_alarm(ray_run_log):
    tasks = make_tasks("stubborn-0", "ok-1", time_limit=0.5, wall_limit=0.5)
    results = by_index(run_all(RayExecutor(kill_grace=0.5), tasks))
    assert fault_of(results[0]) == ("stubborn-0", 0, "wall_timeout", "alpha", 0, 1)  # blamed, though killed
    assert "task killed" in results[0].fault.message
    assert results[1] == ok_result(tasks[1])


@pytest.mark.slow  # Ray starts a local cluster (about 5 s); the pool tests keep the fast suite's executor checks
def test_ray_starts_and_stops_only_its_own_session(ray_run_log, monkeypatch):
    import ray

    (task,) = make_tasks("ok-0")
    results = run_all(RayExecutor(), [task])  # Ray is already up: used as it is, left running
    assert results == [ok_result(task)] and ray.is_initialized()

    calls: list[tuple[str, dict]] = []
    up = [False]  # pretend Ray is down; "init" and "shutdown" only record (the real session stays up)

    def init(**kwargs) -> None:
        calls.append(("init", kwargs))
        up[0] = True

    def shutdown() -> None:
        calls.append(("shutdown", {}))
        up[0] = False

    monkeypatch.setattr(ray, "is_initialized", lambda: up[0])
    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "shutdown", shutdown)
    assert run_all(make_executor("ray", workers=3), [task]) == [ok_result(task)]
    assert run_all(make_executor("ray", address="ray://head:10001"), [task]) == [ok_result(task)]
    assert [name for name, _ in calls] == ["init", "shutdown"] + ["init", "shutdown"] * 2  # a cluster: probed first
    assert calls[0][1]["num_cpus"] == 3 and calls[0][1]["include_dashboard"] is False
    assert calls[2][1]["address"] == calls[4][1]["address"] == "ray://head:10001"


@pytest.mark.slow  # 3 s on a busy machine: the pool's test above keeps the fast suite's check
def test_ray_workers_start_without_heavy_dependencies(ray_run_log):
    found = heavy_at_start(RayExecutor(), duopoly_tasks("cost_plus"))
    assert found == [["ray"], ["ray"]]  # a Ray worker runs on Ray, and on nothing else that is heavy


def test_a_ray_cluster_that_cannot_be_reached_is_refused_when_the_executor_is_made(monkeypatch):
    ray = pytest.importorskip("ray")

    def unreachable(**kwargs) -> None:
        raise ConnectionError("Could not find any running Ray instance.\nmore lines")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", unreachable)
    with pytest.raises(ExecutorUnavailable, match=r"cannot start the Ray cluster at 'ray://head:1': Could not find"):
        make_executor("ray", address="ray://head:1")  # before a command opens its output folder
