"""Headless Chromium for the tests that open pages: find (or install) Debian's browser, drive it with Playwright.

Playwright's own browser download is never used (nothing is downloaded at run time): it drives the system's
``/usr/bin/chromium``. Where none is installed and the tests run as root with apt, ``chromium`` is installed
from Debian's packages once; otherwise the browser tests skip and say why. Each test page records console
errors, uncaught exceptions and failed or refused requests; screenshots go to ``test-artifacts/browser/``
(``MARKETSIM_ARTIFACTS`` moves it).
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
#: Flags for a closed network: without the background ones Chromium keeps trying Google's hosts.
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)  # fmt: skip


ARTIFACTS = Path(os.environ.get("MARKETSIM_ARTIFACTS", ROOT / "test-artifacts")) / "browser"
#: The live page's measured speed, written by tests/test_browser.py and reported at the end of the run.
SPEED_FILE = ARTIFACTS / "viz_speed.json"


def artifacts() -> Path:
    """The folder screenshots and measurements are saved in (created)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@functools.cache
def chromium() -> tuple[str | None, str]:
    """(path to a Chromium, '') or (None, why there is none): found on PATH, else installed with apt as root."""
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found, ""
    if os.name != "posix" or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None, "no Chromium on PATH, and apt-get as root is not available to install Debian's chromium"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "chromium"]
    done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:  # a fresh machine's package lists may be empty: update them once and retry
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600, check=False)
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900, check=False)
    found = shutil.which("chromium")
    return (found, "") if found else (None, f"apt-get install chromium failed: {done.stderr[-300:]}")


@dataclass
class Watched:
    """What a page reported while a test drove it."""

    errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        page.on("requestfailed", lambda r: self.failed.append(f"{r.url} ({r.failure})"))
        page.on("response", lambda r: self.failed.append(f"{r.url} (HTTP {r.status})") if r.status >= 400 else None)


@contextmanager
def browser_page(width: int = 1400, height: int = 1000) -> Iterator[tuple[Any, Watched]]:
    """A fresh page in headless Chromium, and what it reports; skips when there is no browser or Playwright."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is in the dev extra")
    path, why = chromium()
    if path is None:
        pytest.skip(why)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=list(FLAGS))
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            watched = Watched()
            watched.attach(page)
            yield page, watched
        finally:
            browser.close()


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, timeout: float = 120.0) -> None:
    """Poll ``url`` until it answers 200; fail with the server's output if the process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            pytest.fail(f"the server exited with status {process.returncode} before answering:\n{output}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    pytest.fail(f"{url} did not answer within {timeout:.0f} s")
