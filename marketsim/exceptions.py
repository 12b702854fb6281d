"""A base for the project's exceptions that makes them survive pickling, i.e. travel between processes.

Python pickles an exception as ``cls(*self.args)`` plus its ``__dict__``. An exception whose ``__init__``
takes other arguments than its message (``StrategyError(seat, seller, step, error)``) therefore cannot be
unpickled, and a worker process that raises one breaks the whole process pool. ``PortableError``
rebuilds the exception without calling ``__init__`` and replaces any attribute that would not survive the
trip (an exception from a plugin with its own odd constructor) by a plain ``RuntimeError`` with its text.
"""

from __future__ import annotations

import pickle
from typing import Any


def _portable(value: Any) -> Any:
    """``value`` if it pickles and unpickles; otherwise a RuntimeError (for exceptions) or its repr."""
    try:
        pickle.loads(pickle.dumps(value))
    except Exception:
        if isinstance(value, BaseException):
            return RuntimeError(f"{type(value).__name__}: {value}")
        return repr(value)[:200]
    return value


def _restore(cls: type[BaseException], args: tuple, state: dict[str, Any]) -> BaseException:
    """An instance of ``cls`` with ``args`` and ``state``, made without calling ``cls.__init__``."""
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class PortableError:
    """Mixin for exception classes (list it first): pickle by state, not by calling ``__init__`` again."""

    def __reduce__(self) -> tuple[Any, ...]:
        """Rebuild through ``_restore`` with the args and every attribute made portable."""
        state = {key: _portable(value) for key, value in vars(self).items()}
        return (_restore, (type(self), getattr(self, "args", ()), state))


class MissingExtraError(ImportError):
    """An optional part was asked for whose extra is not installed; the message names the extra to install."""


class StopRun(Exception):  # noqa: N818 - a request, not an error: the strategy asks the run to end here
    """Raised by a strategy to end a run early and cleanly, e.g. when its spending budget is spent.

    ``marketsim run`` keeps the steps completed before it, records the reason in ``summary.json`` and writes
    the run folder as usual; in a tournament it is that seat's fault, like any exception from its code.
    """
