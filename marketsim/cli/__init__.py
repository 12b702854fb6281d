"""The command line: `marketsim run | experiment | train | tournament | meta-train | meta-eval | ...`."""

from marketsim.cli.app import main

__all__ = ["main"]
