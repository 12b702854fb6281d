"""The ``marketsim`` console script: parse the command line, run one command, turn known errors into exit statuses.

The grammar is in ``marketsim.cli.parser`` and each command group in its own module (``run``, ``learning``,
``tournament``, ``meta``, ``files``, ``plugins``), imported only when its command runs: ``marketsim --help``,
``--version`` and a usage error load none of the numerical libraries.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from marketsim.cli.parser import build_parser

__all__ = ["build_parser", "main"]

#: Errors a command may raise that are the user's to fix, by module (only a loaded module can have raised one).
_USER_ERRORS = {
    "marketsim.config.yamlsource": ("SourceError", 2),
    "marketsim.config.kinds": ("KindError", 2),
    "marketsim.outputs": ("OutputError", 2),
    "marketsim.strategy": ("InvalidPriceError", 1),
    "marketsim.market.model": ("StrategyError", 1),
    "marketsim.observers": ("ObserverError", 1),
    "marketsim.exceptions": ("MissingExtraError", 2),
}


def _reported(exc: Exception) -> int | None:
    """Print a user-facing error on stderr and return its exit status; None for a bug (let it raise)."""
    for module, (name, status) in _USER_ERRORS.items():
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None and isinstance(exc, cls):
            if name == "SourceError":
                for problem in exc.problems:
                    print(problem, file=sys.stderr)
            else:
                print(exc if name == "KindError" else f"error: {exc}", file=sys.stderr)
            return status
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted; nothing written", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `marketsim plugins --json | head`: the reader left, which is fine
        sys.stderr.close()
        return 0
    except Exception as exc:
        status = _reported(exc)
        if status is None:
            raise
        return status


if __name__ == "__main__":
    sys.exit(main())
