"""Executors: run tournament matches serially, on a local process pool or on Ray, behind one interface.

An executor takes a list of ``MatchTask`` objects and a *runner* (a picklable top-level function that
plays one match, normally ``marketsim.tournament.play.run_match``) and hands each ``MatchResult`` back to the
coordinating process through ``on_result``, in completion order.

One fault model for every backend (the kinds are listed in ``marketsim.tournament.matches.FAULT_KINDS``): a match runs
under a *guard* in the process that plays it. The guard budgets the match in CPU seconds of that process
(``ITIMER_PROF``, so a loaded machine does not turn into timeouts), stops a match that sleeps or blocks at a
generous wall-clock backstop (``ITIMER_REAL``), caps the address space the match may add (``RLIMIT_AS``) and
turns anything the match raises, ``BaseException`` included, into a fault blamed on the seat whose strategy
code was running (the runner reports it through its tracker). What a process cannot catch about itself (a
hard exit, a signal, code that ignores its timers) is caught by the coordinator, which blames the seat the
tracker last named in shared memory. A real Ctrl-C of the user (``UserInterrupt``) is never a fault: it stops
the run and kills the workers. No task is ever run twice: a match that faulted is recorded, not retried.
"""

from __future__ import annotations

import importlib
import logging
import math
import mmap
import multiprocessing as mp
import os
import signal
import struct
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Literal, Protocol

from marketsim.processes import die_with_parent
from marketsim.registry import default_registry
from marketsim.tournament.matches import (
    CpuBudgetExceeded,
    FaultKind,
    MatchResult,
    MatchTask,
    UserInterrupt,
    WallBudgetExceeded,
    fault_kind,
    fault_result,
    short_traceback,
    shorten,
)

try:
    import resource
except ImportError:  # not on Windows: no memory cap, no CPU-limit backstop
    resource = None  # type: ignore[assignment]

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
KILL_GRACE = 2.0  # seconds past the wall backstop before the coordinator kills a match that ignores its alarm


class ExecutorUnavailable(RuntimeError):
    """The chosen backend cannot run here (for Ray: the optional extra is not installed)."""


class Executor(Protocol):
    """Runs matches and reports each result once, in the caller's thread, in completion order."""

    def run(self, tasks: Sequence[MatchTask], runner: Runner, on_result: Callable[[MatchResult], None]) -> None:
        """Play every task with ``runner``; call ``on_result`` once per task; return when all are done."""
        ...


# --------------------------------------------------------------------------------------------------
# The guard: one match in the current process, under its CPU budget, wall backstop and memory cap.


class _Progress:
    """A tracker that remembers the last (seat, step) the runner reported, in this process."""

    def __init__(self) -> None:
        self.seat: int | None = None
        self.step: int | None = None

    def __call__(self, seat: int, step: int) -> None:
        self.seat, self.step = seat, step


def _raise_cpu(signum: int, frame: object) -> None:
    raise CpuBudgetExceeded


def _raise_wall(signum: int, frame: object) -> None:
    raise WallBudgetExceeded


def _address_space() -> int | None:
    """Bytes of virtual address space this process maps now (Linux /proc), or None when unknown."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


@contextmanager
def _limit(kind: int, soft: int) -> Iterator[None]:
    """Lower a resource's soft limit to ``soft`` (never above its hard limit) and restore it afterwards."""
    old_soft, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    try:
        resource.setrlimit(kind, (soft, hard))
    except (ValueError, OSError):
        yield
        return
    try:
        yield
    finally:
        resource.setrlimit(kind, (old_soft, hard))


@contextmanager
def _memory_cap(limit_mb: int | None) -> Iterator[None]:
    """Let the match add at most ``limit_mb`` MiB of address space (RLIMIT_AS); a no-op where unsupported."""
    current = _address_space() if resource is not None and limit_mb else None
    if current is None:
        yield
        return
    with _limit(resource.RLIMIT_AS, current + int(limit_mb) * 2**20):
        yield


@contextmanager
def _cpu_backstop(task: MatchTask) -> Iterator[None]:
    """In a worker: RLIMIT_CPU kills the process (SIGXCPU) if the match ignores its CPU timer for long."""
    if resource is None:
        yield
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    with _limit(resource.RLIMIT_CPU, math.ceil(used + task.time_limit + max(1.0, 0.5 * task.time_limit))):
        yield


@contextmanager
def _timers(task: MatchTask) -> Iterator[None]:
    """SIGPROF after ``time_limit`` CPU seconds and SIGALRM at the wall backstop, both raising into the match."""
    old_prof = signal.signal(signal.SIGPROF, _raise_cpu)
    old_alarm = signal.signal(signal.SIGALRM, _raise_wall)
    try:
        signal.setitimer(signal.ITIMER_PROF, task.time_limit)
        signal.setitimer(signal.ITIMER_REAL, task.wall_seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGPROF, old_prof if old_prof is not None else signal.SIG_DFL)
        signal.signal(signal.SIGALRM, old_alarm if old_alarm is not None else signal.SIG_DFL)


def _fault_message(kind: FaultKind, task: MatchTask, exc: BaseException) -> str:
    """The faults.csv message for something a match raised past its runner."""
    if kind == "timeout":
        return f"the match used more than its CPU-time budget of {task.time_limit:g} s (time_limit)"
    if kind == "wall_timeout":
        return f"the match ran past its wall-clock backstop of {task.wall_seconds:g} s (wall_limit)"
    if isinstance(exc, SystemExit):
        return f"the match called exit({exc.code!r})"
    if kind == "memory":
        return f"the match went over its memory cap of {task.memory_limit_mb} MiB: {short_traceback(exc)}"
    if isinstance(exc, Exception):
        return f"the runner raised: {short_traceback(exc)}"
    return f"the match raised {type(exc).__name__}: {short_traceback(exc)}"


def _with_usage(result: MatchResult, cpu: float, wall: float) -> MatchResult:
    """The result with the CPU and wall seconds of its match filled into its fault, if any."""
    fault = result.fault
    if fault is None or fault.cpu_seconds is not None:
        return result
    fault = replace(fault, cpu_seconds=round(cpu, 3), wall_seconds=round(wall, 3))
    return replace(result, fault=fault, elapsed=round(wall, 3))


def _call_guarded(runner: Runner, task: MatchTask, progress: _Progress, worker: bool) -> MatchResult:
    """Play one match here under its budgets; whatever it raises (but the user's Ctrl-C) becomes a fault.

    ``worker`` is True in a process that exists to play matches: it then also gets the RLIMIT_CPU backstop.
    Off the main thread (where signals cannot be delivered) the match runs without CPU or wall budget.
    """
    cpu, wall = time.process_time(), time.monotonic()
    timed = threading.current_thread() is threading.main_thread() and 0 < task.time_limit < math.inf
    try:
        with _memory_cap(task.memory_limit_mb):
            if not timed:
                result = runner(task, progress)
            elif worker:
                with _cpu_backstop(task), _timers(task):
                    result = runner(task, progress)
            else:
                with _timers(task):
                    result = runner(task, progress)
    except UserInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - the fault model: anything from the match is the match's fault
        kind = fault_kind(exc)
        message = _fault_message(kind, task, exc)
        used = time.process_time() - cpu, time.monotonic() - wall
        return fault_result(task, kind, progress.seat, progress.step, message, *used)
    return _with_usage(result, time.process_time() - cpu, time.monotonic() - wall)


@contextmanager
def _user_interrupts() -> Iterator[None]:
    """While the coordinator runs matches, a Ctrl-C raises ``UserInterrupt`` (never blamed on a strategy)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupted(signum: int, frame: object) -> None:
        raise UserInterrupt

    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


def _no_core_dumps() -> None:
    """A worker killed by its CPU backstop (SIGXCPU) must not leave core files in the user's folder."""
    if resource is not None:
        with suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))


# --------------------------------------------------------------------------------------------------
# Local process pool (and the serial backend: a pool of one)

_READY = "ready"  # the first message of a worker: its runner and the plugins are loaded, it waits for tasks

#: classifier key → the heavy optional module a strategy with that fact set imports when a seller uses it
HEAVY_IMPORTS = {"needs_torch": "torch"}


def worker_imports(tasks: Sequence[MatchTask]) -> tuple[str, ...]:
    """The heavy modules some seat of ``tasks`` needs (torch for a ``needs_torch`` strategy), sorted.

    A worker imports them when it starts, before any match's clock runs, so that the first match of a worker
    does not pay for them out of its CPU budget; a tournament whose entrants need none starts workers without.
    """
    needed: set[str] = set()
    seen: set[tuple[tuple[str, ...], tuple[str, ...], str]] = set()
    for task in tasks:
        sellers = task.scenario.expanded_sellers() if task.scenario is not None else ()
        for key in {(task.plugins, task.plugin_dirs, seller.strategy) for seller in sellers} - seen:
            seen.add(key)
            needed |= _heavy_imports_of(*key)
    return tuple(sorted(needed))


def _heavy_imports_of(plugins: tuple[str, ...], plugin_dirs: tuple[str, ...], strategy: str) -> set[str]:
    """The heavy modules ``strategy`` imports when used; none when it cannot be found here (its match says why)."""
    from marketsim.config.plugins import plugin_registry

    try:
        registry = plugin_registry(plugins, plugin_dirs)
    except ImportError:  # a plugin module outside the allowed directories: every match of it faults, in the worker
        return set()
    if strategy not in registry:
        return set()
    facts = registry.get(strategy).cls.classifier
    return {module for fact, module in HEAVY_IMPORTS.items() if facts.get(fact)}


def _prepare_worker(imports: Sequence[str]) -> None:
    """Discover the plugins and import the heavy modules the matches need, before any match's clock starts.

    A module that is not installed is skipped: the seller that needs it then fails its setup with the error
    that names the missing extra, as a fault of its seat.
    """
    default_registry()
    for module in imports:
        with suppress(ImportError):
            importlib.import_module(module)


def _worker_main(conn: Connection, progress: Any, runner: Runner, parent: int, imports: tuple[str, ...] = ()) -> None:
    """A pool worker: receive a task, play it under its guard, send the result back; stop on ``None`` or EOF."""
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's to handle
    _no_core_dumps()

    class SharedProgress(_Progress):
        def __call__(self, seat: int, step: int) -> None:
            self.seat, self.step = seat, step
            progress[0], progress[1] = seat, step  # read by the coordinator after a kill or a crash

    _prepare_worker(imports)
    conn.send(_READY)
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        result = _call_guarded(runner, task, SharedProgress(), worker=True)
        try:
            conn.send(result)
        except OSError:  # the coordinator is gone
            return
        except Exception as exc:  # an unpicklable result (nothing was written): report it instead
            conn.send(fault_result(task, "exception", None, None, f"the result could not be sent: {exc!r}"))


def _process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) process ``pid`` has used, from /proc; None where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


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
    cpu_started: float | None = None  # the worker's CPU seconds when it took the task
    cpu_seen: float | None = None  # its CPU seconds when last looked at

    @property
    def deadline(self) -> float:
        """When the coordinator kills the match: its wall backstop plus a grace for the worker's own alarm."""
        return self.started + self.task.wall_seconds + KILL_GRACE if self.task is not None else math.inf

    def last_seat_step(self) -> tuple[int | None, int | None]:
        seat, step = self.progress[0], self.progress[1]
        return (seat if seat >= 0 else None), (step if step >= 0 else None)

    def look(self) -> None:
        """Note the worker's CPU time now (while it can still be read, before a dead worker is reaped)."""
        if self.task is not None:
            self.cpu_seen = _process_cpu(self.process.pid) or self.cpu_seen

    def fault(self, kind: FaultKind, message: str) -> MatchResult:
        """The fault result of the task this worker was playing, blamed on the seat it last reported."""
        seat, step = self.last_seat_step()
        cpu = None if None in (self.cpu_seen, self.cpu_started) else self.cpu_seen - self.cpu_started
        result = fault_result(self.task, kind, seat, step, message, cpu, time.monotonic() - self.started)
        self.task = None
        return result


def _death(exitcode: int | None) -> tuple[FaultKind, str]:
    """The fault kind and message of a worker that died mid-match with ``exitcode``."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = str(-exitcode)
        if -exitcode == getattr(signal, "SIGXCPU", None):
            return "timeout", f"worker process killed by {name}: the match ignored its CPU-time budget"
        if -exitcode == signal.SIGKILL:  # not sent by us: the kernel's out-of-memory killer
            return "memory", f"worker process killed by {name} (out of memory)"
        return "crash", f"worker process killed by signal {name}"
    return "crash", f"worker process died with exit code {exitcode}"


class ProcessExecutor:
    """A pool of ``workers`` local processes (spawned, so safe with threads and torch), one match each at a time.

    Each worker plays its match under the guard (CPU budget, wall alarm, memory cap, RLIMIT_CPU backstop).
    The coordinator watches every worker: a match still running ``KILL_GRACE`` seconds past its wall backstop
    gets its worker SIGKILLed (a ``"wall_timeout"``); a worker that dies mid-match makes a fault from its exit
    status (``_death``). Either way the seat it last reported is blamed. A fresh worker replaces a lost one;
    no task is run twice. Workers live for one ``run`` call and die with the coordinator.
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
        pool: list[_Worker | None] = []
        finished = False
        imports = worker_imports(tasks)
        try:
            with _user_interrupts():
                pool = [self._start_worker(runner, imports) for _ in range(min(self.workers, remaining))]
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
                                pool[index] = self._start_worker(runner, imports)
                finished = True
        finally:
            self._shutdown(pool, graceful=finished)

    def _start_worker(self, runner: Runner, imports: tuple[str, ...] = ()) -> _Worker:
        """A fresh worker process that loads ``runner``, the plugins and ``imports``, then waits for tasks."""
        ours, theirs = self._context.Pipe()
        progress = self._context.Array("q", [-1, -1], lock=False)
        args = (theirs, progress, runner, os.getpid(), imports)
        process = self._context.Process(target=_worker_main, args=args, name="marketsim-worker", daemon=True)
        process.start()
        theirs.close()  # so that the worker's death shows as EOF on our end
        return _Worker(process, ours, progress)

    @staticmethod
    def _dispatch(worker: _Worker, pending: deque[MatchTask]) -> None:
        task = pending.popleft()
        worker.progress[0], worker.progress[1] = -1, -1
        worker.cpu_started = worker.cpu_seen = _process_cpu(worker.process.pid)
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
        deadline = min((worker.deadline for worker in pool), default=math.inf)
        timeout = None if deadline == math.inf else max(0.0, deadline - time.monotonic())
        if any(worker.broken for worker in pool):
            timeout = 0.0
        wait([worker.conn for worker in pool] + [worker.process.sentinel for worker in pool], timeout)

    def _check(self, worker: _Worker) -> tuple[MatchResult | None, bool]:
        """Collect a worker's news: (the result of its task if it ended, whether the worker is lost)."""
        worker.look()
        result = self._receive(worker)
        if worker.broken or not worker.process.is_alive():
            worker.process.join(timeout=1.0)
            killed = worker.process.is_alive()  # its pipe broke but it lives on: we end it
            if killed:
                worker.process.kill()
                worker.process.join()
            if result is None:
                result = self._receive(worker)  # whatever it sent just before dying
            if result is None and worker.task is not None:
                kind, message = _death(worker.process.exitcode)
                result = worker.fault(*(("crash", "its pipe to the coordinator broke") if killed else (kind, message)))
            elif result is None and not worker.ready:
                kind, message = _death(worker.process.exitcode)
                raise RuntimeError(
                    f"a worker process failed to start ({message}); "
                    "is the runner a top-level function of an importable module?"
                )
            return result, True
        if worker.task is not None and time.monotonic() >= worker.deadline:
            worker.look()
            worker.process.kill()
            worker.process.join()
            message = f"the match ran past its wall-clock backstop of {worker.task.wall_seconds:g} s (worker killed)"
            return worker.fault("wall_timeout", message), True
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
                with suppress(OSError):
                    worker.conn.send(None)
            else:
                worker.process.kill()
        for worker in pool:
            worker.process.join(timeout=5.0)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            self._close(worker)


# --------------------------------------------------------------------------------------------------
# Serial


class SerialExecutor:
    """Plays the matches one after the other: the reference for the other backends.

    By default each match runs in one separate worker process (a pool of one), so that the fault model is
    the process backend's: a strategy that calls ``os._exit``, hogs memory or ignores its timers is a fault
    of its seat, not the end of the tournament. ``in_process=True`` plays them in this process instead (for a
    debugger): the same CPU budget, wall alarm and memory cap apply on the main thread, but a hard exit then
    ends the caller too, and off the main thread there is no time limit at all.
    """

    def __init__(self, in_process: bool = False) -> None:
        self.in_process = in_process

    def run(self, tasks: Sequence[MatchTask], runner: Runner, on_result: Callable[[MatchResult], None]) -> None:
        """Play the tasks in order, reporting each result as soon as it is known."""
        if not self.in_process:
            ProcessExecutor(workers=1).run(tasks, runner, on_result)
            return
        with _user_interrupts():
            for task in tasks:
                on_result(_call_guarded(runner, task, _Progress(), worker=False))


# --------------------------------------------------------------------------------------------------
# Ray


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ExecutorUnavailable(RAY_MISSING) from exc
    return ray


_STARTED = "started"  # the first item a Ray match yields, with its node: its clock starts now
_PROGRESS = struct.Struct("qq")  # (seat, step) of a Ray match, in a small memory-mapped file on its node


def _progress_path(name: str) -> Path:
    """Where a Ray match keeps its (seat, step) on its node, so that it outlives a crashed worker."""
    folder = Path(tempfile.gettempdir()) / "marketsim-progress"
    folder.mkdir(exist_ok=True)
    return folder / f"{name}.bin"


class _FileProgress(_Progress):
    """A tracker that also writes (seat, step) into a memory-mapped file (no system call per step)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        with open(path, "w+b") as file:
            file.write(_PROGRESS.pack(-1, -1))
            file.flush()
            self._map = mmap.mmap(file.fileno(), _PROGRESS.size)

    def __call__(self, seat: int, step: int) -> None:
        self.seat, self.step = seat, step
        _PROGRESS.pack_into(self._map, 0, seat, step)

    def close(self) -> None:
        self._map.close()


def _ray_match(runner: Runner, task: MatchTask, name: str, imports: tuple[str, ...] = ()) -> Iterator[object]:
    """The body of a Ray task: a generator, so that the coordinator learns when and where the match starts.

    Ray runs tasks on the worker's main thread, so the guard's timers work here as in a pool worker. A fresh
    Ray worker discovers the plugins and imports ``imports`` before the match's clock starts (a reused one
    already has them).
    """
    import ray

    _prepare_worker(imports)
    path = _progress_path(name)
    progress = _FileProgress(path)
    yield _STARTED, ray.get_runtime_context().get_node_id()
    try:
        result = _call_guarded(runner, task, progress, worker=False)
    finally:
        progress.close()
    path.unlink(missing_ok=True)
    yield result


def _read_progress(name: str) -> tuple[int, int]:
    """(seat, step) a Ray match last reported on this node, (-1, -1) when unknown; removes its file."""
    path = _progress_path(name)
    try:
        seat, step = _PROGRESS.unpack(path.read_bytes()[: _PROGRESS.size])
    except (OSError, struct.error):
        return -1, -1
    path.unlink(missing_ok=True)
    return seat, step


@dataclass
class _RayMatch:
    """The coordinator's view of one submitted match."""

    task: MatchTask
    name: str  # of its progress file
    submitted: float
    started: float | None = None  # None while it waits for a worker
    node: str | None = None  # the node it runs on

    def deadline(self, kill_grace: float) -> float:
        return math.inf if self.started is None else self.started + self.task.wall_seconds + kill_grace


def connect_ray(ray: Any, address: str | None, num_cpus: int | None) -> bool:
    """Join the cluster at ``address`` or start a local Ray, unless Ray is already up; True if this call started it.

    A cluster that cannot be reached is ``ExecutorUnavailable`` (one line for the user), not Ray's traceback.
    """
    if ray.is_initialized():
        return False
    try:
        if address is not None:
            ray.init(address=address, logging_level=logging.WARNING)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, ValueError, RuntimeError, TimeoutError) as exc:
        where = f"the Ray cluster at {address!r}" if address is not None else "a local Ray"
        raise ExecutorUnavailable(f"cannot start {where}: {shorten(str(exc))}") from None
    return True


class RayExecutor:
    """Runs matches as Ray tasks on the cluster at ``address``, or on a local Ray started for the run.

    Each match is a task with ``max_retries=0`` that runs under the guard (CPU budget, wall alarm, memory cap),
    so a strategy's exceptions, exits and budget overruns are blamed on its seat exactly as on the process
    backend. The task also keeps its (seat, step) in a memory-mapped file on its node: when the worker dies
    (``os._exit``, a signal) or must be force-cancelled ``kill_grace`` seconds after its wall backstop, a small
    task pinned to that node reads the file, so the crash or timeout names the seat and step too. A match's
    clock starts when a worker starts it, not while it is queued. A Ray session already open in this process is
    used as it is; one this executor started is shut down at the end of ``run``.

    Workers of a remote cluster must be able to import marketsim and the runner (install them there, or
    connect with ``ray.init(address, runtime_env=...)`` yourself before running).
    """

    def __init__(self, address: str | None = None, num_cpus: int | None = None, kill_grace: float = KILL_GRACE) -> None:
        self._ray = _import_ray()
        self.address = address
        self.num_cpus = num_cpus
        self.kill_grace = kill_grace

    def probe(self) -> None:
        """Reach the cluster at ``address`` once and let go, so a wrong address is refused before any output."""
        if self.address is not None and connect_ray(self._ray, self.address, None):
            self._ray.shutdown()

    def run(self, tasks: Sequence[MatchTask], runner: Runner, on_result: Callable[[MatchResult], None]) -> None:
        """Play the tasks on Ray, reporting results in completion order."""
        ray = self._ray
        started_here = self._connect()
        in_flight: dict[Any, _RayMatch] = {}  # ray.ObjectRefGenerator -> its match
        try:
            with _user_interrupts():
                remote = ray.remote(max_retries=0, retry_exceptions=False)(_ray_match)
                window = 2 * max(1, int(ray.cluster_resources().get("CPU", 1)))  # keep workers busy, not flooded
                pending, imports = deque(tasks), worker_imports(tasks)
                while pending or in_flight:
                    while pending and len(in_flight) < window:
                        task, name = pending.popleft(), uuid.uuid4().hex
                        match = remote.remote(runner, task, name, imports)
                        in_flight[match] = _RayMatch(task, name, time.monotonic())
                    self._step(in_flight, on_result)
        finally:
            for generator in in_flight:  # after an error or Ctrl-C: nothing is left running
                ray.cancel(generator, force=True)
            if started_here:
                ray.shutdown()

    def _step(self, in_flight: dict[Any, _RayMatch], on_result: Callable[[MatchResult], None]) -> None:
        """Wait for the next event (an item yielded or a deadline passed) and report what it ended."""
        ray = self._ray
        deadline = min(match.deadline(self.kill_grace) for match in in_flight.values())
        timeout = None if deadline == math.inf else max(0.0, deadline - time.monotonic())
        ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=timeout)
        for generator in ready:
            result = self._advance(generator, in_flight[generator])
            if result is not None:
                del in_flight[generator]
                on_result(result)
        for generator, match in list(in_flight.items()):
            if time.monotonic() < match.deadline(self.kill_grace):
                continue
            waiting, _ = ray.wait([generator], num_returns=1, timeout=0)  # its own result may be waiting: take it
            result = self._advance(generator, match) if waiting else None
            if result is None:
                ray.cancel(generator, force=True)
                message = f"the match ran past its wall-clock backstop of {match.task.wall_seconds:g} s (task killed)"
                result = self._lost(match, "wall_timeout", message)
            del in_flight[generator]
            on_result(result)

    def _connect(self) -> bool:
        """Join the cluster at ``address`` or start a local one, unless Ray is already up; True if we started it."""
        return connect_ray(self._ray, self.address, self.num_cpus)

    def _advance(self, generator: Any, match: _RayMatch) -> MatchResult | None:
        """Take the next item a match yielded: None for its start, else its result (or the crash that ended it)."""
        try:
            item = self._ray.get(next(generator))
        except StopIteration:
            item = None
        except self._ray.exceptions.RayError as exc:  # the worker died, was killed or lost
            message = f"ray task failed ({type(exc).__name__}): {shorten(str(exc))}"
            return self._lost(match, "crash", message)
        if isinstance(item, tuple) and item[:1] == (_STARTED,):
            match.started, match.node = time.monotonic(), item[1]
            return None
        if item is not None:  # the runner's result (a match's, or a sweep point's)
            return item
        return self._lost(match, "crash", "the ray task ended without a result")

    def _lost(self, match: _RayMatch, kind: FaultKind, message: str) -> MatchResult:
        """The fault of a match whose worker is gone, blamed on the seat its progress file names."""
        seat, step = -1, -1
        if match.node is not None:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            where = NodeAffinitySchedulingStrategy(match.node, soft=False)
            reader = self._ray.remote(num_cpus=0, max_retries=1)(_read_progress).options(scheduling_strategy=where)
            with suppress(self._ray.exceptions.RayError, self._ray.exceptions.GetTimeoutError):
                seat, step = self._ray.get(reader.remote(match.name), timeout=60)
        started = match.started if match.started is not None else match.submitted
        return fault_result(match.task, kind, seat, step, message, None, time.monotonic() - started)


# --------------------------------------------------------------------------------------------------


def make_executor(
    backend: Literal["serial", "process", "ray"], workers: int = 2, address: str | None = None
) -> Executor:
    """The executor for a backend name: ``workers`` sizes the process pool (and a local Ray's CPUs);
    ``address`` is the Ray cluster to join (a local Ray is started when it is None), reached once here."""
    if backend == "serial":
        return SerialExecutor()
    if backend == "process":
        return ProcessExecutor(workers=workers)
    if backend == "ray":
        ray = RayExecutor(address=address, num_cpus=workers if address is None else None)
        ray.probe()
        return ray
    raise ValueError(f"unknown executor backend {backend!r}: choose serial, process or ray")
