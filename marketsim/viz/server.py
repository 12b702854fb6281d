"""Serve the live page on a local port: Solara's Starlette app under uvicorn, offline.

Solara's page loads its front-end (the Vuetify app, RequireJS, Font Awesome, ECharts) through its assets proxy,
which answers from ``<prefix>/share/solara/cdn``: the ``solara-assets`` package installs them there, so the page
never reaches a CDN. ``missing_assets`` checks that the files the page template names are present before the
server starts; telemetry is switched off.
"""

from __future__ import annotations

import os
import re
import socket
import warnings
from importlib import resources
from pathlib import Path

import ipywidgets
import solara.server.settings as settings  # an ImportError here means the viz extra is not installed

APP = "marketsim.viz.app"


def _template() -> str:
    return resources.files("solara.server").joinpath("templates/solara.html.j2").read_text()


def required_assets() -> list[str]:
    """The CDN paths the (Vuetify 2) page template loads, as the production page names them."""
    text = _template()
    vue2 = text.split("{% else %}")  # the template lists the Vuetify 3 files first in each if/else
    major = ipywidgets.__version__.split(".")[0]
    found = set()
    for chunk in vue2[1:]:
        for path in re.findall(r"\{\{cdn\}\}(/[^\"'\s{]+(?:\{\{ipywidget_major_version\}\}[^\"'\s]*)?)", chunk):
            if "vuetify3" not in path:
                found.add(path.replace("{{ipywidget_major_version}}", major))
    if settings.assets.fontawesome_enabled:
        found.add(settings.assets.fontawesome_path)
    found = {p for p in found if not (p.endswith(".js") and not p.endswith(".min.js") and "vuetify-app" in p)}
    return sorted(found)


def cache_dir() -> Path:
    """Where Solara's assets proxy looks for front-end files before it would fetch them."""
    return Path(settings.assets.proxy_cache_dir)


def missing_assets() -> list[str]:
    """Front-end files the page needs that are not installed (then the page would try a CDN)."""
    root = cache_dir()
    return [path for path in required_assets() if not (root / path.lstrip("/")).is_file()]


def port_free(host: str, port: int) -> bool:
    """True when ``host:port`` can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def serve(scenario: Path, host: str, port: int, interval_ms: int) -> None:
    """Run the page for ``scenario`` until interrupted (Ctrl-C)."""
    from marketsim.viz.app import INTERVAL_ENV, SCENARIO_ENV

    os.environ[SCENARIO_ENV] = str(scenario.resolve())
    os.environ[INTERVAL_ENV] = str(interval_ms)
    os.environ["SOLARA_APP"] = APP
    os.environ["SERVER_NAME"], os.environ["SERVER_PORT"] = host, str(port)
    import uvicorn

    # A page on loopback http gets a lax session cookie, which Solara explains at length: nothing to act on.
    warnings.filterwarnings("ignore", message=r"Cookies with samesite=none require https")

    config = uvicorn.Config("solara.server.starlette:app", host=host, port=port, log_level="warning", ws="auto")
    uvicorn.Server(config).run()
