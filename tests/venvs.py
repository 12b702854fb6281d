"""Fresh virtual environments for end-to-end plugin tests (the plugin guide, the example plugin, ``new-plugin``).

Each venv sees this environment's packages (marketsim and its dependencies), so a test installs only the
plugin itself (pip fetches setuptools for its isolated build, as it would for any plugin author).
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
from pathlib import Path


def make_venv(where: Path) -> dict[str, str]:
    """A venv layered over this environment's site-packages; returns the environment that runs inside it.

    A ``.pth`` line adds this interpreter's site directories with ``site.addsitedir`` (so their own ``.pth``
    files, e.g. marketsim's editable install, work too), whether or not the tests themselves run in a venv.
    """
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
    (site_dir,) = (where / "lib").glob("python*/site-packages")
    parents = "; ".join(f"site.addsitedir({p!r})" for p in site.getsitepackages())
    (site_dir / "_marketsim_tests_parent.pth").write_text(f"import site; {parents}\n")
    # marketsim's console script lives outside the venv (in this environment's bin): give the venv its own
    launcher = where / "bin" / "marketsim"
    launcher.write_text(
        f"#!{where / 'bin' / 'python'}\nimport sys\nfrom marketsim.cli.app import main\n"
        "if __name__ == '__main__':\n    sys.exit(main())\n"
    )
    launcher.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MARKETSIM_", "VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = f"{where / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(where)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["MPLBACKEND"] = "Agg"
    return env


def run(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a shell command in the venv; fail the test with its output if it fails."""
    done = subprocess.run(command, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"$ {command}\n{done.stdout}\n{done.stderr}"
    return done
