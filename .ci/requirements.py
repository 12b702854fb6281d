"""Print the project's requirements and those of the named extras, one per line, from pyproject.toml.

.ci/run installs them into the Python 3.12 venv while the 3.11 suites run, then the project itself with --no-deps.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
extras = project["optional-dependencies"]
unknown = [name for name in sys.argv[1:] if name not in extras]
if unknown:
    sys.exit(f"unknown extras: {', '.join(unknown)} (known: {', '.join(sorted(extras))})")
for requirement in [*project["dependencies"], *(r for name in sys.argv[1:] for r in extras[name])]:
    print(requirement)
