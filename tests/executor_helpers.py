"""Fake match runners for the executor tests: top-level, so spawned and Ray workers can import them.

The behaviour is chosen by the task key's first word ("ok-3" -> "ok"):
ok      a deterministic ok result computed from the seed
raise   the fault result a real runner builds for a strategy exception
bug     the runner itself raises (an executor must still produce one fault)
loop    reports seat 1 step 3, then spins forever
exit    reports seat 0 step 7, then os._exit(3)
sysexit reports seat 1 step 2, then sys.exit(4)
sleep   sleeps 1 s and records its start and end wall-clock times in ``prices``
racy    returns an ok result while a thread kills the process 0-20 ms later (result and death race)
stubborn blocks the guard's timer signals, reports seat 0 step 1, then spins forever (only a kill stops it)
nap     reports seat 1 step 6, then sleeps forever (only the wall-clock backstop stops it)
kbint   reports seat 0 step 5, then raises KeyboardInterrupt (as a strategy might)

When MARKETSIM_TEST_RUN_LOG names a file, every run appends its key and process id there, so tests can
count runs and find the processes that ran them.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
import time
from dataclasses import replace

from marketsim.tournament.matches import MatchResult, MatchTask, SeatResult, fault_result

RUN_LOG = "MARKETSIM_TEST_RUN_LOG"


def make_tasks(*keys: str, time_limit: float = 5.0, wall_limit: float | None = None) -> list[MatchTask]:
    """Tasks for the fake runner, indexed in the order given, seeded from their position."""
    return [
        MatchTask(
            key=key,
            index=index,
            seed=1000 + index,
            scenario=None,
            seats=("alpha", "beta"),
            train_steps=10,
            eval_steps=5,
            time_limit=time_limit,
            wall_limit=wall_limit,
        )
        for index, key in enumerate(keys)
    ]


def ok_result(task: MatchTask) -> MatchResult:
    """The deterministic result every backend must return for an "ok" task."""
    rng = random.Random(task.seed)
    seats = tuple(
        SeatResult(
            seat=seat,
            entrant=name,
            strategy=f"{name}-strategy",
            mean_profit=rng.uniform(0, 10),
            mean_price=rng.uniform(1, 2),
            mean_units=rng.uniform(0, 100),
            profit_gain=rng.uniform(-1, 1),
        )
        for seat, name in enumerate(task.seats)
    )
    prices = tuple(tuple(rng.uniform(1, 2) for _ in range(task.eval_steps)) for _ in task.seats)
    return MatchResult(
        task.key, task.index, task.seed, task.seats, "ok", seats, consumer_surplus=rng.uniform(0, 50), prices=prices
    )


def raised_result(task: MatchTask) -> MatchResult:
    """What a real runner returns when seat 0's strategy raises at step 2."""
    return fault_result(task, "exception", 0, 2, "ValueError: boom")


def read_run_log(path: str | os.PathLike[str]) -> list[tuple[str, int]]:
    """(key, process id) of every run logged so far."""
    if not os.path.exists(path):
        return []
    with open(path) as file:
        return [(key, int(pid)) for key, pid in (line.split() for line in file if line.strip())]


def _log_run(key: str) -> None:
    path = os.environ.get(RUN_LOG)
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{key} {os.getpid()}\n".encode())
        finally:
            os.close(fd)


def _exit_after(delay: float, code: int) -> None:
    time.sleep(delay)
    os._exit(code)


def _ok(task: MatchTask, track) -> MatchResult:
    track(0, 0)
    return ok_result(task)


def _bug(task: MatchTask, track) -> MatchResult:
    track(1, 4)
    raise RuntimeError("bug in the runner")


def _loop(task: MatchTask, track) -> MatchResult:
    track(1, 3)
    while True:
        pass


def _exit(task: MatchTask, track) -> MatchResult:
    track(0, 7)
    os._exit(3)


def _sysexit(task: MatchTask, track) -> MatchResult:
    track(1, 2)
    sys.exit(4)


def _sleep(task: MatchTask, track) -> MatchResult:
    start = time.time()
    time.sleep(1.0)
    return replace(ok_result(task), prices=((start, time.time()),))


def _racy(task: MatchTask, track) -> MatchResult:
    delay = (0.0, 0.0002, 0.001, 0.02)[task.index % 4]  # before, while or after the result is sent
    threading.Thread(target=_exit_after, args=(delay, 5)).start()
    return ok_result(task)


def _stubborn(task: MatchTask, track) -> MatchResult:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM, signal.SIGPROF})
    track(0, 1)
    while True:
        pass


def _nap(task: MatchTask, track) -> MatchResult:
    track(1, 6)
    while True:
        time.sleep(0.05)


def _kbint(task: MatchTask, track) -> MatchResult:
    track(0, 5)
    raise KeyboardInterrupt


FAKE_KINDS = {
    "ok": _ok, "raise": lambda task, track: raised_result(task), "bug": _bug, "loop": _loop, "exit": _exit,
    "sysexit": _sysexit, "sleep": _sleep, "racy": _racy, "stubborn": _stubborn, "nap": _nap, "kbint": _kbint,
}  # fmt: skip


def fake_runner(task: MatchTask, tracker) -> MatchResult:
    """A stand-in for ``marketsim.tournament.play.run_match`` whose behaviour the task key's prefix chooses."""
    track = tracker or (lambda seat, step: None)
    kind = task.key.split("-")[0]
    _log_run(task.key)
    if kind not in FAKE_KINDS:
        raise ValueError(f"unknown fake task {task.key!r}")
    return FAKE_KINDS[kind](task, track)
