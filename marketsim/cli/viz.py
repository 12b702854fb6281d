"""`marketsim viz`: serve a scenario's live page (Mesa SolaraViz) on a local port until Ctrl-C."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from marketsim.cli.console import out, warn_plugin_problems
from marketsim.config.kinds import check_kind
from marketsim.config.validate import load_scenario
from marketsim.registry import default_registry

EXTRA_HINT = "pip install 'marketsim[viz]' (from a checkout: pip install -e '.[viz]')"


def cmd_viz(args: argparse.Namespace) -> int:
    """Validate the scenario, check the page's parts are installed, then serve it."""
    check_kind(args.scenario, "viz")
    scenario = load_scenario(args.scenario)  # a bad file is a located error before anything starts
    try:
        from marketsim.viz import server
    except ImportError as exc:
        print(
            f"error: marketsim viz needs the 'viz' extra ({exc.name} is not installed): {EXTRA_HINT}", file=sys.stderr
        )
        return 2
    missing = server.missing_assets()
    if missing:
        print(
            f"error: the page's front-end files are not installed in {server.cache_dir()} "
            f"(missing {', '.join(missing[:3])}); they come with the solara-assets package: {EXTRA_HINT}",
            file=sys.stderr,
        )
        return 2
    if not server.port_free(args.host, args.port):
        print(f"error: port {args.port} on {args.host} is in use; choose another with --port", file=sys.stderr)
        return 2
    warn_plugin_problems(default_registry())
    sellers = len(scenario.expanded_sellers())
    out.print(f"[bold]{scenario.name}[/]: {scenario.consumers.size:,} consumers, {sellers} sellers")
    out.print(f"live page: [bold]http://{args.host}:{args.port}/[/]  (Ctrl-C stops the server)")
    server.serve(Path(args.scenario), args.host, args.port, args.interval)
    out.print("server stopped")
    return 0
