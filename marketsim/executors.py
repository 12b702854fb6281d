"""Executors: run tournament matches serially, on a local process pool or on Ray, behind one interface.

An executor takes a list of ``MatchTask`` objects and a *runner* (a picklable top-level function that
plays one match, normally ``marketsim.tournament.run_match``) and hands each ``MatchResult`` back to the
coordinating process through ``on_result``, in completion order. The runner itself turns strategy
exceptions into fault results; the executor adds what a runner cannot catch about itself:

- a match running past ``task.time_limit``  -> fault ``"timeout"``,
- a match that kills its worker (``os._exit``, a segfault, ``sys.exit``) -> fault ``"crash"``,
- a runner that raises anyway (a bug)  -> fault ``"exception"``.

Either way the fault names the last (seat, step) the runner reported through its tracker, and the
tournament goes on. No task is ever run twice: a match that faulted is recorded, not retried.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from typing import Any, Literal, Protocol

from marketsim.matches import FaultKind, MatchResult, MatchTask, fault_result, short_traceback, shorten
from marketsim.registry import default_registry

Tracker = Callable[[int, int], None]
Runner = Callable[[MatchTask, Tracker | None], MatchResult]

__all__ = [
    "Executor",
    "ExecutorUnavailable",
    "ProcessExecutor",
    "RayExecutor",
    "Runner",
    "SerialExecutor",
    "Tracker",
    "make_executor",
]

RAY_MISSING = "the ray backend needs the optional extra: pip install 'marketsim[ray]'"


class ExecutorUnavailable(RuntimeError):
    """The chosen backend cannot run here (for Ray: the optional extra is not installed)."""


class Executor(Protocol):
    """Runs matches and reports each result once, in the caller's thread, in completion order."""

    def run(self, tasks: Sequence[MatchTask], runner: Runner, on_result: Callable[[MatchResult], None]) -> None:
        """Play every task with ``runner``; call ``on_result`` once per task; return when all are done."""
        ...


# --------------------------------------------------------------------------------------------------
# Shared pieces: progress tracking, fault results, running one match in the current process.


class _Progress:
    """A tracker that remembers the last (seat, step) the runner reported, in this process."""

    def __init__(self) -> None:
        self.seat: int | None = None
        self.step: int | None = None

    def __call__(self, seat: int, step: int) -> None:
        self.seat, self.step = seat, step


class _MatchTimeout(BaseException):
    """Raised by SIGALRM inside a match; a BaseException so that ``except Exception`` does not swallow it."""


def _fault(
    task: MatchTask, kind: FaultKind, seat: int | None, step: int | None, message: str, elapsed: float = 0.0
) -> MatchResult:
    return replace(fault_result(task, kind, seat, step, message), elapsed=elapsed)


def _timeout_message(task: MatchTask, how: str) -> str:
    return f"match exceeded its time limit of {task.time_limit:g} s ({how})"


def _call_runner(runner: Runner, task: MatchTask, progress: _Progress) -> MatchResult:
    """Run one match; a runner that raises or exits becomes a fault instead of ending the tournament."""
    start = time.monotonic()
    try:
        return runner(task, progress)
    except Exception as exc:
        message = f"the runner raised: {short_traceback(exc)}"
        return _fault(task, "exception", progress.seat, progress.step, message, time.monotonic() - start)
    except SystemExit as exc:
        message = f"the match called exit({exc.code!r})"
        return _fault(task, "crash", progress.seat, progress.step, message, time.monotonic() - start)


def _raise_timeout(signum: int, frame: object) -> None:
    raise _MatchTimeout


def _run_with_alarm(runner: Runner, task: MatchTask) -> MatchResult:
    """Run one match here, stopped by SIGALRM after ``task.time_limit`` when on the main thread.

    Off the main thread (where signals cannot be delivered) the match runs without a limit.
    Code that catches ``BaseException`` or hangs inside C without returning to Python escapes the alarm.
    """
    progress = _Progress()
    if threading.current_thread() is not threading.main_thread() or not 0 < task.time_limit < float("inf"):
        return _call_runner(runner, task, progress)
    start = time.monotonic()
    previous = signal.signal(signal.SIGALRM, _raise_timeout)
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, task.time_limit)
            try:
                return _call_runner(runner, task, progress)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _MatchTimeout:
            message = _timeout_message(task, "interrupted")
            return _fault(task, "timeout", progress.seat, progress.step, message, time.monotonic() - start)
    finally:
        signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)


# --------------------------------------------------------------------------------------------------
# Serial


class SerialExecutor:
    """Runs every match in this process, one after the other; the reference for the other backends.

    The time limit is enforced with SIGALRM when running on the main thread, not at all otherwise.
    A match that kills its process kills the tournament with it: use the process backend to isolate those.
    """

    def run(self, tasks: Sequence[MatchTask], runner: Runner, on_result: Callable[[MatchResult], None]) -> None:
        """Play the tasks in order, reporting each result as soon as it is known."""
        for task in tasks:
            on_result(_run_with_alarm(runner, task))


# --------------------------------------------------------------------------------------------------
# Local process pool

_READY = "ready"  # the first message of a worker: its runner and the plugins are loaded, it waits for tasks


def _worker_main(conn: Connection, progress: Any, runner: Runner) -> None:
    """A pool worker: receive a task, play it, send the result back; stop on ``None`` or a closed pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's to handle

    class SharedProgress(_Progress):
        def __call__(self, seat: int, step: int) -> None:
            self.seat, self.step = seat, step
            progress[0], progress[1] = seat, step  # read by the coordinator after a kill or a crash

    default_registry()  # discover plugins (imports torch for the deep learners) before any match's clock starts
    conn.send(_READY)
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        tracker = SharedProgress()
        result = _call_runner(runner, task, tracker)
        try:
            conn.send(result)
        except OSError:  # the coordinator is gone
            return
        except Exception as exc:  # an unpicklable result (nothing was written): report it instead
            conn.send(_fault(task, "exception", None, None, f"the result could not be sent: {exc!r}"))


@dataclass
class _Worker:
    """The coordinator's view of one worker process and the task it is playing."""

    process: Any  # multiprocessing.process.BaseProcess
    conn: Connection
    progress: Any  # shared array: last (seat, step), -1 when none
    ready: bool = False
    broken: bool = False  # its pipe closed or failed: it is dead or dying
    task: MatchTask | None = None
    started: float = 0.0

    @property
    def deadline(self) -> float:
        return self.started + self.task.time_limit if self.task is not None else float("inf")

    def last_seat_step(self) -> tuple[int | None, int | None]:
        seat, step = self.progress[0], self.progress[1]
        return (seat if seat >= 0 else None), (step if step >= 0 else None)


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"worker process killed by signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"worker process killed by signal {-exitcode}"
    return f"worker process died with exit code {exitcode}"


class ProcessExecutor:
    """A pool of ``workers`` local processes (spawned, so safe with threads and torch), one match each at a time.

    The coordinator watches every worker: a match past its time limit (counted from when its worker took
    it) gets its worker SIGKILLed and becomes a ``"timeout"`` fault; a worker that dies mid-match makes a
    ``"crash"`` fault naming its exit code. A fresh worker replaces a lost one; no task is run twice.
    Worker processes live for one ``run`` call.
    """

    def __init__(self, workers: int = 2) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        self._context = mp.get_context("spawn")

    def run(self, tasks: Sequence[MatchTask], runner: Runner, on_result: Callable[[MatchResult], None]) -> None:
        """Play the tasks on the pool, reporting results in completion order."""
        pending = deque(tasks)
        remaining = len(pending)
        pool: list[_Worker | None] = [self._start_worker(runner) for _ in range(min(self.workers, remaining))]
        finished = False
        try:
            while remaining:
                pool = [worker for worker in pool if worker is not None]
                for worker in pool:
                    if worker.ready and worker.task is None and not worker.broken and pending:
                        self._dispatch(worker, pending)
                self._wait(pool)
                for index, worker in enumerate(pool):
                    result, lost = self._check(worker)
                    if result is not None:
                        remaining -= 1
                        on_result(result)
                    if lost:
                        self._close(worker)
                        pool[index] = None
                        if pending:  # replaced only while tasks wait for a worker
                            pool[index] = self._start_worker(runner)
            finished = True
        finally:
            self._shutdown(pool, graceful=finished)

    def _start_worker(self, runner: Runner) -> _Worker:
        ours, theirs = self._context.Pipe()
        progress = self._context.Array("q", [-1, -1], lock=False)
        process = self._context.Process(
            target=_worker_main, args=(theirs, progress, runner), name="marketsim-worker", daemon=True
        )
        process.start()
        theirs.close()  # so that the worker's death shows as EOF on our end
        return _Worker(process, ours, progress)

    @staticmethod
    def _dispatch(worker: _Worker, pending: deque[MatchTask]) -> None:
        task = pending.popleft()
        worker.progress[0], worker.progress[1] = -1, -1
        try:
            worker.conn.send(task)
        except OSError:  # it died while idle: it never got the task, which goes back to the queue
            pending.appendleft(task)
            worker.broken = True
            return
        worker.task, worker.started = task, time.monotonic()

    @staticmethod
    def _wait(pool: list[_Worker]) -> None:
        """Sleep until a worker speaks or dies, or the nearest deadline passes."""
        deadline = min((worker.deadline for worker in pool), default=float("inf"))
        timeout = None if deadline == float("inf") else max(0.0, deadline - time.monotonic())
        if any(worker.broken for worker in pool):
            timeout = 0.0
        wait([worker.conn for worker in pool] + [worker.process.sentinel for worker in pool], timeout)

    def _check(self, worker: _Worker) -> tuple[MatchResult | None, bool]:
        """Collect a worker's news: (the result of its task if it ended, whether the worker is lost)."""
        result = self._receive(worker)
        if worker.broken or not worker.process.is_alive():
            worker.process.join(timeout=1.0)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            if result is None:
                result = self._receive(worker)  # whatever it sent just before dying
            if result is None and worker.task is not None:
                seat, step = worker.last_seat_step()
                elapsed = time.monotonic() - worker.started
                result = _fault(worker.task, "crash", seat, step, _describe_exit(worker.process.exitcode), elapsed)
                worker.task = None
            elif result is None and not worker.ready:
                raise RuntimeError(
                    f"a worker process failed to start ({_describe_exit(worker.process.exitcode)}); "
                    "is the runner a top-level function of an importable module?"
                )
            return result, True
        if worker.task is not None and time.monotonic() >= worker.deadline:
            worker.process.kill()
            worker.process.join()
            seat, step = worker.last_seat_step()
            elapsed = time.monotonic() - worker.started
            result = _fault(worker.task, "timeout", seat, step, _timeout_message(worker.task, "worker killed"), elapsed)
            worker.task = None
            return result, True
        return result, False

    @staticmethod
    def _receive(worker: _Worker) -> MatchResult | None:
        """Read every waiting message; the result of the worker's task, if one came, ends that task."""
        result = None
        while not worker.broken and worker.conn.poll():
            try:
                message = worker.conn.recv()
            except (EOFError, OSError):
                worker.broken = True
                break
            if message == _READY:
                worker.ready = True
            elif worker.task is not None:
                result, worker.task = message, None
        return result

    @staticmethod
    def _close(worker: _Worker) -> None:
        worker.conn.close()
        worker.process.close()

    def _shutdown(self, pool: list[_Worker | None], graceful: bool) -> None:
        """Ask idle workers to stop (or kill them all after an error or Ctrl-C) and reap them."""
        pool = [worker for worker in pool if worker is not None]
        for worker in pool:
            if graceful:
                try:
                    worker.conn.send(None)
                except OSError:
                    pass
            else:
                worker.process.kill()
        for worker in pool:
            worker.process.join(timeout=5.0)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            self._close(worker)


# --------------------------------------------------------------------------------------------------
# Ray


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ExecutorUnavailable(RAY_MISSING) from exc
    return ray


_STARTED = "started"  # the first item a Ray match yields: its clock starts now


def _ray_match(runner: Runner, task: MatchTask) -> Iterator[object]:
    """The body of a Ray task: a generator, so that the coordinator learns when the match really starts.

    Ray runs tasks on the worker's main thread, so SIGALRM stops the match at its time limit here.
    """
    yield _STARTED
    yield _run_with_alarm(runner, task)


@dataclass
class _RayMatch:
    """The coordinator's view of one submitted match."""

    task: MatchTask
    submitted: float
    started: float | None = None  # None while it waits for a worker

    def deadline(self, kill_grace: float) -> float:
        return float("inf") if self.started is None else self.started + self.task.time_limit + kill_grace


class RayExecutor:
    """Runs matches as Ray tasks on the cluster at ``address``, or on a local Ray started for the run.

    Each match is a task with ``max_retries=0``: a match that kills its worker becomes a ``"crash"`` fault
    (Ray does not say at which seat or step). The time limit is enforced inside the task with SIGALRM, which
    names the seat and step; a match that ignores it (stuck in C code) is force-cancelled by the coordinator
    ``kill_grace`` seconds later. A match's clock starts when a worker starts it, not while it is queued.
    A Ray session already open in this process is used as it is; one this executor started is shut down at
    the end of ``run``.

    Workers of a remote cluster must be able to import marketsim and the runner (install them there, or
    connect with ``ray.init(address, runtime_env=...)`` yourself before running).
    """

    def __init__(self, address: str | None = None, num_cpus: int | None = None, kill_grace: float = 5.0) -> None:
        self._ray = _import_ray()
        self.address = address
        self.num_cpus = num_cpus
        self.kill_grace = kill_grace

    def run(self, tasks: Sequence[MatchTask], runner: Runner, on_result: Callable[[MatchResult], None]) -> None:
        """Play the tasks on Ray, reporting results in completion order."""
        ray = self._ray
        started_here = self._connect()
        in_flight: dict[Any, _RayMatch] = {}  # ray.ObjectRefGenerator -> its match
        try:
            remote = ray.remote(max_retries=0, retry_exceptions=False)(_ray_match)
            window = 2 * max(1, int(ray.cluster_resources().get("CPU", 1)))  # keep workers busy, not flooded
            pending = deque(tasks)
            while pending or in_flight:
                while pending and len(in_flight) < window:
                    task = pending.popleft()
                    in_flight[remote.remote(runner, task)] = _RayMatch(task, time.monotonic())
                deadline = min(match.deadline(self.kill_grace) for match in in_flight.values())
                timeout = None if deadline == float("inf") else max(0.0, deadline - time.monotonic())
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=timeout)
                for generator in ready:
                    result = self._advance(generator, in_flight[generator])
                    if result is not None:
                        del in_flight[generator]
                        on_result(result)
                for generator, match in list(in_flight.items()):
                    if time.monotonic() >= match.deadline(self.kill_grace):
                        ray.cancel(generator, force=True)
                        del in_flight[generator]
                        elapsed = time.monotonic() - match.started
                        message = _timeout_message(match.task, "task killed")
                        on_result(_fault(match.task, "timeout", None, None, message, elapsed))
        finally:
            for generator in in_flight:  # after an error or Ctrl-C: nothing is left running
                ray.cancel(generator, force=True)
            if started_here:
                ray.shutdown()

    def _connect(self) -> bool:
        """Join the cluster at ``address`` or start a local one, unless Ray is already up; True if we started it."""
        ray = self._ray
        if ray.is_initialized():
            return False
        if self.address is not None:
            ray.init(address=self.address, logging_level=logging.WARNING)
        else:
            ray.init(
                num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING
            )
        return True

    def _advance(self, generator: Any, match: _RayMatch) -> MatchResult | None:
        """Take the next item a match yielded: None for its start, else its result (or the crash that ended it)."""
        try:
            item = self._ray.get(next(generator))
        except StopIteration:
            item = None
        except self._ray.exceptions.RayError as exc:  # the worker died, was killed or lost
            message = f"ray task failed ({type(exc).__name__}): {shorten(str(exc))}"
            return _fault(match.task, "crash", None, None, message, time.monotonic() - match.submitted)
        if item == _STARTED:
            match.started = time.monotonic()
            return None
        if isinstance(item, MatchResult):
            return item
        return _fault(match.task, "crash", None, None, f"the ray task ended without a result: {item!r}")


# --------------------------------------------------------------------------------------------------


def make_executor(
    backend: Literal["serial", "process", "ray"], workers: int = 2, address: str | None = None
) -> Executor:
    """The executor for a backend name: ``workers`` sizes the process pool (and a local Ray's CPUs);
    ``address`` is the Ray cluster to join (a local Ray is started when it is None)."""
    if backend == "serial":
        return SerialExecutor()
    if backend == "process":
        return ProcessExecutor(workers=workers)
    if backend == "ray":
        return RayExecutor(address=address, num_cpus=workers if address is None else None)
    raise ValueError(f"unknown executor backend {backend!r}: choose serial, process or ray")
